import { GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ApprovalRecord, approvalKey } from './approvals';

/** Someone else wrote the record between our read and our write (the IfMatch precondition failed). */
export class ApprovalConflictError extends Error {
  public readonly name = 'ApprovalConflictError';
}

export interface StoredApproval {
  readonly record: ApprovalRecord;
  /** The object's ETag, for a conditional write of the next version. */
  readonly etag?: string;
}

/** The record of one group, with its ETag; undefined when it does not exist. */
export async function loadApproval(s3: S3Client, bucket: string, runId: string, groupId: string): Promise<StoredApproval | undefined> {
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: approvalKey(runId, groupId) }));
    const text = res.Body ? await res.Body.transformToString('utf-8') : '';
    return { record: JSON.parse(text) as ApprovalRecord, ...(res.ETag ? { etag: res.ETag } : {}) };
  } catch (err) {
    if (err instanceof NoSuchKey || (err as { name?: string }).name === 'NoSuchKey') return undefined;
    throw err;
  }
}

/**
 * Writes the record; with `ifMatch`, only when the stored object still has that ETag, so two
 * decisions racing on one record cannot both win. Returns the new ETag.
 */
export async function saveApproval(s3: S3Client, bucket: string, record: ApprovalRecord, ifMatch?: string): Promise<string | undefined> {
  try {
    const res = await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: approvalKey(record.runId, record.groupId),
        Body: JSON.stringify(record, null, 2),
        ContentType: 'application/json',
        ...(ifMatch ? { IfMatch: ifMatch } : {}),
      }),
    );
    return res.ETag;
  } catch (err) {
    if (ifMatch && isConflict(err)) throw new ApprovalConflictError(`approval ${record.groupId} of run ${record.runId} changed since it was read`);
    throw err;
  }
}

/** 412 PreconditionFailed, or 409 ConditionalRequestConflict when two conditional writes overlap. */
function isConflict(err: unknown): boolean {
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  const name = e.name ?? e.Code;
  return name === 'PreconditionFailed' || name === 'ConditionalRequestConflict' || e.$metadata?.httpStatusCode === 412 || e.$metadata?.httpStatusCode === 409;
}
