import { S3Client } from '@aws-sdk/client-s3';
import { SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { SEND_COMMAND_MAX_TARGETS } from '../shared/batching';
import { documentParameters } from '../shared/document-parameters';
import { openGate } from '../shared/gate';
import { commandOutputPrefix } from '../shared/keys';
import { logger } from '../shared/logger';
import { activeInstances, loadBatch, saveBatch } from '../shared/run-data';
import { stageCounts, stageTimeoutSeconds } from '../shared/stage-progress';
import { BatchDocument, GateState, StageTaskInput } from '../shared/types';

export interface RunStageDeps {
  readonly ssm: SSMClient;
  readonly s3: S3Client;
  readonly now?: () => Date;
}

/** SendCommand TimeoutSeconds (delivery timeout) accepts 30 s at least. */
export const MIN_DELIVERY_TIMEOUT_SECONDS = 30;
/** SendCommand Comment accepts 100 characters at most. */
export const MAX_COMMENT_LENGTH = 100;

export const commandComment = (runId: string, stageId: string): string =>
  `patch-pipeline ${runId} ${stageId}`.slice(0, MAX_COMMENT_LENGTH);

/**
 * Sends the stage's document to the batch's active instances (one SendCommand) and opens the
 * stage gate. A Step Functions retry of this task finds the command recorded and does not send twice.
 */
export async function runStage(event: StageTaskInput, deps: RunStageDeps): Promise<GateState> {
  const now = (deps.now ?? (() => new Date()))();
  const { runId, bucket, config, batchId, stage } = event;
  const timeout = stageTimeoutSeconds(event);
  const batch = await loadBatch(deps.s3, bucket, runId, batchId);

  const sent = recordedCommand(batch, stage.id);
  if (sent) {
    logger.info('command already sent for this stage, not sending again', { runId, batchId, stage: stage.id, commandId: sent.commandId });
    const gate = openGate(sent.startedAt, timeout, config.pollIntervalSeconds, stageCounts(batch, stage.id), sent.commandId);
    const left = Math.ceil((new Date(gate.deadline).getTime() - now.getTime()) / 1000);
    return { ...gate, waitSeconds: Math.max(1, Math.min(config.pollIntervalSeconds, left)) };
  }

  const ids = activeInstances(batch);
  if (ids.length === 0) {
    logger.info('no active instance in the batch, stage skipped', { runId, batchId, stage: stage.id });
    return openGate(now, timeout, config.pollIntervalSeconds, { done: 0, failed: 0, pending: 0 });
  }
  if (ids.length > SEND_COMMAND_MAX_TARGETS) {
    throw new RangeError(`batch ${batchId} has ${ids.length} active instances; SendCommand takes at most ${SEND_COMMAND_MAX_TARGETS}`);
  }

  // Throttling and other errors propagate after the client's retries: the workflow retries the task.
  const res = await deps.ssm.send(
    new SendCommandCommand({
      DocumentName: stage.documentName,
      InstanceIds: ids,
      Parameters: documentParameters(runId, bucket, config, stage, event.extraParameters),
      MaxConcurrency: config.maxConcurrency,
      MaxErrors: config.maxErrors,
      TimeoutSeconds: Math.max(MIN_DELIVERY_TIMEOUT_SECONDS, timeout),
      OutputS3BucketName: bucket,
      OutputS3KeyPrefix: commandOutputPrefix(runId, stage.id),
      Comment: commandComment(runId, stage.id),
    }),
  );
  const commandId = res.Command?.CommandId;
  if (!commandId) throw new Error(`SendCommand for stage ${stage.id} of batch ${batchId} returned no CommandId`);

  const startedAt = now.toISOString();
  for (const id of ids) batch.instances[id].stages[stage.id] = { status: 'Pending', commandId, startedAt };
  await saveBatch(deps.s3, bucket, batch);
  logger.info('stage command sent', { runId, batchId, stage: stage.id, commandId, instances: ids.length });

  return openGate(now, timeout, config.pollIntervalSeconds, { done: 0, failed: 0, pending: ids.length }, commandId);
}

function recordedCommand(batch: BatchDocument, stageId: string): { commandId: string; startedAt: Date } | undefined {
  for (const id of batch.instanceIds) {
    const outcome = batch.instances[id]?.stages[stageId];
    if (outcome?.commandId) return { commandId: outcome.commandId, startedAt: new Date(outcome.startedAt ?? batch.updatedAt) };
  }
  return undefined;
}
