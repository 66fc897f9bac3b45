import { Answer, PendingApproval } from '../../sim/approvals';
import { Scenario } from '../../sim/scenario';
import { simulate, SimResult } from '../../sim/simulate';
import { expectStatus } from './helpers';

// End-to-end reboot approvals: the approval Lambda, the real endpoint handler answering through the
// local Step Functions service, reboots on the simulated fleet and the verify document.
// Fleet of 4, applications web (0, 2) and billing (1, 3); instance 3 starts stopped.
const fleet: Scenario['fleet'] = [
  { application: 'web', platform: 'Linux', family: 'dpkg', state: 'running' },
  { application: 'billing', platform: 'Linux', family: 'rpm', state: 'running' },
  { application: 'web', platform: 'Windows', state: 'running' },
  { application: 'billing', platform: 'Linux', family: 'dpkg', state: 'stopped' },
];
const base: Scenario = { instances: 4, seed: 11, snapshotSeconds: 30, rebootSeconds: 45, fleet };
// web checks nginx (config), the approval window is short so a timeout is visible in simulated time.
const input = { approval: { timeoutSeconds: 900, rebootTimeoutSeconds: 600, healthChecks: { web: { units: ['nginx'], url: 'http://localhost:8080/health' } } } };

interface Row {
  instanceId: string;
  status: string;
  failedAt: string;
  reason: string;
  approval: string;
  approver: string;
  decidedBy: string;
  decidedFrom: string;
  rebootStatus: string;
  rebootReason: string;
  verifyStatus: string;
  verifyReason: string;
  rebootDeferred: boolean;
}
const rows = (r: SimResult): Row[] => (r.report?.instances ?? []) as Row[];
const row = (r: SimResult, k: number): Row => rows(r).find((x) => x.instanceId === r.instances[k].instanceId)!;

