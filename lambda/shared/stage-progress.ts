import { GateCounts } from './gate';
import { BatchDocument, StageTaskInput } from './types';

/** Stage timeout used when the config has none for a stage (matches the documents' ExecutionTimeout default). */
export const DEFAULT_STAGE_TIMEOUT_SECONDS = 3600;

export const stageTimeoutSeconds = (event: Pick<StageTaskInput, 'config' | 'stage'>): number =>
  event.config.stageTimeouts[event.stage.id] ?? DEFAULT_STAGE_TIMEOUT_SECONDS;

/** Counts of one stage's outcomes in a batch; pending = still in the pipeline and not yet classified. */
export function stageCounts(batch: BatchDocument, stageId: string): GateCounts {
  let done = 0;
  let failed = 0;
  let pending = 0;
  for (const id of batch.instanceIds) {
    const p = batch.instances[id];
    const outcome = p?.stages[stageId];
    if (outcome?.status === 'Success') done += 1;
    else if (outcome?.status === 'Failed') failed += 1;
    else if (outcome?.status === 'Pending' && p.status === 'active') pending += 1;
  }
  return { done, failed, pending };
}
