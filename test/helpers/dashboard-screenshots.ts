// Takes the README's dashboard screenshots during a demo-like run: earlier runs on the store (for calibration),
// then the orchestrator job through the gateway and envelope sim, shot while QA waits for approval.
//   npx tsc -p . && node dist/test/helpers/dashboard-screenshots.js docs
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { startSim } from '../../src/sim/server.js';
import { JOB_MODEL, runJob } from './agent-job.js';
import { launchBrowser } from './browser.js';
import { startStack } from './serve-stack.js';

const ADMIN = 'screenshot-admin';

/** Deterministic spread of earlier runs per label: input = mean × (0.55 … 1.45), the largest near the total. */
const HISTORY: Array<{ label: string; runs: number; meanInput: number; output: number; total: number }> = [
  { label: 'research', runs: 28, meanInput: 30_000, output: 6_000, total: 50_000 },
  { label: 'drafting', runs: 24, meanInput: 22_000, output: 8_000, total: 40_000 },
  { label: 'qa', runs: 22, meanInput: 11_000, output: 3_000, total: 20_000 },
  { label: 'bug-fix', runs: 40, meanInput: 28_000, output: 4_000, total: 50_000 },
];

async function main(): Promise<void> {
  const out = resolve(process.argv[2] ?? 'docs');
  mkdirSync(out, { recursive: true });
  const sim = await startSim({ latencyMs: 120 });
  const gw = await startStack({ anthropicUrl: sim.url, adminToken: ADMIN }, true);
  const browser = await launchBrowser({ width: 1280, height: 800 });
  try {
    const day = Date.UTC(2026, 10, 20);
    for (const h of HISTORY) {
      for (let i = 0; i < h.runs; i++) {
        const id = `${h.label}-${day / 1000 + i}`;
        const spread = 0.55 + ((i * 37) % h.runs) / h.runs * 0.9;
        const input = Math.round(h.meanInput * spread);
        await gw.ledger.createTask({ id, label: h.label, total: h.total, policy: 'advisory' });
        const grant = await gw.ledger.reserve({ taskId: id, model: JOB_MODEL, inputTokens: input, outputTokensMax: h.output });
        await gw.ledger.settle(grant.reservation.id, { inputTokens: input, outputTokens: h.output, cacheWriteTokens: 0, cacheReadTokens: 0 });
        await gw.ledger.close(id);
      }
    }

    const page = await browser.context.newPage();
    await page.goto(gw.url);
    await page.locator('#token').fill(ADMIN);
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.locator('#conn', { hasText: 'Live' }).waitFor();
    await page.getByLabel('Price per run for research in USD').fill('0.60');
    await page.getByLabel('Price per run for bug-fix in USD').fill('0.35');

    const run = 'demo-20261123-1402';
    let shot = false;
    const client = new Anthropic({ apiKey: 'sk-ant-demo', baseURL: gw.url, maxRetries: 0 });
    await runJob(client, run, async (taskId) => {
      const row = page.locator(`li.task[data-task-id="${taskId}"]`);
      await row.locator('[data-field=state]', { hasText: 'paused' }).waitFor();
      if (!shot) {
        shot = true;
        await row.getByRole('button', { name: `Show ${taskId}` }).click();
        await page.locator('#burn-chart canvas').waitFor();
        await page.evaluate(() => window.scrollTo(0, 0));
        await page.waitForTimeout(400);
        await page.screenshot({ path: join(out, 'dashboard-desktop.png') });
        await page.screenshot({ path: join(out, 'dashboard-desktop-full.png'), fullPage: true });
        await page.setViewportSize({ width: 390, height: 844 });
        await page.evaluate(() => window.scrollTo(0, 0));
        await page.waitForTimeout(400);
        await page.screenshot({ path: join(out, 'dashboard-phone.png') });
        // Tapping a task on a phone brings its detail and burn-down (below the list) into view.
        await row.getByRole('button', { name: `Show ${taskId}` }).click();
        await page.waitForTimeout(800);
        await page.screenshot({ path: join(out, 'dashboard-phone-detail.png') });
        await page.evaluate(() => window.scrollTo(0, 0));
        await row.getByRole('button', { name: `Approve more budget for ${taskId}` }).click();
        await page.waitForTimeout(200);
        await page.screenshot({ path: join(out, 'dashboard-phone-approve.png') });
        await page.setViewportSize({ width: 1280, height: 800 });
      } else {
        await row.getByRole('button', { name: `Approve more budget for ${taskId}` }).click();
      }
      await page.getByLabel('Add (tokens)').fill('20000');
      await page.getByRole('dialog').getByRole('button', { name: 'Approve' }).click();
      await page.getByRole('dialog').waitFor({ state: 'hidden' });
    });
    process.stdout.write(`screenshots in ${out}\n`);
  } finally {
    await browser.close();
    await gw.close();
    await sim.close();
  }
}

await main();
