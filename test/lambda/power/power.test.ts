import { DescribeInstancesCommand, EC2Client, StartInstancesCommand, StopInstancesCommand } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { DescribeInstanceInformationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { power, PowerEvent } from '../../../lambda/power/power';
import { BatchDocument, GateState, RestoreDocument, RunDocument, TargetInstance } from '../../../lambda/shared/types';
import { testConfig } from '../../helpers/fixtures';
import { mockS3Memory } from '../../helpers/s3-memory';

const ec2 = mockClient(EC2Client);
const ssm = mockClient(SSMClient);
const { bucket } = mockS3Memory(ec2, ssm);

const CONFIG = testConfig({ pollIntervalSeconds: 30, powerOnTimeoutSeconds: 600 });
const T0 = new Date('2024-06-01T10:00:00Z');
const at = (seconds: number) => () => new Date(T0.getTime() + seconds * 1000);
const deps = (seconds = 0) => ({ ec2: new EC2Client({}), ssm: new SSMClient({}), s3: new S3Client({}), now: at(seconds) });

const RUNNING = 'i-0000000000000000a';
const STOPPED = 'i-0000000000000000b';
const STOPPED2 = 'i-0000000000000000c';

/** The simulated fleet: EC2 state and SSM ping per instance, changed by Start/StopInstances. */
let fleet: Record<string, { state: string; ping?: string; reason?: string }>;

function target(instanceId: string, initialState: string, batchId = 'b000'): TargetInstance {
  return { instanceId, name: instanceId, platform: 'Linux', initialState, application: 'app', owner: 'me', ssm: { managed: true }, volumeIds: ['vol-1'], batchId };
}

function seedRun(targets: TargetInstance[]): void {
  const run: RunDocument = {
    runId: 'run-1',
    createdAt: T0.toISOString(),
    config: CONFIG,
    stages: [],
    targets,
    skipped: [],
    batches: [{ batchId: 'b000', instanceIds: targets.map((t) => t.instanceId) }],
  };
  bucket.put('runs/run-1/run.json', run);
  const batch: BatchDocument = {
    runId: 'run-1',
    batchId: 'b000',
    instanceIds: targets.map((t) => t.instanceId),
    instances: Object.fromEntries(targets.map((t) => [t.instanceId, { status: 'active' as const, stages: {} }])),
    updatedAt: T0.toISOString(),
  };
  bucket.put('runs/run-1/batches/b000.json', batch);
}

const batchDoc = () => bucket.json<BatchDocument>('runs/run-1/batches/b000.json');
const restoreDoc = () => bucket.json<RestoreDocument>('runs/run-1/restore.json');
const batchEvent = (action: 'start' | 'check-started', gate?: GateState): PowerEvent => ({ action, runId: 'run-1', bucket: 'b', config: CONFIG, batchId: 'b000', ...(gate ? { gate } : {}) });
const runEvent = (action: 'restore' | 'check-restored', gate?: GateState): PowerEvent => ({ action, runId: 'run-1', bucket: 'b', config: CONFIG, ...(gate ? { gate } : {}) });

const idsOf = (input: { Filters?: { Name?: string; Values?: string[] }[] }) => input.Filters?.find((f) => f.Name === 'instance-id')?.Values ?? [];

beforeEach(() => {
  fleet = {
    [RUNNING]: { state: 'running', ping: 'Online' },
    [STOPPED]: { state: 'stopped', ping: 'ConnectionLost' },
    [STOPPED2]: { state: 'stopped', ping: 'ConnectionLost' },
  };
  ec2.on(DescribeInstancesCommand).callsFake((input) => ({
    Reservations: [
      {
        Instances: idsOf(input)
          .filter((id) => fleet[id])
          .map((id) => ({ InstanceId: id, State: { Name: fleet[id].state }, ...(fleet[id].reason ? { StateReason: { Message: fleet[id].reason } } : {}) })),
      },
    ],
  }));
  ec2.on(StartInstancesCommand).callsFake((input: { InstanceIds: string[] }) => {
    for (const id of input.InstanceIds) fleet[id].state = 'pending';
    return { StartingInstances: input.InstanceIds.map((id) => ({ InstanceId: id, CurrentState: { Name: 'pending' } })) };
  });
  ec2.on(StopInstancesCommand).callsFake((input: { InstanceIds: string[] }) => {
    for (const id of input.InstanceIds) fleet[id].state = 'stopping';
    return { StoppingInstances: input.InstanceIds.map((id) => ({ InstanceId: id, CurrentState: { Name: 'stopping' } })) };
  });
  ssm.on(DescribeInstanceInformationCommand).callsFake((input: { Filters?: { Key: string; Values: string[] }[] }) => ({
    InstanceInformationList: (input.Filters?.[0].Values ?? []).filter((id) => fleet[id]?.ping).map((id) => ({ InstanceId: id, PingStatus: fleet[id].ping })),
  }));
});

describe('power', () => {
  test('starts a stopped instance, waits until it is running and online, and stops it again at restore', async () => {
    seedRun([target(RUNNING, 'running'), target(STOPPED, 'stopped')]);

    // Start: only the instance found stopped is started; the running one is already done.
    const opened = await power(batchEvent('start'), deps(0));
    expect(ec2).toHaveReceivedCommandTimes(StartInstancesCommand, 1);
    expect(ec2).toHaveReceivedCommandWith(StartInstancesCommand, { InstanceIds: [STOPPED] });
    expect(opened).toMatchObject({ complete: false, done: 1, pending: 1, failed: 0, waitSeconds: 30, deadline: '2024-06-01T10:10:00.000Z' });
    expect(batchDoc().instances[STOPPED].startedByRun).toBe(true);
    expect(batchDoc().instances[RUNNING].startedByRun).toBeUndefined();

    // Check: running but the agent is not back yet.
    fleet[STOPPED].state = 'running';
    const waiting = await power(batchEvent('check-started', opened), deps(30));
    expect(waiting).toMatchObject({ complete: false, pending: 1, checks: 1 });

    // Check: running and Online.
    fleet[STOPPED].ping = 'Online';
    const started = await power(batchEvent('check-started', waiting), deps(60));
    expect(started).toMatchObject({ complete: true, done: 2, pending: 0, failed: 0, checks: 2 });

    // Restore: stops exactly the instance that was stopped at discovery.
    const restoring = await power(runEvent('restore'), deps(3600));
    expect(ec2).toHaveReceivedCommandTimes(StopInstancesCommand, 1);
    expect(ec2).toHaveReceivedCommandWith(StopInstancesCommand, { InstanceIds: [STOPPED] });
    expect(restoring).toMatchObject({ complete: false, pending: 1 });
    expect(restoreDoc().instances).toEqual({
      [RUNNING]: { initialState: 'running', finalState: 'running', action: 'none' },
      [STOPPED]: { initialState: 'stopped', finalState: 'stopping', action: 'stopped' },
    });

    fleet[STOPPED].state = 'stopped';
    const restored = await power(runEvent('check-restored', restoring), deps(3630));
    expect(restored).toMatchObject({ complete: true, done: 1, pending: 0, failed: 0 });
    expect(restoreDoc().instances[STOPPED]).toEqual({ initialState: 'stopped', finalState: 'stopped', action: 'stopped' });
    expect(restoreDoc().finishedAt).toBe(at(3630)().toISOString());
  });

  test('never stops an instance that was running at discovery, and never starts it', async () => {
    seedRun([target(RUNNING, 'running')]);
    const gate = await power(batchEvent('start'), deps(0));
    expect(gate).toMatchObject({ complete: true, done: 1, pending: 0 });
    expect(ec2).toHaveReceivedCommandTimes(StartInstancesCommand, 0);

    const restoring = await power(runEvent('restore'), deps(100));
    expect(restoring).toMatchObject({ complete: true, pending: 0 });
    expect(ec2).toHaveReceivedCommandTimes(StopInstancesCommand, 0);
    expect(restoreDoc().instances[RUNNING]).toEqual({ initialState: 'running', finalState: 'running', action: 'none' });
  });

  test('at the deadline the pending instances fail at power-on with the state and ping seen', async () => {
    seedRun([target(RUNNING, 'running'), target(STOPPED, 'stopped')]);
    const opened = await power(batchEvent('start'), deps(0));
    fleet[STOPPED].state = 'running'; // the agent never comes back

    const early = await power(batchEvent('check-started', opened), deps(300));
    expect(early).toMatchObject({ complete: false, pending: 1 });
    expect(early.waitSeconds).toBe(30);

    const late = await power(batchEvent('check-started', early), deps(600));
    expect(late).toMatchObject({ complete: true, done: 1, failed: 1, pending: 0 });
    expect(batchDoc().instances[STOPPED]).toMatchObject({
      status: 'failed',
      failedAt: 'power-on',
      reason: 'not running and online in SSM within 600 s (state running, PingStatus ConnectionLost)',
    });
    expect(batchDoc().instances[RUNNING].status).toBe('active');
  });

  test('a terminated instance fails at once', async () => {
    seedRun([target(RUNNING, 'running'), target(STOPPED, 'stopped')]);
    const opened = await power(batchEvent('start'), deps(0));
    fleet[STOPPED].state = 'terminated';
    const gate = await power(batchEvent('check-started', opened), deps(30));
    expect(gate).toMatchObject({ complete: true, failed: 1, done: 1 });
    expect(batchDoc().instances[STOPPED]).toMatchObject({ status: 'failed', failedAt: 'power-on', reason: 'instance is terminated' });
  });

  test('a start that fails for one instance fails only that one', async () => {
    seedRun([target(STOPPED, 'stopped'), target(STOPPED2, 'stopped')]);
    ec2.on(StartInstancesCommand).callsFake((input: { InstanceIds: string[] }) => {
      if (input.InstanceIds.includes(STOPPED2)) {
        throw Object.assign(new Error('Insufficient capacity.'), { name: 'InsufficientInstanceCapacity' });
      }
      for (const id of input.InstanceIds) fleet[id].state = 'pending';
      return {};
    });
    const gate = await power(batchEvent('start'), deps(0));
    expect(gate).toMatchObject({ failed: 1, pending: 1 });
    expect(batchDoc().instances[STOPPED].startedByRun).toBe(true);
    expect(batchDoc().instances[STOPPED2]).toMatchObject({
      status: 'failed',
      failedAt: 'power-on',
      reason: 'StartInstances failed: InsufficientInstanceCapacity: Insufficient capacity.',
    });
  });

  test('restore without run.json (discover failed) is a no-op', async () => {
    const gate = await power(runEvent('restore'), deps(0));
    expect(gate).toMatchObject({ complete: true, done: 0, failed: 0, pending: 0 });
    expect(ec2).toHaveReceivedCommandTimes(DescribeInstancesCommand, 0);
    expect(ec2).toHaveReceivedCommandTimes(StopInstancesCommand, 0);
    expect(bucket.has('runs/run-1/restore.json')).toBe(false);
  });

  test('an error stopping one instance does not prevent stopping the others; it is recorded', async () => {
    seedRun([target(STOPPED, 'stopped'), target(STOPPED2, 'stopped')]);
    fleet[STOPPED].state = 'running';
    fleet[STOPPED2].state = 'running';
    ec2.on(StopInstancesCommand).callsFake((input: { InstanceIds: string[] }) => {
      if (input.InstanceIds.includes(STOPPED)) throw Object.assign(new Error('not allowed'), { name: 'UnauthorizedOperation' });
      for (const id of input.InstanceIds) fleet[id].state = 'stopping';
      return { StoppingInstances: input.InstanceIds.map((id) => ({ InstanceId: id, CurrentState: { Name: 'stopping' } })) };
    });

    const restoring = await power(runEvent('restore'), deps(0));

    expect(restoreDoc().instances[STOPPED2]).toEqual({ initialState: 'stopped', finalState: 'stopping', action: 'stopped' });
    expect(restoreDoc().instances[STOPPED]).toEqual({
      initialState: 'stopped',
      finalState: 'running',
      action: 'none',
      error: 'StopInstances failed: UnauthorizedOperation: not allowed',
    });
    expect(restoring).toMatchObject({ complete: false, pending: 2 });

    // Deadline: the one that never stopped is failed, the other is done.
    fleet[STOPPED2].state = 'stopped';
    const late = await power(runEvent('check-restored', restoring), deps(600));
    expect(late).toMatchObject({ complete: true, done: 1, failed: 1, pending: 0 });
    expect(restoreDoc().instances[STOPPED].error).toMatch(/not stopped within 600 s \(state running\)/);
  });

  test('stops in calls of at most 50 instances', async () => {
    const many = Array.from({ length: 120 }, (_, i) => `i-${(i + 1).toString(16).padStart(17, '0')}`);
    for (const id of many) fleet[id] = { state: 'running', ping: 'Online' };
    seedRun(many.map((id) => target(id, 'stopped')));

    const gate = await power(runEvent('restore'), deps(0));

    expect(gate.pending).toBe(120);
    const calls = ec2.commandCalls(StopInstancesCommand).map((c) => c.args[0].input.InstanceIds?.length);
    expect(calls).toEqual([50, 50, 20]);
  });

  test('check actions need the gate', async () => {
    seedRun([target(RUNNING, 'running')]);
    await expect(power(batchEvent('check-started'), deps(0))).rejects.toThrow(/needs the gate/);
  });
});
