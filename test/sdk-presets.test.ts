// Presets per task type: the published recommended figures, overridable, for tasks and sub-agents alike.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openEnvelope, type Envelope } from '../src/sdk/envelope.js';
import { PRESETS, type PresetName } from '../src/sdk/presets.js';

describe('presets', () => {
  let env: Envelope;
  before(async () => {
    env = await openEnvelope({ store: 'memory:', sweepIntervalMs: 0 });
  });
  after(() => env.close());

  it('gives each task type the middle of its recommended range', async () => {
    const names = Object.keys(PRESETS) as PresetName[];
    const rows = await Promise.all(names.map(async (preset) => (await env.task({ id: `p-${preset}`, preset })).row()));
    assert.deepEqual(
      rows.map((r) => [r.label, r.total, r.policy]),
      [
        ['bug-fix', 50_000, 'advisory'],
        ['feature', 200_000, 'advisory'],
        ['refactor', 450_000, 'advisory'],
        ['docs', 125_000, 'advisory'],
        ['tests', 400_000, 'advisory'],
      ],
    );
    for (const p of Object.values(PRESETS)) assert.equal(p.total, (p.recommended[0] + p.recommended[1]) / 2);
  });

  it('lets a sub-agent take a preset, with any field overridden, inside its parent', async () => {
    const session = await env.task({ id: 'p-session', preset: 'refactor', policy: 'hard' });
    const tests = await session.child({ id: 'p-session/tests', preset: 'tests', total: 300_000, label: 'tests-unit' });
    const row = await tests.row();
    assert.deepEqual([row.label, row.total, row.policy, row.parentId], ['tests-unit', 300_000, 'advisory', 'p-session']);
    await assert.rejects(env.task({ id: 'p-bad', preset: 'poetry' as PresetName }), /unknown preset "poetry"; use one of bug-fix, feature, refactor, docs, tests/);
  });
});
