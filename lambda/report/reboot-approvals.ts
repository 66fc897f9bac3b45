import { S3Client } from '@aws-sdk/client-s3';
import { ApprovalGroupResult, ApprovalRecord, ApprovalStatus, approvalsPrefix } from '../shared/approvals';
import { errorMessage } from '../shared/errors';
import { batchKey } from '../shared/keys';
import { getJson, listKeys } from '../shared/s3-json';
import { BatchDocument, InstanceProgress, StageOutcome } from '../shared/types';

/** The step ids the reboot and verify tasks use in the chunk documents (stages[...], failedAt). */
export const REBOOT_STEP = 'reboot';
export const VERIFY_STEP = 'verify';

/**
 * The reboot-approval outcome of one instance. Besides the decided states of its group's record:
 * not-eligible (did not finish the stages), not-requested (approval mode skip, dry run, or the run
 * never reached the phase), undecided (the run ended while the request was open) and error (the
 * group's branch failed before a decision).
 */
export type ApprovalOutcome = 'approved' | 'rejected' | 'timed-out' | 'no-approver' | 'not-eligible' | 'not-requested' | 'undecided' | 'error';

/** report.json approvals[]: one per group. Built field by field: the record's task token and approval id stay out. */
export interface ApprovalReport {
  readonly groupId: string;
  readonly application: string;
  readonly approver: string;
  readonly approverSource: ApprovalRecord['approverSource'];
  readonly status: ApprovalStatus;
  readonly decidedBy: string;
  readonly decidedAt: string;
  readonly decidedFrom: { readonly channel: string; readonly sourceIp?: string } | null;
  readonly instances: number;
  /** The error the group's branch of the workflow ended with, when it did. */
  readonly error?: string;
}

/** What one instance of a group left in its record and its chunk document. */
export interface InstanceApproval {
  readonly record: ApprovalRecord;
  readonly progress?: InstanceProgress;
  /** "approval group a000 failed: ..." when the group's branch ended with an error. */
  readonly groupError?: string;
}

export interface RunApprovals {
  readonly groups: ApprovalReport[];
  readonly byInstance: Map<string, InstanceApproval>;
}

export const NO_APPROVALS: RunApprovals = { groups: [], byInstance: new Map() };

/** The approval columns of one report row. */
export interface ApprovalColumns {
  readonly approval: ApprovalOutcome;
  readonly approver: string;
  readonly decidedBy: string;
  readonly decidedAt: string;
  /** "link from 203.0.113.9", "itsm", "timeout" ... ('' before a decision). */
  readonly decidedFrom: string;
  readonly rebootStatus: StageOutcome['status'];
  readonly rebootReason: string;
  readonly verifyStatus: StageOutcome['status'];
  readonly verifyReason: string;
  /** Patched, but its reboot was never requested: the patches may not be in effect yet. */
  readonly rebootDeferred: boolean;
}

/** What the approval phase changes in a Patched instance's row. */
export interface ApprovalVerdict extends ApprovalColumns {
  readonly status: 'Patched' | 'Failed';
  readonly failedAt: string;
  readonly reason: string;
}

export const notEligible = (): ApprovalColumns => ({ ...emptyColumns(), approval: 'not-eligible' });
export const notRequested = (): ApprovalColumns => ({ ...emptyColumns(), approval: 'not-requested' });

const emptyColumns = (): Omit<ApprovalColumns, 'approval'> => ({
  approver: '',
  decidedBy: '',
  decidedAt: '',
  decidedFrom: '',
  rebootStatus: 'NotRun',
  rebootReason: '',
  verifyStatus: 'NotRun',
  verifyReason: '',
  rebootDeferred: false,
});

type Each = <T>(items: T[], fn: (item: T) => Promise<void>) => Promise<void>;

/**
 * Every approval record of the run and the chunk documents they name. Whatever is missing or
 * unreadable goes to `errors`: the report still gets written.
 */
export async function loadApprovals(
  s3: S3Client,
  bucket: string,
  runId: string,
  results: readonly ApprovalGroupResult[],
  errors: string[],
  forEach: Each,
  describe: (e: NonNullable<ApprovalGroupResult['error']>) => string,
): Promise<RunApprovals> {
  const keys = (await listKeys(s3, bucket, approvalsPrefix(runId))).filter((k) => k.endsWith('.json'));
  const records: ApprovalRecord[] = [];
  await forEach(keys, async (key) => {
    try {
      const record = await getJson<ApprovalRecord>(s3, bucket, key);
      if (record) records.push(record);
    } catch (err) {
      errors.push(`s3://${bucket}/${key} cannot be read as an approval record: ${errorMessage(err)}`);
    }
  });
  records.sort((a, b) => a.groupId.localeCompare(b.groupId));

  const known = new Set(records.map((r) => r.groupId));
  const groupErrors = new Map<string, string>();
  for (const r of results) {
    if (!r?.error) continue;
    const record = records.find((x) => x.groupId === r.groupId);
    const text = describe(r.error);
    groupErrors.set(r.groupId, text);
    errors.push(`approval group ${r.groupId}${record ? ` (${record.application})` : ''}: ${text}`);
    if (!known.has(r.groupId)) errors.push(`approval group ${r.groupId}: s3://${bucket}/${approvalsPrefix(runId)}${r.groupId}.json is missing`);
  }

  const chunkIds = [...new Set(records.flatMap((r) => r.chunks ?? []))];
  const chunks = new Map<string, BatchDocument>();
  await forEach(chunkIds, async (id) => {
    const doc = await getJson<BatchDocument>(s3, bucket, batchKey(runId, id));
    if (doc) chunks.set(id, doc);
    else errors.push(`approval chunk ${id}: s3://${bucket}/${batchKey(runId, id)} is missing`);
  });

  const byInstance = new Map<string, InstanceApproval>();
  for (const record of records) {
    const groupError = groupErrors.get(record.groupId);
    for (const id of record.instanceIds ?? []) {
      const holder = (record.chunks ?? []).map((c) => chunks.get(c)).find((c) => c?.instances[id]);
      byInstance.set(id, {
        record,
        ...(holder ? { progress: holder.instances[id] } : {}),
        ...(groupError ? { groupError: `approval group ${record.groupId} failed: ${groupError}` } : {}),
      });
    }
  }
  const groups = records.map((r): ApprovalReport => ({
    groupId: r.groupId,
    application: r.application,
    approver: r.approver,
    approverSource: r.approverSource,
    status: r.status,
    decidedBy: r.decidedBy ?? '',
    decidedAt: r.decidedAt ?? '',
    decidedFrom: r.decidedFrom ? { channel: r.decidedFrom.channel, ...(r.decidedFrom.sourceIp ? { sourceIp: r.decidedFrom.sourceIp } : {}) } : null,
    instances: (r.instanceIds ?? []).length,
    ...(groupErrors.has(r.groupId) ? { error: groupErrors.get(r.groupId)! } : {}),
  }));
  return { groups, byInstance };
}

