import { simulate, SimResult } from '../../sim/simulate';
import { Scenario } from '../../sim/scenario';
import { expectStatus, STAGES } from './helpers';

// End-to-end: the synthesized workflow, the bundled Lambdas, moto and the local SSM service.
// Each run starts and stops its own moto. Fleet of 4 (seed 7): Windows and Linux, one stopped.
const base: Scenario = { instances: 4, windows: 0.5, stopped: 0.25, seed: 7, snapshotSeconds: 60 };

async function run(faults: Scenario['faults'] = [], name = 'e2e'): Promise<SimResult> {
  return simulate({ scenario: { ...base, faults }, runId: `${name}-${Date.now()}`, outDir: `/tmp/pp-sim-test/${name}` });
}

interface Row {
  instanceId: string;
  status: string;
  failedAt: string;
  reason: string;
}
const reportRow = (r: SimResult, instanceId: string): Row | undefined => ((r.report?.instances ?? []) as Row[]).find((x) => x.instanceId === instanceId);

/** The faulty instance (if any) failed, every other one is Patched, power states restored, report written. */
function expectOthersPatched(r: SimResult, faulty: number): void {
  expectStatus(r, 'SUCCEEDED');
  expect(r.report).toBeDefined();
  r.instances.forEach((i, k) => {
    if (k !== faulty) expect({ name: i.name, status: i.status }).toEqual({ name: i.name, status: 'Patched' });
    // Power states restored: stopped ones are stopped again, running ones still run.
    if (i.finalState !== 'terminated') expect({ name: i.name, state: i.finalState }).toEqual({ name: i.name, state: i.initialState });
    // Every instance has its row in the report.
    expect({ name: i.name, row: reportRow(r, i.instanceId)?.status }).toEqual({ name: i.name, row: i.status });
  });
}

function expectFailed(r: SimResult, k: number, failedAt: string, reason: RegExp): void {
  const i = r.instances[k];
  expect({ status: i.status, failedAt: i.failedAt }).toEqual({ status: 'Failed', failedAt });
  expect(i.reason).toMatch(reason);
  expect(reportRow(r, i.instanceId)).toMatchObject({ status: 'Failed', failedAt });
}

describe('simulate', () => {
  test('patches every instance, stage by stage, after a completed snapshot', async () => {
    const r = await run([], 'happy');
    expectOthersPatched(r, -1);
    const sent = r.ssmLog.filter((e) => e.operation === 'SendCommand' && !e.error);
    for (const i of r.instances) {
      // The stages, then (reboots approved by default) the reboot and the verify document.
      expect(Object.keys(i.stages)).toEqual([...STAGES, 'reboot', 'verify']);
      // Every stage's commands in pipeline order, after a completed snapshot of the instance.
      const mine = sent.filter((e) => e.instanceIds?.includes(i.instanceId));
      expect(mine.map((e) => e.stage)).toEqual([...STAGES, 'verify']);
      const snaps = r.snapshots.get(i.instanceId) ?? [];
      expect(snaps.length).toBeGreaterThan(0);
      for (const s of snaps) expect({ state: s.state, before: s.createdAt < mine[0].at }).toEqual({ state: 'completed', before: true });
    }
    // The snapshot gate polled while the snapshots were pending (60 simulated s, 30 s polls).
    expect(r.metrics.lambdaInvocations.snapshot).toBeGreaterThan(2);
    expect(r.metrics.stateTransitions).toBeGreaterThan(0);
    // The run is announced once, after the report, with the counts and where the report is.
    const announced = r.notifications.filter((n) => n.state === 'Notify run result');
    expect(announced).toHaveLength(1);
    expect(announced[0].subject).toMatch(new RegExp(`^patch-pipeline \\S+: ${r.instances.length} patched, 0 failed`));
    expect(announced[0].message).toMatch(/Report: s3:\/\/\S+\/runs\/\S+\/report\/report\.json/);
  });

  test('fails the instance whose patch command fails, and only that one', async () => {
    const r = await run([{ type: 'stage-fails', instance: 0, stage: 'patch' }], 'stage-fails');
    expectFailed(r, 0, 'patch', /marker|Failed/);
    expectOthersPatched(r, 0);
  });

  test('fails the instance whose marker never arrives', async () => {
    const r = await run([{ type: 'marker-missing', instance: 0, stage: 'pre-inventory' }], 'marker-missing');
    expectFailed(r, 0, 'pre-inventory', /marker/);
    expectOthersPatched(r, 0);
  });

  test('agent offline: a stopped instance fails at power-on, a running one is skipped at discovery', async () => {
    // Instance 3 is the stopped one of the fleet; instance 0 runs.
    const r = await run([{ type: 'agent-offline', instance: 3 }, { type: 'agent-offline', instance: 0 }], 'agent-offline');
    expect(r.instances[3].initialState).toBe('stopped');
    expectFailed(r, 3, 'power-on', /SSM|online|ConnectionLost|ping/i);
    expect(r.instances[0]).toMatchObject({ status: 'Skipped', reason: expect.stringMatching(/SSM agent not online/) });
    for (const k of [0, 3]) expect(r.ssmLog.some((e) => e.operation === 'SendCommand' && e.instanceIds?.includes(r.instances[k].instanceId))).toBe(false);
    expectStatus(r, 'SUCCEEDED');
    r.instances.forEach((i, k) => {
      if (k === 1 || k === 2) expect({ name: i.name, status: i.status }).toEqual({ name: i.name, status: 'Patched' });
      expect({ name: i.name, state: i.finalState }).toEqual({ name: i.name, state: i.initialState });
    });
  });

  test('does not patch an instance whose snapshot fails', async () => {
    const r = await run([{ type: 'snapshot-fails', instance: 1 }], 'snapshot-fails');
    expectFailed(r, 1, 'snapshot', /snapshot/i);
    expect(r.ssmLog.some((e) => e.operation === 'SendCommand' && e.instanceIds?.includes(r.instances[1].instanceId))).toBe(false);
    expectOthersPatched(r, 1);
  });

  test('fails an instance terminated mid-run', async () => {
    const r = await run([{ type: 'terminated', instance: 0, stage: 'patch' }], 'terminated');
    expectFailed(r, 0, 'patch', /./);
    expect(r.instances[0].finalState).toBe('terminated');
    expectOthersPatched(r, 0);
  });

  test('rides out SendCommand throttling through the SDK retries', async () => {
    const r = await run([{ type: 'throttle', operation: 'SendCommand', count: 3 }], 'throttle');
    expect(r.metrics.ssmThrottled).toBe(3);
    expectOthersPatched(r, -1);
  });
});
