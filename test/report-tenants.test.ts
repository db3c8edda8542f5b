// `envelope report --tenants` on a real SQLite file: calls settled at known minutes of the last hours, then the
// CLI's table and JSON, to the token: spend against the envelope, peak-minute TPM against the limit, peak ÷ median hour.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { parseTenantSpec } from '../src/budget/tenants.js';
import { Ledger } from '../src/ledger/ledger.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDbPath } from './helpers/gateway.js';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../src/cli/main.js');
const HOUR_MS = 3_600_000;

describe('envelope report --tenants', () => {
  it('shows each tenant’s spend against its envelope, peak-minute TPM against its limit and the peak-hour burn ratio', async () => {
    const path = tempDbPath();
    const hour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
    let now = hour - 3 * HOUR_MS;
    const ledger = new Ledger(new SqliteStore(path), { clock: () => now });
    await ledger.governance.set(parseTenantSpec('acme', { total: 1_000_000, period: 'none', tpm: 250_000 }));
    await ledger.governance.set(parseTenantSpec('lean', { rpm: 600 }));
    const scope = { tenant: 'acme' };
    await ledger.createTask({ id: 'acme-job', total: 500_000, meter: 'billed' }, scope);
    // [hours before this one, minute, tokens]: hours of 30,000, 40,000 (one minute) and 30,000.
    const calls: Array<[number, number, number]> = [[3, 0, 10_000], [3, 1, 20_000], [2, 30, 40_000], [1, 5, 15_000], [1, 59, 15_000]];
    for (const [hoursAgo, minute, tokens] of calls) {
      now = hour - hoursAgo * HOUR_MS + minute * 60_000 + 1_000;
      const g = await ledger.reserve({ taskId: 'acme-job', model: null, inputTokens: tokens - 1_000, outputTokensMax: 1_000 }, scope);
      await ledger.settle(g.reservation.id, { inputTokens: tokens - 1_000, outputTokens: 1_000, cacheWriteTokens: 0, cacheReadTokens: 0 });
    }
    await ledger.shutdown();

    const json = JSON.parse((await run(process.execPath, [CLI, 'report', '--tenants', '--store', `sqlite:${path}`, '--json'])).stdout) as { tenants: unknown[] };
    assert.deepEqual(json.tenants, [
      {
        tenant: 'acme', period: 'none', unit: 'tokens', spent: 100_000, envelopeTotal: 1_000_000, envelopeShare: 0.1,
        peakMinuteTokens: 40_000, tpmLimit: 250_000, tpmShare: 0.16, peakHourTokens: 40_000, medianHourTokens: 30_000, peakHourRatio: 1.33, hours: 3,
      },
      {
        tenant: 'lean', period: 'none', unit: 'tokens', spent: 0, envelopeTotal: null, envelopeShare: null,
        peakMinuteTokens: 0, tpmLimit: null, tpmShare: null, peakHourTokens: 0, medianHourTokens: 0, peakHourRatio: null, hours: 0,
      },
    ]);
    const { stdout } = await run(process.execPath, [CLI, 'report', '--tenants', '--store', `sqlite:${path}`]);
    assert.equal(
      stdout,
      [
        'tenant  period    spent   envelope   used  peak-minute TPM  TPM limit  of limit  peak hour  median hour  peak ÷ median',
        '------  ------  -------  ---------  -----  ---------------  ---------  --------  ---------  -----------  -------------',
        'acme      none  100,000  1,000,000  10.0%           40,000    250,000     16.0%     40,000       30,000          1.33×',
        'lean      none        0          –      –                0          –         –          0            0              –',
        '',
      ].join('\n'),
    );
  });
});
