import { CreateSnapshotsCommand, DescribeSnapshotsCommand, EC2Client, Snapshot } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { activeInstances } from '../../../lambda/shared/run-data';
import { snapshot, SnapshotEvent } from '../../../lambda/snapshot/snapshot';
import { BatchDocument, GateState, InstanceProgress } from '../../../lambda/shared/types';
import { testConfig } from '../../helpers/fixtures';
import { mockS3Memory } from '../../helpers/s3-memory';

const ec2 = mockClient(EC2Client);
const { bucket } = mockS3Memory(ec2);

const CONFIG = testConfig({ powerOnTimeoutSeconds: 600, snapshotTimeoutSeconds: 1800 });
const T0 = new Date('2024-06-01T10:00:00Z');
const deps = (seconds = 0) => ({ ec2: new EC2Client({}), s3: new S3Client({}), now: () => new Date(T0.getTime() + seconds * 1000) });
const event = (action: 'create' | 'check', gate?: GateState): SnapshotEvent => ({ action, runId: 'run-1', bucket: 'b', config: CONFIG, batchId: 'b000', ...(gate ? { gate } : {}) });

const A = 'i-0000000000000000a';
const B = 'i-0000000000000000b';
const C = 'i-0000000000000000c';

/** Snapshots by id; CreateSnapshots adds one per volume, pending. */
let snapshots: Record<string, Snapshot>;
const volumes: Record<string, string[]> = { [A]: ['vol-a1', 'vol-a2'], [B]: ['vol-b1'], [C]: ['vol-c1'] };

function seedBatch(ids: string[], failed: Record<string, string> = {}): void {
  const batch: BatchDocument = {
    runId: 'run-1',
    batchId: 'b000',
    instanceIds: ids,
    instances: Object.fromEntries(
      ids.map((id) => [id, failed[id] ? { status: 'failed' as const, failedAt: failed[id], reason: 'x', stages: {} } : { status: 'active' as const, stages: {} }]),
    ),
    updatedAt: T0.toISOString(),
  };
  bucket.put('runs/run-1/batches/b000.json', batch);
}
const batchDoc = () => bucket.json<BatchDocument>('runs/run-1/batches/b000.json');
/** The instance left the pipeline at the snapshot stage (as `details` say) and only `stillActive` go on. */
function expectSnapshotFailure(instanceId: string, details: Partial<InstanceProgress>, stillActive: string[]): void {
  expect(batchDoc().instances[instanceId]).toMatchObject({ status: 'failed', failedAt: 'snapshot', ...details });
  expect(activeInstances(batchDoc())).toEqual(stillActive);
}
const setState = (instanceId: string, State: Snapshot['State'], extra: Partial<Snapshot> = {}) => {
  for (const s of Object.values(snapshots)) if (s.VolumeId && volumes[instanceId].includes(s.VolumeId)) Object.assign(s, { State, ...extra });
};

beforeEach(() => {
  snapshots = {};
  ec2.on(CreateSnapshotsCommand).callsFake((input: { InstanceSpecification: { InstanceId: string } }) => {
    const made = volumes[input.InstanceSpecification.InstanceId].map((VolumeId) => {
      const s: Snapshot = { SnapshotId: `snap-${VolumeId}`, VolumeId, State: 'pending', Progress: '0%' };
      snapshots[s.SnapshotId!] = s;
      return s;
    });
    return { Snapshots: made.map((s) => ({ SnapshotId: s.SnapshotId, VolumeId: s.VolumeId, State: 'pending' })) };
  });
  ec2.on(DescribeSnapshotsCommand).callsFake((input: { Filters?: { Name: string; Values: string[] }[] }) => {
    const ids = input.Filters?.find((f) => f.Name === 'snapshot-id')?.Values ?? [];
    return { Snapshots: ids.filter((id) => snapshots[id]).map((id) => ({ ...snapshots[id] })) };
  });
});

