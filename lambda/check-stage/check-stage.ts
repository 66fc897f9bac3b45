import { S3Client } from '@aws-sdk/client-s3';
import { CancelCommandCommand, CommandInvocation, ListCommandInvocationsCommand, SSMClient } from '@aws-sdk/client-ssm';
import { errorMessage } from '../shared/errors';
import { advanceGate, deadlinePassed } from '../shared/gate';
import { markerKey, markerPrefix } from '../shared/keys';
import { logger } from '../shared/logger';
import { failInstance, loadBatch, saveBatch } from '../shared/run-data';
import { getText, listKeys } from '../shared/s3-json';
import { stageCounts, stageTimeoutSeconds } from '../shared/stage-progress';
import { BatchDocument, GateState, Marker, StageTaskInput } from '../shared/types';

export interface CheckStageDeps {
  readonly ssm: SSMClient;
  readonly s3: S3Client;
  readonly now?: () => Date;
}

/**
 * Invocation Status / StatusDetails values after which the document will never write a marker.
 * Cancelling is not among them: it ends as Cancelled, and until then a trap may still write a Failed marker.
 */
export const TERMINAL_FAILURES: ReadonlySet<string> = new Set([
  'Failed',
  'TimedOut',
  'Cancelled',
  'Undeliverable',
  'Terminated',
  'DeliveryTimedOut',
  'ExecutionTimedOut',
]);

type Invocation = Pick<CommandInvocation, 'Status' | 'StatusDetails'>;
type Verdict = { readonly status: 'Success'; readonly detail: string; readonly finishedAt: string } | { readonly status: 'Failed'; readonly reason: string } | { readonly status: 'Pending' };

/**
 * One check of a stage gate: classifies every pending instance of the batch from its completion
 * marker (verified) and its command invocation, fails the late ones at the deadline, and saves the batch.
 */
export async function checkStage(event: StageTaskInput, deps: CheckStageDeps): Promise<GateState> {
  const now = (deps.now ?? (() => new Date()))();
  const { runId, bucket, config, batchId, stage } = event;
  const gate = event.gate;
  if (!gate) throw new Error(`check-stage for stage ${stage.id} of batch ${batchId} needs the gate returned by run-stage`);

  const batch = await loadBatch(deps.s3, bucket, runId, batchId);
  const pending = pendingInstances(batch, stage.id);
  if (pending.length === 0) return advanceGate(gate, now, config.pollIntervalSeconds, stageCounts(batch, stage.id));

  const commandId = gate.commandId ?? batch.instances[pending[0]].stages[stage.id]?.commandId;
  if (!commandId) throw new Error(`stage ${stage.id} of batch ${batchId} has pending instances but no command id`);

  // Invocations first, markers second: a document writes its marker before it ends, so an invocation seen ended here has its marker in the listing below.
  const invocations = await listInvocations(deps.ssm, commandId);
  const markerKeys = new Set(await listKeys(deps.s3, bucket, markerPrefix(runId, stage.id)));

  const late = deadlinePassed(gate, now);
  const timedOut: string[] = [];
  const finishedAt = now.toISOString();
  for (const id of pending) {
    const invocation = invocations.get(id);
    const key = markerKey(runId, stage.id, id);
    const markerText = markerKeys.has(key) ? await getText(deps.s3, bucket, key) : undefined;
    let verdict = classify({ runId, stage: stage.id, instanceId: id }, markerText, invocation);
    if (verdict.status === 'Pending' && late) {
      verdict = {
        status: 'Failed',
        reason: `stage timed out after ${stageTimeoutSeconds(event)} s (command status: ${invocation?.Status ?? 'no invocation'})`,
      };
      timedOut.push(id);
    }
    const prev = batch.instances[id].stages[stage.id];
    if (verdict.status === 'Success') {
      batch.instances[id].stages[stage.id] = { ...prev, status: 'Success', finishedAt: verdict.finishedAt || finishedAt, ...(verdict.detail ? { reason: verdict.detail } : {}) };
    } else if (verdict.status === 'Failed') {
      failInstance(batch, id, stage.id, verdict.reason);
      batch.instances[id].stages[stage.id] = { ...prev, status: 'Failed', reason: verdict.reason, finishedAt };
      logger.warn('instance failed a stage', { runId, batchId, stage: stage.id, instanceId: id, reason: verdict.reason });
    }
  }

  if (timedOut.length > 0) await cancelBestEffort(deps.ssm, commandId, timedOut, { runId, batchId, stage: stage.id });
  await saveBatch(deps.s3, bucket, batch);

  const counts = stageCounts(batch, stage.id);
  logger.info('stage checked', { runId, batchId, stage: stage.id, commandId, ...counts });
  return advanceGate(gate, now, config.pollIntervalSeconds, counts);
}

