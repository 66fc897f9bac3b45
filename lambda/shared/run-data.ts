import { S3Client } from '@aws-sdk/client-s3';
import { RunDataError } from './errors';
import { batchKey, runDocumentKey } from './keys';
import { getJson, putJson } from './s3-json';
import { BatchDocument, RunDocument } from './types';

export async function loadRun(s3: S3Client, bucket: string, runId: string): Promise<RunDocument> {
  const run = await getJson<RunDocument>(s3, bucket, runDocumentKey(runId));
  if (!run) throw new RunDataError(`s3://${bucket}/${runDocumentKey(runId)} does not exist: discover has not run for ${runId}`);
  return run;
}

export async function loadBatch(s3: S3Client, bucket: string, runId: string, id: string): Promise<BatchDocument> {
  const batch = await getJson<BatchDocument>(s3, bucket, batchKey(runId, id));
  if (!batch) throw new RunDataError(`s3://${bucket}/${batchKey(runId, id)} does not exist: discover did not create batch ${id}`);
  return batch;
}

export async function saveBatch(s3: S3Client, bucket: string, batch: BatchDocument): Promise<void> {
  batch.updatedAt = new Date().toISOString();
  await putJson(s3, bucket, batchKey(batch.runId, batch.batchId), batch);
}

/** Instance ids still in the pipeline (not failed at an earlier step). */
export const activeInstances = (batch: BatchDocument): string[] =>
  batch.instanceIds.filter((id) => batch.instances[id]?.status === 'active');

/** Takes an instance out of the pipeline, once: the first failure is the one reported. */
export function failInstance(batch: BatchDocument, instanceId: string, at: string, reason: string): void {
  const p = batch.instances[instanceId];
  if (!p || p.status === 'failed') return;
  p.status = 'failed';
  p.failedAt = at;
  p.reason = reason;
}