const DECIDED: ReadonlySet<ApprovalStatus> = new Set(['approved', 'rejected', 'timed-out', 'no-approver']);

/**
 * The row of an instance that finished every stage, after the approval phase: Failed when its
 * approved reboot or verify failed, otherwise Patched, with a "reboot deferred: <why>" reason
 * whenever its reboot was never requested, so a deferral is never silent.
 */
export function approvalVerdict(found: InstanceApproval | undefined, notRequestedWhy: string): ApprovalVerdict {
  if (!found) {
    return { ...notRequested(), rebootDeferred: true, status: 'Patched', failedAt: '', reason: `reboot deferred: not requested (${notRequestedWhy})` };
  }
  const { record, progress, groupError } = found;
  const reboot = progress?.stages[REBOOT_STEP];
  const verify = progress?.stages[VERIFY_STEP];
  const columns: ApprovalColumns = {
    approval: DECIDED.has(record.status) ? (record.status as ApprovalOutcome) : groupError ? 'error' : 'undecided',
    approver: record.approver ?? '',
    decidedBy: record.decidedBy ?? '',
    decidedAt: record.decidedAt ?? '',
    decidedFrom: decidedFrom(record),
    rebootStatus: reboot?.status ?? 'NotRun',
    rebootReason: reboot?.reason ?? '',
    verifyStatus: verify?.status ?? 'NotRun',
    verifyReason: verify?.reason ?? '',
    rebootDeferred: false,
  };
  const withGroupError = (reason: string): string => (groupError ? (reason ? `${reason}; ${groupError}` : groupError) : reason);

  if (progress?.status === 'failed' || reboot?.status === 'Failed' || verify?.status === 'Failed') {
    const failedAt = progress?.status === 'failed' && progress.failedAt ? progress.failedAt : reboot?.status === 'Failed' ? REBOOT_STEP : VERIFY_STEP;
    const stageReason = failedAt === REBOOT_STEP ? reboot?.reason : failedAt === VERIFY_STEP ? verify?.reason : undefined;
    const reason = (progress?.status === 'failed' ? progress.reason : undefined) ?? stageReason ?? `${failedAt} failed`;
    return { ...columns, status: 'Failed', failedAt, reason: withGroupError(reason) };
  }
  if (reboot?.status === 'Success') {
    const reason = verify?.status === 'Success' ? '' : `rebooted, but verify ${verify ? `is ${verify.status}` : 'did not run'}`;
    return { ...columns, status: 'Patched', failedAt: '', reason: withGroupError(reason) };
  }
  if (record.status === 'approved' && !progress) {
    // The chunk document is missing (reported in errors): whether it rebooted is unknown, not deferred.
    const reason = `reboot not confirmed: no progress recorded for this instance in ${(record.chunks ?? []).join(', ') || 'any chunk document'}`;
    return { ...columns, status: 'Patched', failedAt: '', reason: withGroupError(reason) };
  }
  if (reboot?.startedAt) {
    const reason = `reboot requested at ${reboot.startedAt} but not confirmed back online`;
    return { ...columns, status: 'Patched', failedAt: '', reason: withGroupError(reason) };
  }
  return { ...columns, rebootDeferred: true, status: 'Patched', failedAt: '', reason: withGroupError(`reboot deferred: ${deferredWhy(record, Boolean(groupError))}`) };
}

function deferredWhy(record: ApprovalRecord, groupFailed: boolean): string {
  switch (record.status) {
    case 'rejected':
      return `rejected by ${record.decidedBy || 'the approver'}${record.decidedAt ? ` at ${record.decidedAt}` : ''}${record.comment ? `: ${record.comment}` : ''}`;
    case 'timed-out':
      return `no decision from ${record.approver || 'the approver'} before ${record.expiresAt || record.decidedAt || 'the deadline'} (timed out)${record.comment ? `, ${record.comment}` : ''}`;
    case 'no-approver':
      return `no approver for ${record.application} (none configured, no approver or owner tag, no default approver)`;
    case 'approved':
      return groupFailed ? 'approved, but the reboot did not start' : 'approved, but the run ended before the reboot started';
    default:
      return groupFailed ? `approval ${record.status}, no decision` : `approval ${record.status}: the run ended before a decision`;
  }
}

function decidedFrom(record: ApprovalRecord): string {
  const from = record.decidedFrom;
  if (!from) return '';
  return from.sourceIp ? `${from.channel} from ${from.sourceIp}` : from.channel;
}
