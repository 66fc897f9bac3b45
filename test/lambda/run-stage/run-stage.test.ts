import { S3Client } from '@aws-sdk/client-s3';
import { SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { batchKey } from '../../../lambda/shared/keys';
import { BatchDocument, StageTaskInput } from '../../../lambda/shared/types';
import { commandComment, runStage } from '../../../lambda/run-stage/run-stage';
import { mockS3Memory } from '../../helpers/s3-memory';
import { activeProgress, BATCH_ID, batchOf, BUCKET, CONFIG, PATCH, PRE_INVENTORY, RUN_ID } from '../../helpers/stage-fixtures';

const ssmMock = mockClient(SSMClient);
const { bucket: s3 } = mockS3Memory(ssmMock);
const NOW = new Date('2024-06-01T10:00:00.000Z');
const deps = () => ({ ssm: new SSMClient({}), s3: new S3Client({}), now: () => NOW });

const event = (stage = PRE_INVENTORY): StageTaskInput => ({ runId: RUN_ID, bucket: BUCKET, config: CONFIG, batchId: BATCH_ID, stage });
const storedBatch = () => s3.json<BatchDocument>(batchKey(RUN_ID, BATCH_ID));

beforeEach(() => {
  ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
});

describe('run-stage', () => {
  test('sends one command for the active instances of the batch with the stage parameters', async () => {
    s3.put(batchKey(RUN_ID, BATCH_ID), batchOf({ 'i-a': activeProgress(), 'i-b': activeProgress() }));

    const gate = await runStage(event(), deps());

    expect(ssmMock).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, {
      DocumentName: 'PatchPipeline-inventory-ABC123',
      InstanceIds: ['i-a', 'i-b'],
      Parameters: {
        RunId: [RUN_ID],
        Stage: ['pre-inventory'],
        Bucket: [BUCKET],
        Region: ['eu-west-1'],
        MarkerPrefix: [`runs/${RUN_ID}/markers/pre-inventory/`],
        ApplicationTagKey: ['Application'],
        OwnerTagKey: ['Owner'],
        ExecutionTimeout: ['1200'],
        Phase: ['pre'],
        OutputPrefix: [`runs/${RUN_ID}/inventory/pre/`],
      },
      MaxConcurrency: '10',
      MaxErrors: '2',
      TimeoutSeconds: 1200,
      OutputS3BucketName: BUCKET,
      OutputS3KeyPrefix: `runs/${RUN_ID}/output/pre-inventory/`,
      Comment: `patch-pipeline ${RUN_ID} pre-inventory`,
    });
    expect(gate).toEqual({
      complete: false,
      waitSeconds: 60,
      deadline: '2024-06-01T10:20:00.000Z',
      startedAt: NOW.toISOString(),
      commandId: 'cmd-1',
      done: 0,
      failed: 0,
      pending: 2,
      checks: 0,
    });
    const batch = storedBatch();
    expect(batch.instances['i-a'].stages['pre-inventory']).toEqual({ status: 'Pending', commandId: 'cmd-1', startedAt: NOW.toISOString() });
    expect(batch.instances['i-b'].stages['pre-inventory']).toEqual({ status: 'Pending', commandId: 'cmd-1', startedAt: NOW.toISOString() });
  });

  test('excludes an instance whose snapshot failed', async () => {
    s3.put(
      batchKey(RUN_ID, BATCH_ID),
      batchOf({
        'i-a': activeProgress(),
        'i-b': activeProgress({ status: 'failed', failedAt: 'snapshot', reason: 'snapshot snap-2 error', snapshotState: 'error' }),
        'i-c': activeProgress(),
      }),
    );

    const gate = await runStage(event(PATCH), deps());

    expect(ssmMock).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, { DocumentName: 'PatchPipeline-patch-ABC123', InstanceIds: ['i-a', 'i-c'] });
    expect(gate.pending).toBe(2);
    expect(storedBatch().instances['i-b'].stages.patch).toBeUndefined();
  });

  test('sends nothing and returns a complete gate when no instance is active', async () => {
    s3.put(batchKey(RUN_ID, BATCH_ID), batchOf({ 'i-a': activeProgress({ status: 'failed', failedAt: 'power-on', reason: 'did not start' }) }));

    const gate = await runStage(event(), deps());

    expect(ssmMock).not.toHaveReceivedCommand(SendCommandCommand);
    expect(gate).toMatchObject({ complete: true, pending: 0, done: 0, failed: 0 });
    expect(gate.commandId).toBeUndefined();
    expect(storedBatch().instances['i-a'].stages).toEqual({});
  });

  test('does not send again when a retry finds the command already recorded', async () => {
    s3.put(batchKey(RUN_ID, BATCH_ID), batchOf({ 'i-a': activeProgress(), 'i-b': activeProgress() }));
    await runStage(event(), deps());
    ssmMock.resetHistory();

    const later = new Date(NOW.getTime() + 30_000);
    const gate = await runStage(event(), { ...deps(), now: () => later });

    expect(ssmMock).not.toHaveReceivedCommand(SendCommandCommand);
    expect(gate).toMatchObject({ commandId: 'cmd-1', complete: false, pending: 2, startedAt: NOW.toISOString(), deadline: '2024-06-01T10:20:00.000Z' });
  });

  test('uses a delivery timeout of at least 30 s', async () => {
    s3.put(batchKey(RUN_ID, BATCH_ID), batchOf({ 'i-a': activeProgress() }));

    await runStage({ ...event(), config: { ...CONFIG, stageTimeouts: { 'pre-inventory': 10 } } }, deps());

    expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, { TimeoutSeconds: 30 });
  });

  test('refuses a batch of more than 50 active instances', async () => {
    const instances = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`i-${i}`, activeProgress()]));
    s3.put(batchKey(RUN_ID, BATCH_ID), batchOf(instances));

    await expect(runStage(event(), deps())).rejects.toThrow(/at most 50/);
    expect(ssmMock).not.toHaveReceivedCommand(SendCommandCommand);
  });

  test('lets throttling propagate so the workflow retries the task', async () => {
    s3.put(batchKey(RUN_ID, BATCH_ID), batchOf({ 'i-a': activeProgress() }));
    ssmMock.on(SendCommandCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));

    await expect(runStage(event(), deps())).rejects.toThrow(/Rate exceeded/);
    expect(storedBatch().instances['i-a'].stages).toEqual({});
  });

  test('keeps the command comment within 100 characters', () => {
    expect(commandComment('r'.repeat(80), 'post-inventory').length).toBeLessThanOrEqual(100);
  });
});