describe('simulate: reboot approvals', () => {
  test('approved groups reboot and verify; a failing health check and an instance that does not come back fail alone', async () => {
    const scenario: Scenario = {
      ...base,
      faults: [
        { type: 'health-fails', instance: 0, unit: 'nginx' },
        { type: 'no-reboot-return', instance: 1 },
      ],
    };
    const r = await simulate({ scenario, input, approve: 'all', runId: `approve-${Date.now()}`, outDir: '/tmp/pp-sim-test/approve' });
    expectStatus(r, 'SUCCEEDED');

    // One request per application, each with its signed link to the served endpoint, answered there.
    expect(r.notifications.map((n) => n.link?.startsWith(r.approvalEndpointUrl!))).toEqual([true, true]);
    expect(r.approvals.map((a) => [a.application, a.outcome, a.via, a.endpointStatus]).sort()).toEqual([
      ['billing', 'approved', 'policy', 200],
      ['web', 'approved', 'policy', 200],
    ]);
    expect(r.metrics.awsApiCalls['states:SendTaskSuccess']).toBe(2);
    expect(r.metrics.awsApiCalls['ec2:RebootInstances']).toBeGreaterThanOrEqual(2);

    for (const k of [0, 1, 2, 3]) {
      expect(row(r, k)).toMatchObject({ approval: 'approved', decidedBy: row(r, k).approver, decidedFrom: 'link from 127.0.0.1' });
      expect(row(r, k).approver).toMatch(/@example\.com/);
    }
    // 2 (Windows) and 3 (Linux, stopped at the start): rebooted and verified.
    for (const k of [2, 3]) {
      expect(row(r, k)).toMatchObject({ status: 'Patched', reason: '', rebootStatus: 'Success', verifyStatus: 'Success' });
      expect(row(r, k).verifyReason).toMatch(/^boot \S+ after \S+/);
    }
    expect(row(r, 2).verifyReason).toMatch(/url http:\/\/localhost:8080\/health 200/);
    // 0: nginx inactive after the reboot.
    expect(row(r, 0)).toMatchObject({ status: 'Failed', failedAt: 'verify', rebootStatus: 'Success', verifyStatus: 'Failed' });
    expect(row(r, 0).reason).toMatch(/unit nginx inactive/);
    // 1: never back online after its reboot.
    expect(row(r, 1)).toMatchObject({ status: 'Failed', failedAt: 'reboot', rebootStatus: 'Failed', verifyStatus: 'NotRun' });
    expect(row(r, 1).reason).toMatch(/did not come back online within \d+ s after its reboot/);
    expect(r.instances[1]).toMatchObject({ status: 'Failed', failedAt: 'reboot' });
    expect(r.instances[1].stages).toMatchObject({ reboot: 'Failed' });
    expect(r.instances[3].stages).toMatchObject({ patch: 'Success', reboot: 'Success', verify: 'Success' });
    // Power states restored after the reboots.
    for (const i of r.instances) expect({ name: i.name, state: i.finalState }).toEqual({ name: i.name, state: i.initialState });
    expect(r.report?.totals).toMatchObject({ rebooted: 3, verified: 2, verifyFailed: 1, rebootsDeferred: 0 });
  });

  test('a rejected group and an unanswered one are deferred, nothing reboots', async () => {
    const asked: PendingApproval[][] = [];
    // The prompt path: web is rejected, billing is left to time out (in simulated time).
    const askApproval = async (pending: PendingApproval[]): Promise<Record<string, Answer>> => {
      asked.push(pending);
      return Object.fromEntries(pending.map((p) => [p.groupId, p.application === 'web' ? 'reject' : 'timeout']));
    };
    const started = Date.now();
    const r = await simulate({ scenario: base, input, approve: 'prompt', askApproval, runId: `defer-${Date.now()}`, outDir: '/tmp/pp-sim-test/defer' });
    expectStatus(r, 'SUCCEEDED');
    // Both requests were listed together, once, with their links.
    expect(asked.map((list) => list.map((p) => p.application).sort())).toEqual([['billing', 'web']]);
    for (const p of asked[0]) expect(p.link).toMatch(/[?&]sig=[0-9a-f]{64}/);
    expect(r.approvals.map((a) => [a.application, a.outcome, a.answer]).sort()).toEqual([
      ['billing', 'timed-out', 'timeout'],
      ['web', 'rejected', 'reject'],
    ]);
    expect(r.metrics.awsApiCalls['ec2:RebootInstances'] ?? 0).toBe(0);
    expect(r.metrics.awsApiCalls['states:SendTaskFailure']).toBe(1);
    // The timeout happened in simulated time: 900 s after the request, not 900 real seconds.
    expect(Date.now() - started).toBeLessThan(120000);

    for (const k of [0, 2]) {
      expect(row(r, k)).toMatchObject({ status: 'Patched', approval: 'rejected', rebootStatus: 'NotRun', verifyStatus: 'NotRun', rebootDeferred: true });
      expect(row(r, k).decidedBy).toBe(row(r, k).approver);
      expect(row(r, k).reason).toMatch(/^reboot deferred: rejected by .+@example\.com/);
    }
    for (const k of [1, 3]) {
      expect(row(r, k)).toMatchObject({ status: 'Patched', approval: 'timed-out', rebootStatus: 'NotRun', rebootDeferred: true, decidedBy: '' });
      expect(row(r, k).reason).toMatch(/reboot deferred: no decision from .+ \(timed out\)/);
    }
    for (const i of r.instances) expect({ name: i.name, state: i.finalState }).toEqual({ name: i.name, state: i.initialState });
    expect(r.report?.totals).toMatchObject({ rebooted: 0, rebootsDeferred: 4 });
  });

  test('--approve <apps> approves the listed applications only; a reboot that did not happen fails verify', async () => {
    const scenario: Scenario = { ...base, instances: 2, fleet: fleet!.slice(0, 2), faults: [{ type: 'did-not-reboot', instance: 0 }] };
    const r = await simulate({ scenario, input: { approval: { timeoutSeconds: 900 } }, approve: 'web', runId: `apps-${Date.now()}`, outDir: '/tmp/pp-sim-test/apps' });
    expectStatus(r, 'SUCCEEDED');
    expect(r.approvals.map((a) => [a.application, a.outcome]).sort()).toEqual([
      ['billing', 'rejected'],
      ['web', 'approved'],
    ]);
    // Back online, but with the boot time of before the reboot.
    expect(row(r, 0)).toMatchObject({ approval: 'approved', status: 'Failed', failedAt: 'verify', rebootStatus: 'Success', verifyStatus: 'Failed' });
    expect(row(r, 0).reason).toMatch(/did not reboot: boot time \S+ is before \S+/);
    expect(row(r, 1)).toMatchObject({ approval: 'rejected', status: 'Patched', rebootStatus: 'NotRun', rebootDeferred: true });
  });
});