describe('snapshot', () => {
  test('creates crash-consistent snapshots of every volume, tagged with run, instance and expiry', async () => {
    seedBatch([A, B]);

    const gate = await snapshot(event('create'), deps());

    expect(gate).toMatchObject({ complete: false, pending: 2, done: 0, failed: 0, deadline: '2024-06-01T10:30:00.000Z', waitSeconds: 60 });
    expect(ec2).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 2);
    expect(ec2).toHaveReceivedCommandWith(CreateSnapshotsCommand, {
      InstanceSpecification: { InstanceId: A, ExcludeBootVolume: false },
      CopyTagsFromSource: 'volume',
      Description: expect.stringContaining('run-1'),
      TagSpecifications: [
        {
          ResourceType: 'snapshot',
          Tags: [
            { Key: 'patch-pipeline:run-id', Value: 'run-1' },
            { Key: 'patch-pipeline:instance-id', Value: A },
            { Key: 'patch-pipeline:expires-on', Value: '2024-06-15' },
            { Key: 'CreatedBy', Value: 'patch-pipeline' },
          ],
        },
      ],
    });
    expect(batchDoc().instances[A]).toMatchObject({ status: 'active', snapshotIds: ['snap-vol-a1', 'snap-vol-a2'], snapshotState: 'pending' });
  });

  test('an instance whose snapshots completed stays active; the gate completes', async () => {
    seedBatch([A, B]);
    const opened = await snapshot(event('create'), deps());

    setState(A, 'completed');
    const half = await snapshot(event('check', opened), deps(60));
    expect(half).toMatchObject({ complete: false, done: 1, pending: 1, checks: 1 });

    setState(B, 'completed');
    const done = await snapshot(event('check', half), deps(120));
    expect(done).toMatchObject({ complete: true, done: 2, pending: 0, failed: 0 });
    expect(batchDoc().instances[A]).toMatchObject({ status: 'active', snapshotState: 'completed' });
    expect(activeInstances(batchDoc())).toEqual([A, B]);
  });

  test('an instance is done only when all its snapshots completed', async () => {
    seedBatch([A]);
    const opened = await snapshot(event('create'), deps());
    snapshots['snap-vol-a1'].State = 'completed';
    expect(await snapshot(event('check', opened), deps(60))).toMatchObject({ complete: false, pending: 1, done: 0 });
  });

  test('a failed CreateSnapshots call excludes that instance; the others go on', async () => {
    seedBatch([A, B]);
    ec2.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: B, ExcludeBootVolume: false } }).rejects(
      Object.assign(new Error('You have reached the limit on the number of snapshots'), { name: 'SnapshotLimitExceeded' }),
    );

    const gate = await snapshot(event('create'), deps());

    expect(gate).toMatchObject({ pending: 1, failed: 1 });
    expectSnapshotFailure(B, { reason: 'CreateSnapshots failed: SnapshotLimitExceeded: You have reached the limit on the number of snapshots' }, [A]);
  });

  test('a snapshot in state error fails its instance with the StateMessage; it never reaches later stages', async () => {
    seedBatch([A, B]);
    const opened = await snapshot(event('create'), deps());
    setState(A, 'completed');
    snapshots['snap-vol-b1'].State = 'error';
    snapshots['snap-vol-b1'].StateMessage = 'Internal error creating the snapshot';

    const gate = await snapshot(event('check', opened), deps(60));

    expect(gate).toMatchObject({ complete: true, done: 1, failed: 1, pending: 0 });
    expectSnapshotFailure(B, { snapshotState: 'error', reason: 'snapshot snap-vol-b1 failed: Internal error creating the snapshot' }, [A]);
  });

  test('at the deadline the pending instances fail: snapshot not completed within N s', async () => {
    seedBatch([A, B]);
    const opened = await snapshot(event('create'), deps());
    setState(A, 'completed');

    const before = await snapshot(event('check', opened), deps(1799));
    expect(before).toMatchObject({ complete: false, pending: 1 });
    expect(before.waitSeconds).toBe(1);

    const after = await snapshot(event('check', before), deps(1800));
    expect(after).toMatchObject({ complete: true, done: 1, failed: 1, pending: 0 });
    expectSnapshotFailure(B, {}, [A]);
    expect(batchDoc().instances[B].reason).toMatch(/^snapshot not completed within 1800 s \(snap-vol-b1 pending 0%\)$/);
  });

  test('skips instances that already left the pipeline, and does not snapshot twice on a retry', async () => {
    seedBatch([A, B, C], { [C]: 'power-on' });
    await snapshot(event('create'), deps());
    await snapshot(event('create'), deps(5));
    expect(ec2).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 2);
    expect(ec2).not.toHaveReceivedCommandWith(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: C, ExcludeBootVolume: false } });
    expect(batchDoc().instances[C]).toMatchObject({ status: 'failed', failedAt: 'power-on' });
  });

  test('a batch with no active instance completes at once', async () => {
    seedBatch([C], { [C]: 'power-on' });
    expect(await snapshot(event('create'), deps())).toMatchObject({ complete: true, pending: 0, done: 0, failed: 0 });
    expect(ec2).toHaveReceivedCommandTimes(DescribeSnapshotsCommand, 0);
  });
});