/** The rules: verify a marker rather than trust a Success, and fail at once on a terminal invocation. */
export function classify(expected: { runId: string; stage: string; instanceId: string }, markerText: string | undefined, invocation: Invocation | undefined): Verdict {
  const status = invocation?.Status ?? 'no invocation';
  const details = invocation?.StatusDetails ?? '';
  const terminalFailure = TERMINAL_FAILURES.has(status) || TERMINAL_FAILURES.has(details);

  if (markerText !== undefined) {
    const parsed = parseMarker(markerText, expected);
    if (typeof parsed === 'string') return { status: 'Failed', reason: `invalid marker: ${parsed}` };
    if (parsed.status === 'Failed') return { status: 'Failed', reason: `marker: ${parsed.detail}` };
    if (terminalFailure) {
      return { status: 'Failed', reason: `marker says Success (${parsed.detail}) but command ${status}: ${details}` };
    }
    return { status: 'Success', detail: parsed.detail, finishedAt: parsed.finishedAt };
  }
  if (terminalFailure) return { status: 'Failed', reason: `command ${status}: ${details}` };
  if (status === 'Success') return { status: 'Failed', reason: 'command reported Success but wrote no completion marker' };
  return { status: 'Pending' };
}

/** The marker, or why it cannot be used. */
function parseMarker(text: string, expected: { runId: string; stage: string; instanceId: string }): Marker | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `not JSON (${errorMessage(err)})`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const m = value as Record<string, unknown>;
  for (const field of ['runId', 'stage', 'instanceId'] as const) {
    if (m[field] !== expected[field]) return `${field} is ${JSON.stringify(m[field])}, expected ${JSON.stringify(expected[field])}`;
  }
  if (m.status !== 'Success' && m.status !== 'Failed') return `status is ${JSON.stringify(m.status)}, expected "Success" or "Failed"`;
  return {
    runId: expected.runId,
    stage: expected.stage,
    instanceId: expected.instanceId,
    status: m.status,
    startedAt: typeof m.startedAt === 'string' ? m.startedAt : '',
    finishedAt: typeof m.finishedAt === 'string' ? m.finishedAt : '',
    detail: typeof m.detail === 'string' ? m.detail : m.detail === undefined ? '' : JSON.stringify(m.detail),
  };
}

function pendingInstances(batch: BatchDocument, stageId: string): string[] {
  return batch.instanceIds.filter((id) => batch.instances[id]?.status === 'active' && batch.instances[id].stages[stageId]?.status === 'Pending');
}

async function listInvocations(ssm: SSMClient, commandId: string): Promise<Map<string, Invocation>> {
  const out = new Map<string, Invocation>();
  let token: string | undefined;
  do {
    const res = await ssm.send(new ListCommandInvocationsCommand({ CommandId: commandId, NextToken: token }));
    for (const inv of res.CommandInvocations ?? []) {
      if (inv.InstanceId) out.set(inv.InstanceId, { Status: inv.Status, StatusDetails: inv.StatusDetails });
    }
    token = res.NextToken;
  } while (token);
  return out;
}

/** The stage already failed these instances; a cancel that does not go through must not fail the batch. */
async function cancelBestEffort(ssm: SSMClient, commandId: string, instanceIds: string[], context: Record<string, string>): Promise<void> {
  try {
    await ssm.send(new CancelCommandCommand({ CommandId: commandId, InstanceIds: instanceIds }));
  } catch (err) {
    logger.warn('could not cancel the timed-out command invocations', { ...context, commandId, instanceIds, error: errorMessage(err) });
  }
}
