import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Browser, chromium } from 'playwright-core';
import { PendingApproval } from '../../sim/approvals';
import { Scenario } from '../../sim/scenario';
import { simulate, SimResult } from '../../sim/simulate';
import { expectStatus } from './helpers';

// The approval page in a real browser: Debian's Chromium, headless, opens the link of the
// published message on the simulation's served endpoint and clicks Approve; the run goes on.
const CHROMIUM = '/usr/bin/chromium';
const INSTALL = 'apt-get update && apt-get install -y chromium (scripts/ensure-tools.sh does it)';
const scenario: Scenario = {
  instances: 2,
  seed: 5,
  snapshotSeconds: 30,
  rebootSeconds: 40,
  fleet: [
    { application: 'web', platform: 'Linux', family: 'dpkg', state: 'running' },
    { application: 'web', platform: 'Windows', state: 'stopped' },
  ],
};

describe('approval page in Chromium', () => {
  test('shows the request with its instances, and Approve resumes the run', async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`Chromium is missing at ${CHROMIUM}: ${INSTALL}`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pp-approval-page-'));
    let announce!: (p: PendingApproval) => void;
    const announced = new Promise<PendingApproval>((resolve) => (announce = resolve));
    const run: Promise<SimResult> = simulate({
      scenario,
      approve: 'external',
      // The simulated timeout only once the browser had its chance.
      approvalWaitSeconds: 90,
      onApprovalRequest: (p) => announce(p),
      runId: `page-${Date.now()}`,
      outDir: '/tmp/pp-sim-test/approval-page',
    });
    const pending = await Promise.race([announced, run.then((r) => Promise.reject(new Error(`the run ended (${r.status}) before an approval request: ${JSON.stringify(r.error)}`)))]);
    expect(pending.link).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?id=/);

    let browser: Browser | undefined;
    let page: string;
    try {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      const tab = await browser.newPage();
      const res = await tab.goto(pending.link!);
      expect(res?.status()).toBe(200);
      await expect(tab.locator('h1').textContent()).resolves.toBe('Reboot approval: web');
      page = await tab.locator('body').innerText();
      for (const id of pending.instanceIds) expect(page).toContain(id);
      for (const name of pending.instanceNames) expect(page).toContain(name);
      expect(page).toContain('waiting for your decision');
      const approve = tab.getByRole('button', { name: 'Approve the reboot' });
      const reject = tab.getByRole('button', { name: 'Reject (defer the reboot)' });
      expect(await approve.isVisible()).toBe(true);
      expect(await reject.isVisible()).toBe(true);
      const shot = path.join(dir, 'approval-page.png');
      await tab.screenshot({ path: shot, fullPage: true });
      expect(fs.statSync(shot).size).toBeGreaterThan(1000);

      await tab.locator('#name-approve').fill('Chromium test');
      await Promise.all([tab.waitForLoadState('domcontentloaded'), approve.click()]);
      await tab.waitForSelector('h1:has-text("Approved")');
      expect(await tab.locator('h1').textContent()).toBe('Approved — the reboot of web starts now');
      await tab.screenshot({ path: path.join(dir, 'approved.png') });
    } finally {
      await browser?.close();
    }

    const r = await run;
    expectStatus(r, 'SUCCEEDED');
    expect(r.approvals).toMatchObject([{ application: 'web', outcome: 'approved', answer: 'approve', via: 'served-endpoint' }]);
    expect(r.metrics.awsApiCalls['ec2:RebootInstances']).toBeGreaterThanOrEqual(1);
    const rows = (r.report?.instances ?? []) as { name: string; approval: string; decidedBy: string; rebootStatus: string; verifyStatus: string }[];
    for (const row of rows) {
      expect(row).toMatchObject({ approval: 'approved', rebootStatus: 'Success', verifyStatus: 'Success' });
      expect(row.decidedBy).toMatch(/\(as "Chromium test"\)$/);
    }
    for (const i of r.instances) expect({ name: i.name, state: i.finalState }).toEqual({ name: i.name, state: i.initialState });
  });
});
