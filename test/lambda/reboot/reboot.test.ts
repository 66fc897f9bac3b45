import { DescribeInstancesCommand, EC2Client, RebootInstancesCommand } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { DescribeInstanceInformationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { parseOrder, reboot, RebootEvent } from '../../../lambda/reboot/reboot';
import { ApprovalRecord, approvalKey, ApprovalStatus, chunkId } from '../../../lambda/shared/approvals';
import { BatchDocument, GateState } from '../../../lambda/shared/types';
import { testConfig } from '../../helpers/fixtures';
import { mockS3Memory } from '../../helpers/s3-memory';

const ec2 = mockClient(EC2Client);
const ssm = mockClient(SSMClient);
const { bucket } = mockS3Memory(ec2, ssm);

const TIMEOUT = 600;
const CONFIG = testConfig({ pollIntervalSeconds: 30, approval: { ...testConfig().approval, rebootTimeoutSeconds: TIMEOUT } });
const T0 = new Date('2026-11-28T22:00:00Z');
const at = (seconds: number): Date => new Date(T0.getTime() + seconds * 1000);
const deps = (seconds = 0) => ({ ec2: new EC2Client({}), ssm: new SSMClient({}), s3: new S3Client({}), now: () => at(seconds) });
const GROUP = 'a000';

const id = (n: number): string => `i-${n.toString(16).padStart(17, '0')}`;

interface SimInstance {
  state: string;
  order?: string;
  ping?: string;
  lastPing?: Date;
  /** Seconds after the reboot request at which the agent pings again (undefined: never). */
  backAfter?: number;
}

/** The simulated fleet; RebootInstances records when each instance was asked to reboot. */
let fleet: Record<string, SimInstance>;
let rebootCalls: string[][];
let refuse: (ids: string[]) => Error | undefined;

/** Moves the clock of the fleet: instances whose reboot finished ping again. */
function advanceFleet(seconds: number): void {
  for (const [instanceId, sim] of Object.entries(fleet)) {
    const requested = rebootCalls.findIndex((call) => call.includes(instanceId));
    if (requested < 0 || sim.backAfter === undefined) continue;
    const requestedAt = requestTimes[requested];
    if (seconds >= requestedAt + sim.backAfter) sim.lastPing = at(requestedAt + sim.backAfter);
  }
}
let requestTimes: number[];
let clock: number;

async function run(action: 'reboot' | 'check-rebooted', seconds: number, gate?: GateState): Promise<GateState> {
  clock = seconds;
  advanceFleet(seconds);
  const event: RebootEvent = { action, runId: 'run-1', bucket: 'b', config: CONFIG, groupId: GROUP, ...(gate ? { gate } : {}) };
  return reboot(event, deps(seconds));
}

function seedGroup(ids: string[], options: { status?: ApprovalStatus; chunkSize?: number } = {}): void {
  const size = options.chunkSize ?? 50;
  const chunks: string[] = [];
  for (let i = 0; i * size < ids.length; i++) {
    const instanceIds = ids.slice(i * size, (i + 1) * size);
    const doc: BatchDocument = {
      runId: 'run-1',
      batchId: chunkId(GROUP, i),
      instanceIds,
      instances: Object.fromEntries(instanceIds.map((x) => [x, { status: 'active' as const, stages: {} }])),
      updatedAt: T0.toISOString(),
    };
    bucket.put(`runs/run-1/batches/${doc.batchId}.json`, doc);
    chunks.push(doc.batchId);
  }
  const record: ApprovalRecord = {
    runId: 'run-1',
    groupId: GROUP,
    application: 'orders',
    approver: 'ops@example.com',
    approverSource: 'config',
    instanceIds: ids,
    chunks,
    approvalId: 'opaque',
    expiresAt: at(86400).toISOString(),
    status: options.status ?? 'approved',
    requestedAt: T0.toISOString(),
  };
  bucket.put(approvalKey('run-1', GROUP), record);
}

const chunkDoc = (n = 0) => bucket.json<BatchDocument>(`runs/run-1/batches/${chunkId(GROUP, n)}.json`);
const outcome = (instanceId: string, n = 0) => chunkDoc(n).instances[instanceId];

const filterIds = (filters: { Name?: string; Key?: string; Values?: string[] }[] | undefined, name: string) =>
  filters?.find((f) => f.Name === name || f.Key === name)?.Values ?? [];

beforeEach(() => {
  fleet = {};
  rebootCalls = [];
  requestTimes = [];
  clock = 0;
  refuse = () => undefined;
  ec2.on(DescribeInstancesCommand).callsFake((input) => ({
    Reservations: [
      {
        Instances: filterIds(input.Filters, 'instance-id')
          .filter((x) => fleet[x])
          .map((x) => ({
            InstanceId: x,
            State: { Name: fleet[x].state },
            Tags: [{ Key: 'Name', Value: x }, ...(fleet[x].order !== undefined ? [{ Key: 'RebootOrder', Value: fleet[x].order }] : [])],
          })),
      },
    ],
  }));
  ec2.on(RebootInstancesCommand).callsFake((input: { InstanceIds: string[] }) => {
    const err = refuse(input.InstanceIds);
    if (err) throw err;
    rebootCalls.push([...input.InstanceIds]);
    requestTimes.push(clock);
    return {};
  });
  ssm.on(DescribeInstanceInformationCommand).callsFake((input) => ({
    InstanceInformationList: filterIds(input.Filters, 'InstanceIds')
      .filter((x) => fleet[x]?.ping)
      .map((x) => ({ InstanceId: x, PingStatus: fleet[x].ping, ...(fleet[x].lastPing ? { LastPingDateTime: fleet[x].lastPing } : {}) })),
  }));
});

/** A running, online instance whose last ping was before the run's reboot; back `backAfter` s after its reboot request. */
const online = (order?: string, backAfter?: number): SimInstance => ({ state: 'running', ping: 'Online', lastPing: at(-120), order, backAfter });

describe('reboot', () => {
  test('reboots in order of the RebootOrder tag, lowest first, untagged and invalid tags last, each order after the previous is back', async () => {
    // Given two instances of order 1, one of order 2, one untagged and one with a tag that is no number
    const [a, b, c, d, e] = [1, 2, 3, 4, 5].map(id);
    fleet = { [a]: online('1', 20), [b]: online(' 1 ', 50), [c]: online('2', 20), [d]: online(undefined, 20), [e]: online('first', 20) };
    seedGroup([d, c, b, a, e], { chunkSize: 3 });

    // When the group's reboot starts, only order 1 is rebooted
    const opened = await run('reboot', 0);
    expect(rebootCalls).toEqual([[b, a]]);
    expect(opened).toMatchObject({ complete: false, pending: 5, done: 0, failed: 0, waitSeconds: 30, deadline: at(TIMEOUT).toISOString() });
    expect(outcome(a, 1).stages.reboot).toEqual({ status: 'Pending', startedAt: T0.toISOString() });
    expect(outcome(c).stages.reboot).toEqual({ status: 'Pending' });
    expect([d, c, b].map((x) => outcome(x).rebootOrder)).toEqual([null, 2, 1]);
    expect([a, e].map((x) => outcome(x, 1).rebootOrder)).toEqual([1, null]);

    // Then order 2 waits while one instance of order 1 is not back
    const partly = await run('check-rebooted', 30, opened);
    expect(rebootCalls).toHaveLength(1);
    expect(outcome(a, 1).stages.reboot).toEqual({ status: 'Success', startedAt: T0.toISOString(), finishedAt: at(30).toISOString() });
    expect(partly).toMatchObject({ complete: false, done: 1, pending: 4, checks: 1 });

    // Order 1 back: order 2 starts
    const second = await run('check-rebooted', 60, partly);
    expect(rebootCalls).toEqual([[b, a], [c]]);
    expect(outcome(c).stages.reboot).toEqual({ status: 'Pending', startedAt: at(60).toISOString() });

    // Order 2 back: the untagged and the invalid tag together, last
    const third = await run('check-rebooted', 90, second);
    expect(rebootCalls).toEqual([[b, a], [c], [d, e]]);

    const done = await run('check-rebooted', 120, third);
    expect(done).toMatchObject({ complete: true, done: 5, failed: 0, pending: 0 });
    for (const [x, n] of [[a, 1], [b, 0], [c, 0], [d, 0], [e, 1]] as const) expect(outcome(x, n)).toMatchObject({ status: 'active', stages: { reboot: { status: 'Success' } } });
  });

  test('an instance that never comes back fails at the deadline while the others succeed', async () => {
    const [good, lost] = [1, 2].map(id);
    fleet = { [good]: online(undefined, 40), [lost]: online(undefined, undefined) };
    seedGroup([good, lost]);

    let gate = await run('reboot', 0);
    for (const seconds of [30, 60, 90]) gate = await run('check-rebooted', seconds, gate);
    expect(gate).toMatchObject({ complete: false, done: 1, pending: 1 });

    const late = await run('check-rebooted', TIMEOUT + 5, gate);
    expect(late).toMatchObject({ complete: true, done: 1, failed: 1, pending: 0 });
    expect(outcome(good)).toMatchObject({ status: 'active', stages: { reboot: { status: 'Success' } } });
    const reason = `did not come back online within ${TIMEOUT} s after its reboot (state running, ping Online at ${at(-120).toISOString()})`;
    expect(outcome(lost)).toEqual({
      status: 'failed',
      failedAt: 'reboot',
      reason,
      rebootOrder: null,
      stages: { reboot: { status: 'Failed', reason, startedAt: T0.toISOString(), finishedAt: at(TIMEOUT + 5).toISOString() } },
    });
  });

  test('a ping older than the reboot request, or only seconds after it, is not "back"', async () => {
    const x = id(1);
    fleet = { [x]: online() };
    seedGroup([x]);
    const opened = await run('reboot', 0);

    // Online with a ping from before the reboot: the agent has not noticed the reboot yet
    const stale = await run('check-rebooted', 30, opened);
    expect(stale).toMatchObject({ complete: false, pending: 1, done: 0 });

    // A ping 2 s after the request may still come from the old boot
    fleet[x].lastPing = at(2);
    const early = await run('check-rebooted', 60, stale);
    expect(early).toMatchObject({ complete: false, pending: 1 });
    expect(outcome(x).stages.reboot.status).toBe('Pending');

    fleet[x].lastPing = at(45);
    expect(await run('check-rebooted', 90, early)).toMatchObject({ complete: true, done: 1 });
  });

  test('running but not Online in SSM is not back', async () => {
    const x = id(1);
    fleet = { [x]: { state: 'running', ping: 'ConnectionLost', lastPing: at(50) } };
    seedGroup([x]);
    const opened = await run('reboot', 0);
    expect(await run('check-rebooted', 60, opened)).toMatchObject({ complete: false, pending: 1 });
  });

  test('a RebootInstances error fails only the instances of that call, with the AWS error', async () => {
    // Given 55 instances of one order: two calls, the first (50 ids) refused
    const ids = Array.from({ length: 55 }, (_, i) => id(i + 1));
    fleet = Object.fromEntries(ids.map((x) => [x, online(undefined, 20)]));
    seedGroup(ids);
    refuse = (callIds) =>
      callIds.includes(ids[7]) ? Object.assign(new Error(`The instance '${ids[7]}' is not in a state from which it can be rebooted.`), { name: 'IncorrectInstanceState' }) : undefined;

    const opened = await run('reboot', 0);
    expect(ec2).toHaveReceivedCommandTimes(RebootInstancesCommand, 2);
    expect(rebootCalls).toEqual([ids.slice(50)]);
    expect(opened).toMatchObject({ complete: false, failed: 50, pending: 5 });
    const reason = `RebootInstances failed: IncorrectInstanceState: The instance '${ids[7]}' is not in a state from which it can be rebooted.`;
    expect(outcome(ids[0])).toMatchObject({ status: 'failed', failedAt: 'reboot', reason, stages: { reboot: { status: 'Failed', reason } } });
    expect(outcome(ids[0]).stages.reboot.startedAt).toBeUndefined();

    const done = await run('check-rebooted', 30, opened);
    expect(done).toMatchObject({ complete: true, done: 5, failed: 50, pending: 0 });
  });

  test('when every reboot of an order is refused, the next order starts at once', async () => {
    const [first, second] = [1, 2].map(id);
    fleet = { [first]: online('1', 20), [second]: online('2', 20) };
    seedGroup([first, second]);
    refuse = (callIds) => (callIds.includes(first) ? Object.assign(new Error('denied'), { name: 'UnauthorizedOperation' }) : undefined);

    const opened = await run('reboot', 0);
    expect(rebootCalls).toEqual([[second]]);
    expect(opened).toMatchObject({ failed: 1, pending: 1 });
  });

  test('a terminated or stopped instance fails at once and does not hold back the next order', async () => {
    const [gone, stopped, next] = [1, 2, 3].map(id);
    fleet = { [gone]: { state: 'terminated', order: '1' }, [stopped]: { ...online('1', 20) }, [next]: online('2', 20) };
    seedGroup([gone, stopped, next]);

    const opened = await run('reboot', 0);
    expect(outcome(gone)).toMatchObject({ status: 'failed', failedAt: 'reboot', reason: 'instance is terminated' });
    expect(rebootCalls).toEqual([[stopped]]);

    // The rebooted one is stopped meanwhile: it fails at the next check, and order 2 starts
    fleet[stopped] = { state: 'stopped' };
    const checked = await run('check-rebooted', 30, opened);
    expect(outcome(stopped)).toMatchObject({ status: 'failed', failedAt: 'reboot', reason: 'instance is stopped' });
    expect(outcome(stopped).stages.reboot).toMatchObject({ status: 'Failed', startedAt: T0.toISOString(), finishedAt: at(30).toISOString() });
    expect(rebootCalls).toEqual([[stopped], [next]]);
    expect(checked).toMatchObject({ complete: false, failed: 2, pending: 1 });
  });

  test('at the deadline the instances still queued behind an earlier order fail as not rebooted', async () => {
    const [slow, queued] = [1, 2].map(id);
    fleet = { [slow]: online('1'), [queued]: online('5', 20) };
    seedGroup([slow, queued]);
    const opened = await run('reboot', 0);
    const late = await run('check-rebooted', TIMEOUT, opened);
    expect(late).toMatchObject({ complete: true, failed: 2, pending: 0 });
    expect(rebootCalls).toEqual([[slow]]);
    expect(outcome(queued).reason).toBe(`not rebooted: reboot order 5 was still waiting for order 1 when the ${TIMEOUT} s reboot timeout ended`);
    expect(outcome(queued).stages.reboot.startedAt).toBeUndefined();
  });

  test('reboots only the active instances; those that left the pipeline earlier are left alone', async () => {
    const [active, failedEarlier] = [1, 2].map(id);
    fleet = { [active]: online(undefined, 20), [failedEarlier]: online(undefined, 20) };
    seedGroup([active, failedEarlier]);
    const doc = chunkDoc();
    Object.assign(doc.instances[failedEarlier], { status: 'failed', failedAt: 'verify', reason: 'x' });
    bucket.put(`runs/run-1/batches/${doc.batchId}.json`, doc);

    const opened = await run('reboot', 0);
    expect(rebootCalls).toEqual([[active]]);
    expect(opened).toMatchObject({ pending: 1, failed: 0, done: 0 });
    expect(outcome(failedEarlier).stages.reboot).toBeUndefined();
  });

  test('a retried reboot action does not reboot an instance twice', async () => {
    const x = id(1);
    fleet = { [x]: online(undefined, 100) };
    seedGroup([x]);
    await run('reboot', 0);
    const again = await run('reboot', 10);
    expect(rebootCalls).toEqual([[x]]);
    expect(outcome(x).stages.reboot).toEqual({ status: 'Pending', startedAt: T0.toISOString() });
    expect(again).toMatchObject({ pending: 1 });
  });

  test('refuses to reboot a group whose approval record is not approved', async () => {
    const x = id(1);
    fleet = { [x]: online() };
    seedGroup([x], { status: 'rejected' });
    await expect(run('reboot', 0)).rejects.toThrow(/group a000 of run run-1 is rejected, not approved: nothing was rebooted/);
    expect(ec2).toHaveReceivedCommandTimes(RebootInstancesCommand, 0);
  });

  test('fails clearly without the approval record or the gate', async () => {
    await expect(run('reboot', 0)).rejects.toThrow(/approvals\/a000\.json does not exist/);
    seedGroup([id(1)]);
    await expect(run('check-rebooted', 0)).rejects.toThrow(/needs the gate/);
  });

  test('an empty group completes at once', async () => {
    seedGroup([]);
    expect(await run('reboot', 0)).toMatchObject({ complete: true, pending: 0 });
    expect(ec2).toHaveReceivedCommandTimes(RebootInstancesCommand, 0);
  });

  test('parseOrder takes numbers only', () => {
    expect(['1', ' 2 ', '-3', '+4', '1.5', '10'].map(parseOrder)).toEqual([1, 2, -3, 4, 1.5, 10]);
    expect(['', 'first', '1e3', '0x10', '1,5', 'NaN', 'Infinity'].map(parseOrder)).toEqual([null, null, null, null, null, null, null]);
  });
});
