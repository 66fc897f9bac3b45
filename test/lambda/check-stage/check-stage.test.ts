import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { CancelCommandCommand, ListCommandInvocationsCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { checkStage } from '../../../lambda/check-stage/check-stage';
import { openGate } from '../../../lambda/shared/gate';
import { batchKey, markerKey, markerPrefix } from '../../../lambda/shared/keys';
import { BatchDocument, GateState, InstanceProgress, Marker, StageTaskInput } from '../../../lambda/shared/types';
import { mockS3Memory } from '../../helpers/s3-memory';
import { activeProgress, BATCH_ID, batchOf, BUCKET, CONFIG, PATCH, RUN_ID } from '../../helpers/stage-fixtures';

const ssmMock = mockClient(SSMClient);
const { s3Mock, bucket: s3 } = mockS3Memory(ssmMock);
const STARTED = new Date('2024-06-01T10:00:00.000Z');
const CHECKED = new Date('2024-06-01T10:05:00.000Z');
const AFTER_DEADLINE = new Date('2024-06-01T12:00:00.000Z'); // patch timeout is 7200 s
const COMMAND_ID = 'cmd-1';

const pendingPatch = (): InstanceProgress =>
  activeProgress({ stages: { patch: { status: 'Pending', commandId: COMMAND_ID, startedAt: STARTED.toISOString() } } });
const gate = (pending: number): GateState =>
  openGate(STARTED, CONFIG.stageTimeouts.patch, CONFIG.pollIntervalSeconds, { done: 0, failed: 0, pending }, COMMAND_ID);
const event = (g: GateState): StageTaskInput => ({ runId: RUN_ID, bucket: BUCKET, config: CONFIG, batchId: BATCH_ID, stage: PATCH, gate: g });
const deps = (now = CHECKED) => ({ ssm: new SSMClient({}), s3: new S3Client({}), now: () => now });
const storedBatch = () => s3.json<BatchDocument>(batchKey(RUN_ID, BATCH_ID));

function givenPending(...ids: string[]): void {
  s3.put(batchKey(RUN_ID, BATCH_ID), batchOf(Object.fromEntries(ids.map((id) => [id, pendingPatch()]))));
}
function givenMarker(instanceId: string, overrides: Partial<Marker> = {}): void {
  const marker: Marker = {
    runId: RUN_ID,
    stage: 'patch',
    instanceId,
    status: 'Success',
    startedAt: '2024-06-01T10:01:00.000Z',
    finishedAt: '2024-06-01T10:04:00.000Z',
    detail: 'installed 3 updates',
    ...overrides,
  };
  s3.put(markerKey(RUN_ID, 'patch', instanceId), marker);
}
function givenInvocations(...invocations: { InstanceId: string; Status: string; StatusDetails?: string }[]): void {
  ssmMock.on(ListCommandInvocationsCommand).resolves({
    CommandInvocations: invocations.map((i) => ({ CommandId: COMMAND_ID, StatusDetails: i.Status, ...i })) as never,
  });
}

beforeEach(() => {
  ssmMock.on(CancelCommandCommand).resolves({});
});

describe('check-stage', () => {
  test('marks an instance done when its marker says Success', async () => {
    givenPending('i-a');
    givenMarker('i-a');
    givenInvocations({ InstanceId: 'i-a', Status: 'Success' });

    const result = await checkStage(event(gate(1)), deps());

    expect(result).toMatchObject({ complete: true, done: 1, failed: 0, pending: 0, checks: 1, commandId: COMMAND_ID });
    const p = storedBatch().instances['i-a'];
    expect(p.status).toBe('active');
    expect(p.stages.patch).toMatchObject({ status: 'Success', commandId: COMMAND_ID, finishedAt: '2024-06-01T10:04:00.000Z' });
  });

  test('trusts a Success marker written while the invocation is still in progress', async () => {
    givenPending('i-a');
    givenMarker('i-a');
    givenInvocations({ InstanceId: 'i-a', Status: 'InProgress' });

    const result = await checkStage(event(gate(1)), deps());

    expect(result).toMatchObject({ complete: true, done: 1 });
  });

  test('fails an instance whose marker says Failed, with the marker detail', async () => {
    givenPending('i-a', 'i-b');
    givenMarker('i-a', { status: 'Failed', detail: 'apt-get exited 100' });
    givenMarker('i-b');
    givenInvocations({ InstanceId: 'i-a', Status: 'Failed' }, { InstanceId: 'i-b', Status: 'Success' });

    const result = await checkStage(event(gate(2)), deps());

    expect(result).toMatchObject({ complete: true, done: 1, failed: 1, pending: 0 });
    const a = storedBatch().instances['i-a'];
    expect(a).toMatchObject({ status: 'failed', failedAt: 'patch', reason: 'marker: apt-get exited 100' });
    expect(a.stages.patch).toMatchObject({ status: 'Failed', reason: 'marker: apt-get exited 100', finishedAt: CHECKED.toISOString() });
    expect(storedBatch().instances['i-b'].status).toBe('active');
  });

  test.each([
    ['Failed', 'Failed', 'command Failed: Failed'],
    ['TimedOut', 'ExecutionTimedOut', 'command TimedOut: ExecutionTimedOut'],
    ['Failed', 'Undeliverable', 'command Failed: Undeliverable'],
    ['Cancelled', 'Cancelled', 'command Cancelled: Cancelled'],
  ])('fails at once, before the stage timeout, an invocation ended %s (%s) without a marker', async (Status, StatusDetails, reason) => {
    givenPending('i-a', 'i-b');
    givenInvocations({ InstanceId: 'i-a', Status, StatusDetails }, { InstanceId: 'i-b', Status: 'InProgress' });

    const result = await checkStage(event(gate(2)), deps());

    expect(result).toMatchObject({ complete: false, failed: 1, pending: 1, waitSeconds: 60 });
    expect(storedBatch().instances['i-a']).toMatchObject({ status: 'failed', failedAt: 'patch', reason });
    expect(ssmMock).not.toHaveReceivedCommand(CancelCommandCommand);
  });

  test('fails an instance whose invocation reports Success but wrote no marker', async () => {
    givenPending('i-a');
    givenInvocations({ InstanceId: 'i-a', Status: 'Success' });

    const result = await checkStage(event(gate(1)), deps());

    expect(result).toMatchObject({ complete: true, failed: 1 });
    expect(storedBatch().instances['i-a'].reason).toBe('command reported Success but wrote no completion marker');
  });

  test('fails a Success marker whose invocation ended Failed, naming both', async () => {
    givenPending('i-a');
    givenMarker('i-a');
    givenInvocations({ InstanceId: 'i-a', Status: 'Failed', StatusDetails: 'Failed' });

    await checkStage(event(gate(1)), deps());

    const reason = storedBatch().instances['i-a'].reason ?? '';
    expect(reason).toMatch(/marker says Success/);
    expect(reason).toMatch(/command Failed/);
  });

  test('rejects a marker written for another run as invalid', async () => {
    givenPending('i-a');
    givenMarker('i-a', { runId: 'another-run' });
    givenInvocations({ InstanceId: 'i-a', Status: 'Success' });

    await checkStage(event(gate(1)), deps());

    expect(storedBatch().instances['i-a']).toMatchObject({
      status: 'failed',
      reason: `invalid marker: runId is "another-run", expected "${RUN_ID}"`,
    });
  });

  test('rejects a marker that is not JSON as invalid', async () => {
    givenPending('i-a');
    s3.put(markerKey(RUN_ID, 'patch', 'i-a'), '{"runId": ');
    givenInvocations({ InstanceId: 'i-a', Status: 'Success' });

    await checkStage(event(gate(1)), deps());

    expect(storedBatch().instances['i-a'].reason).toMatch(/^invalid marker: not JSON/);
  });

  test('keeps waiting while invocations run and no marker exists', async () => {
    givenPending('i-a');
    givenInvocations({ InstanceId: 'i-a', Status: 'InProgress' });

    const result = await checkStage(event(gate(1)), deps());

    expect(result).toMatchObject({ complete: false, pending: 1, waitSeconds: 60, checks: 1 });
    expect(storedBatch().instances['i-a'].stages.patch.status).toBe('Pending');
  });

  test('fails the pending instances at the stage timeout and cancels their commands', async () => {
    givenPending('i-a', 'i-b', 'i-c');
    givenMarker('i-a');
    givenInvocations({ InstanceId: 'i-a', Status: 'Success' }, { InstanceId: 'i-b', Status: 'InProgress' });

    const result = await checkStage(event(gate(3)), deps(AFTER_DEADLINE));

    expect(result).toMatchObject({ complete: true, done: 1, failed: 2, pending: 0 });
    const batch = storedBatch();
    expect(batch.instances['i-b']).toMatchObject({ status: 'failed', failedAt: 'patch', reason: 'stage timed out after 7200 s (command status: InProgress)' });
    expect(batch.instances['i-c'].reason).toBe('stage timed out after 7200 s (command status: no invocation)');
    expect(ssmMock).toHaveReceivedCommandTimes(CancelCommandCommand, 1);
    expect(ssmMock).toHaveReceivedCommandWith(CancelCommandCommand, { CommandId: COMMAND_ID, InstanceIds: ['i-b', 'i-c'] });
  });

  test('does not fail the check when cancelling a timed-out command fails', async () => {
    givenPending('i-a');
    givenInvocations({ InstanceId: 'i-a', Status: 'InProgress' });
    ssmMock.on(CancelCommandCommand).rejects(new Error('InvalidCommandId'));

    const result = await checkStage(event(gate(1)), deps(AFTER_DEADLINE));

    expect(result).toMatchObject({ complete: true, failed: 1 });
  });

  test('reads every page of ListCommandInvocations', async () => {
    givenPending('i-a', 'i-b');
    ssmMock
      .on(ListCommandInvocationsCommand, { CommandId: COMMAND_ID, NextToken: undefined })
      .resolves({ CommandInvocations: [{ InstanceId: 'i-a', Status: 'InProgress' }], NextToken: 'page-2' })
      .on(ListCommandInvocationsCommand, { CommandId: COMMAND_ID, NextToken: 'page-2' })
      .resolves({ CommandInvocations: [{ InstanceId: 'i-b', Status: 'TimedOut', StatusDetails: 'DeliveryTimedOut' }] });

    const result = await checkStage(event(gate(2)), deps());

    expect(ssmMock).toHaveReceivedCommandTimes(ListCommandInvocationsCommand, 2);
    expect(ssmMock).toHaveReceivedNthSpecificCommandWith(2, ListCommandInvocationsCommand, { CommandId: COMMAND_ID, NextToken: 'page-2' });
    expect(result).toMatchObject({ failed: 1, pending: 1 });
    expect(storedBatch().instances['i-b'].reason).toBe('command TimedOut: DeliveryTimedOut');
  });

  test('reads every page of the marker listing', async () => {
    givenPending('i-a', 'i-b', 'i-c');
    givenMarker('i-a');
    givenMarker('i-b');
    givenMarker('i-c');
    givenInvocations({ InstanceId: 'i-a', Status: 'Success' }, { InstanceId: 'i-b', Status: 'Success' }, { InstanceId: 'i-c', Status: 'Success' });
    // One key per page, whatever MaxKeys says, so the listing needs three requests.
    s3Mock.on(ListObjectsV2Command).callsFake(async (input: { Prefix?: string; ContinuationToken?: string }) => {
      const keys = s3.list(input.Prefix ?? '');
      const start = Number(input.ContinuationToken ?? 0);
      const more = start + 1 < keys.length;
      return { Contents: [{ Key: keys[start] }], IsTruncated: more, ...(more ? { NextContinuationToken: String(start + 1) } : {}) };
    });

    const result = await checkStage(event(gate(3)), deps());

    expect(s3Mock).toHaveReceivedCommandTimes(ListObjectsV2Command, 3);
    expect(s3Mock).toHaveReceivedCommandWith(ListObjectsV2Command, { Bucket: BUCKET, Prefix: markerPrefix(RUN_ID, 'patch') });
    expect(result).toMatchObject({ complete: true, done: 3, failed: 0, pending: 0 });
  });

  test('lists the invocations before the markers and reads only markers of pending instances', async () => {
    s3.put(
      batchKey(RUN_ID, BATCH_ID),
      batchOf({
        'i-a': pendingPatch(),
        'i-done': activeProgress({ stages: { patch: { status: 'Success', commandId: COMMAND_ID } } }),
      }),
    );
    givenMarker('i-a');
    givenMarker('i-done');
    givenInvocations({ InstanceId: 'i-a', Status: 'Success' }, { InstanceId: 'i-done', Status: 'Success' });

    const result = await checkStage(event(gate(2)), deps());

    const invocationsCall = ssmMock.commandCalls(ListCommandInvocationsCommand)[0];
    const listingCall = s3Mock.commandCalls(ListObjectsV2Command)[0];
    expect(invocationsCall.calledBefore(listingCall)).toBe(true);
    expect(s3Mock).toHaveReceivedCommandWith(GetObjectCommand, { Key: markerKey(RUN_ID, 'patch', 'i-a') });
    expect(s3Mock).not.toHaveReceivedCommandWith(GetObjectCommand, { Key: markerKey(RUN_ID, 'patch', 'i-done') });
    expect(result).toMatchObject({ complete: true, done: 2 });
  });

  test('calls nothing in SSM when no instance is pending', async () => {
    s3.put(batchKey(RUN_ID, BATCH_ID), batchOf({ 'i-a': activeProgress({ status: 'failed', failedAt: 'snapshot' }) }));

    const result = await checkStage(event(gate(0)), deps());

    expect(ssmMock).not.toHaveReceivedCommand(ListCommandInvocationsCommand);
    expect(result).toMatchObject({ complete: true, pending: 0 });
  });
});
