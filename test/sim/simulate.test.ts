import { simulate, SimResult } from '../../sim/simulate';
import { Scenario } from '../../sim/scenario';

// End-to-end: the synthesized workflow, the bundled Lambdas, moto and the local SSM service.
// Each run starts and stops its own moto. Fleet of 4: 0 Linux running, 1 Windows, 2 Linux stopped, 3 ...
const base: Scenario = { instances: 4, windows: 0.5, stopped: 0.25, seed: 7, snapshotSeconds: 60 };

async function run(faults: Scenario['faults'] = [], name = 'e2e'): Promise<SimResult> {
  return simulate({ scenario: { ...base, faults }, runId: `${name}-${Date.now()}`, outDir: `/tmp/pp-sim-test/${name}` });
}

function expectOthersPatched(r: SimResult, faulty: number): void {
  r.instances.forEach((i, k) => {
    if (k !== faulty) expect({ name: i.name, status: i.status }).toEqual({ name: i.name, status: 'Patched' });
    // Power states restored: stopped ones are stopped again.
    expect({ name: i.name, state: i.initialState === 'stopped' ? i.finalState : 'any' }).toEqual({ name: i.name, state: i.initialState === 'stopped' ? 'stopped' : 'any' });
  });
  expect(r.report).toBeDefined();
}

describe('simulate', () => {
  test('patches every instance, stage by stage, after a completed snapshot', async () => {
    const r = await run([], 'happy');
    expect(r.status).toBe('SUCCEEDED');
    expectOthersPatched(r, -1);
    const stages = ['agent-update', 'pre-inventory', 'patch', 'post-inventory', 'compare', 'failed-check'];
    for (const i of r.instances) expect(Object.keys(i.stages)).toEqual(stages);
    // Every stage's commands in pipeline order; each patched instance had a completed snapshot before its first command.
    const sent = r.ssmLog.filter((e) => e.operation === 'SendCommand' && !e.error);
    for (const i of r.instances) {
      const mine = sent.filter((e) => e.instanceIds?.includes(i.instanceId));
      expect(mine.map((e) => e.stage)).toEqual(stages);
      const snaps = r.snapshots.get(i.instanceId) ?? [];
      expect(snaps.length).toBeGreaterThan(0);
      expect(snaps.every((s) => s.state === 'completed' && s.createdAt < mine[0].at)).toBe(true);
    }
    expect(r.metrics.stateTransitions).toBeGreaterThan(0);
  });

  test('fails the instance whose patch command fails, and only that one', async () => {
    const r = await run([{ type: 'stage-fails', instance: 0, stage: 'patch' }], 'stage-fails');
    expect(r.instances[0]).toMatchObject({ status: 'Failed', failedAt: 'patch' });
    expect(r.instances[0].reason).toMatch(/marker|Failed/);
    expectOthersPatched(r, 0);
  });

  test('fails the instance whose marker never arrives', async () => {
    const r = await run([{ type: 'marker-missing', instance: 0, stage: 'pre-inventory' }], 'marker-missing');
    expect(r.instances[0]).toMatchObject({ status: 'Failed', failedAt: 'pre-inventory' });
    expect(r.instances[0].reason).toMatch(/marker/);
    expectOthersPatched(r, 0);
  });

  test('fails the instance whose agent is offline at power-on', async () => {
    const r = await run([{ type: 'agent-offline', instance: 0 }], 'agent-offline');
    expect(r.instances[0].status).toBe('Failed');
    expect(r.instances[0].reason).toMatch(/SSM|online|ConnectionLost|ping/i);
    expectOthersPatched(r, 0);
  });

  test('does not patch an instance whose snapshot fails', async () => {
    const r = await run([{ type: 'snapshot-fails', instance: 1 }], 'snapshot-fails');
    expect(r.instances[1]).toMatchObject({ status: 'Failed', failedAt: 'snapshot' });
    expect(r.ssmLog.some((e) => e.operation === 'SendCommand' && e.instanceIds?.includes(r.instances[1].instanceId))).toBe(false);
    expectOthersPatched(r, 1);
  });

  test('fails an instance terminated mid-run', async () => {
    const r = await run([{ type: 'terminated', instance: 0, stage: 'patch' }], 'terminated');
    expect(r.instances[0]).toMatchObject({ status: 'Failed', failedAt: 'patch', finalState: 'terminated' });
    expectOthersPatched(r, 0);
  });

  test('rides out SendCommand throttling through the SDK retries', async () => {
    const r = await run([{ type: 'throttle', operation: 'SendCommand', count: 3 }], 'throttle');
    expect(r.metrics.ssmThrottled).toBe(3);
    expectOthersPatched(r, -1);
  });
});
