import { S3Client } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import type { FreezeState } from '../change-freeze/change-freeze';
import { ApprovalGroupResult } from '../shared/approvals';
import { errorMessage } from '../shared/errors';
import { areaPrefix, batchKey, compareKey, failedKey, reportCsvKey, reportJsonKey, restoreKey, runDocumentKey } from '../shared/keys';
import { logger } from '../shared/logger';
import { getJson, getText, listKeys, putJson, putText } from '../shared/s3-json';
import {
  BatchDocument,
  BatchResult,
  InstanceProgress,
  RestoreDocument,
  RunConfig,
  RunDocument,
  SkippedInstance,
  StageOutcome,
  StageSpec,
  TargetInstance,
} from '../shared/types';
import {
  ApprovalColumns,
  ApprovalReport,
  ApprovalVerdict,
  approvalVerdict,
  loadApprovals,
  NO_APPROVALS,
  notEligible,
  notRequested,
  RunApprovals,
} from './reboot-approvals';

export type { ApprovalOutcome, ApprovalReport } from './reboot-approvals';

/** The workflow starts every run with `error: {}` (no error yet); a Catch fills in Error and Cause. */
export const isError = (e: PipelineError | undefined | null): e is PipelineError => Boolean(e && e.Error);

/** A pipeline error as the workflow's Catch records it. */
export interface PipelineError {
  readonly Error?: string;
  readonly Cause?: string;
}

/** The report task's input (the last state of the workflow, on every path). */
export interface ReportInput {
  readonly runId: string;
  readonly bucket: string;
  readonly config?: RunConfig;
  readonly stages: StageSpec[];
  readonly batchResults?: BatchResult[];
  /** How each group of the reboot-approval Map ended ({groupId, outcome} or {groupId, error}). */
  readonly approvalResults?: ApprovalGroupResult[];
  /** A pipeline error caught by the workflow (discover or the batch Map failed). */
  readonly error?: PipelineError;
  /** An error caught around the restore gate. */
  readonly restoreError?: PipelineError;
  /** The change-calendar check ($.freeze); the workflow starts it as { frozen: false }. */
  readonly freeze?: Partial<FreezeState>;
}

export interface ReportTotals {
  readonly matched: number;
  readonly targets: number;
  readonly skipped: number;
  readonly patched: number;
  readonly failed: number;
  readonly notReached: number;
  readonly updatesInstalled: number;
  readonly updatesFailed: number;
  /** Dry run: targets a real run would patch. */
  readonly wouldPatch: number;
  /** Dry run: targets a real run would skip at discovery (e.g. a volume in state error). */
  readonly notReady: number;
  /** Patched, but the reboot was never requested (rejected, timed out, no approver, not requested): never silent. */
  readonly rebootsDeferred: number;
  /** Back online after the approved reboot. */
  readonly rebooted: number;
  /** The verify document passed after the reboot. */
  readonly verified: number;
  readonly verifyFailed: number;
}

/** Small on purpose: it goes into the execution state. */
export interface ReportOutput extends ReportTotals {
  readonly reportKey: string;
  readonly csvKey: string;
  readonly dryRun: boolean;
  /** True when the change calendar was CLOSED and the run changed nothing. */
  readonly changeFreeze: boolean;
  /** The run notification (SNS): a one-line subject and a short plain-text summary with the report's location. */
  readonly subject: string;
  readonly message: string;
}

/** The run notification: what happened in one line, then the counts that need someone, then where the report is. */
export function runNotification(
  runId: string,
  bucket: string,
  totals: ReportTotals,
  kind: { dryRun: boolean; changeFreeze?: string; errors: string[]; reportKey: string; csvKey: string },
): { subject: string; message: string } {
  const outcome = kind.changeFreeze
    ? 'change freeze, nothing changed'
    : kind.dryRun
      ? `dry run: ${totals.wouldPatch} would be patched, ${totals.notReady} not ready`
      : `${totals.patched} patched, ${totals.failed} failed, ${totals.notReached} not reached, ${totals.skipped} skipped`;
  // SNS subjects: ASCII, no line breaks, at most 100 characters.
  const subject = `patch-pipeline ${runId}: ${outcome}${kind.errors.length ? ' (pipeline errors)' : ''}`
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, 100);
  const lines = [
    `patch-pipeline run ${runId}: ${outcome}.`,
    ...(kind.changeFreeze ? [kind.changeFreeze] : []),
    ...(kind.dryRun || kind.changeFreeze
      ? []
      : [
          `Updates installed: ${totals.updatesInstalled}; failed to install: ${totals.updatesFailed}.`,
          `Reboots: ${totals.rebooted} done, ${totals.verified} verified, ${totals.verifyFailed} failed verification, ${totals.rebootsDeferred} deferred.`,
        ]),
    ...kind.errors.map((e) => `Error: ${e}`),
    `Report: s3://${bucket}/${kind.reportKey} (CSV: s3://${bucket}/${kind.csvKey})`,
  ];
  return { subject, message: lines.join('\n') };
}

/** WouldPatch / NotReady: dry run only, where nothing is processed and the readiness is the result. */
export type InstanceReportStatus = 'Patched' | 'Failed' | 'Skipped' | 'NotReached' | 'WouldPatch' | 'NotReady';

export interface InstanceReport extends ApprovalColumns {
  readonly instanceId: string;
  readonly name: string;
  readonly platform: string;
  readonly application: string;
  readonly owner: string;
  readonly initialState: string;
  readonly finalState: string;
  readonly snapshotIds: string[];
  readonly status: InstanceReportStatus;
  readonly failedAt: string;
  readonly reason: string;
  readonly stages: Record<string, { readonly status: StageOutcome['status']; readonly reason: string }>;
  readonly updatesInstalled: number;
  readonly updatesFailed: number;
}

export interface StageSummary {
  readonly id: string;
  readonly title: string;
  readonly success: number;
  readonly failed: number;
  readonly notRun: number;
}

/** Why a run changed nothing: the change calendar was CLOSED when it started. */
export interface ChangeFreezeReport {
  readonly calendar: string;
  readonly state: string;
  readonly checkedAt: string;
  /** '' when AWS did not say. */
  readonly nextTransitionTime: string;
  readonly message: string;
}

/** runs/<runId>/report/report.json */
export interface RunReport {
  readonly runId: string;
  readonly generatedAt: string;
  /** True for a dry run: the rows are readiness (WouldPatch / NotReady), nothing was changed. */
  readonly dryRun: boolean;
  /** The patch window that started the run ('' when started by hand). */
  readonly window: string;
  /** Present only when a change freeze stopped the run before discovery. */
  readonly changeFreeze?: ChangeFreezeReport;
  readonly totals: ReportTotals;
  readonly stages: StageSummary[];
  readonly instances: InstanceReport[];
  readonly skipped: SkippedInstance[];
  /** One per reboot-approval group (without its task token or approval id). */
  readonly approvals: ApprovalReport[];
  readonly errors: string[];
}

export interface ReportDeps {
  readonly s3: S3Client;
  readonly now?: () => Date;
}

export const REPORT_FIXED_COLUMNS = [
  'instance_id',
  'name',
  'platform',
  'application',
  'owner',
  'initial_state',
  'final_state',
  'snapshot_ids',
  'status',
  'failed_at',
  'reason',
] as const;

/** The reboot-approval outcome, after the update counts so the earlier columns keep their positions. */
export const REPORT_APPROVAL_COLUMNS = [
  'approval',
  'approver',
  'decided_by',
  'decided_at',
  'decided_from',
  'reboot_status',
  'reboot_reason',
  'verify_status',
  'verify_reason',
] as const;

/** The CSV header: fixed columns, two per stage in pipeline order, the update counts, then the approval columns. */
export const reportColumns = (stageIds: readonly string[]): string[] => [
  ...REPORT_FIXED_COLUMNS,
  ...stageIds.flatMap((id) => [`${id}_status`, `${id}_reason`]),
  'updates_installed',
  'updates_failed',
  ...REPORT_APPROVAL_COLUMNS,
];

/** Parallel S3 reads per report, well under S3's per-prefix rates. */
const READ_CONCURRENCY = 16;

/**
 * Writes report.json and report.csv for a run from what the run left in S3. Runs on every path,
 * so it never assumes a step finished: whatever is missing is reported, not thrown.
 */
export async function report(event: ReportInput, deps: ReportDeps): Promise<ReportOutput> {
  const now = (deps.now ?? (() => new Date()))();
  const { runId, bucket } = event;
  const errors: string[] = [];
  if (isError(event.error)) errors.push(`pipeline error: ${describeError(event.error)}`);
  if (isError(event.restoreError)) errors.push(`restore error: ${describeError(event.restoreError)}`);
  for (const r of event.batchResults ?? []) if (r.error) errors.push(`batch ${r.batchId}: ${describeError(r.error)}`);

  // A freeze stops the run before discovery: there is no run.json, and that is no error.
  const freeze = event.freeze?.frozen === true ? changeFreezeReport(event.freeze) : undefined;
  const run = freeze ? undefined : await getJson<RunDocument>(deps.s3, bucket, runDocumentKey(runId));
  const stages: Pick<StageSpec, 'id' | 'title'>[] =
    (event.stages ?? []).length > 0 ? event.stages : (run?.stages ?? []).map((id) => ({ id, title: id }));
  const dryRun = (event.config ?? run?.config)?.dryRun === true;
  const window = (event.config ?? run?.config)?.window ?? '';

  let instances: InstanceReport[] = [];
  let approvals: RunApprovals = NO_APPROVALS;
  if (freeze) {
    // Nothing to read: discover did not run.
  } else if (!run) {
    errors.unshift(`discovery failed: s3://${bucket}/${runDocumentKey(runId)} was not written, so no instance was processed`);
  } else if (dryRun) {
    // No batch was processed, so there is no batch document, restore or CSV to read.
    instances = run.targets.map((t) => dryRunReport(t, stages));
  } else {
    ({ instances, approvals } = await instanceReports(deps.s3, event, run, stages, errors));
  }
  const skipped = run?.skipped ?? [];

  const totals: ReportTotals = {
    matched: (run?.targets.length ?? 0) + skipped.length,
    targets: run?.targets.length ?? 0,
    skipped: skipped.length,
    patched: instances.filter((i) => i.status === 'Patched').length,
    failed: instances.filter((i) => i.status === 'Failed').length,
    notReached: instances.filter((i) => i.status === 'NotReached').length,
    updatesInstalled: sum(instances.map((i) => i.updatesInstalled)),
    updatesFailed: sum(instances.map((i) => i.updatesFailed)),
    wouldPatch: instances.filter((i) => i.status === 'WouldPatch').length,
    notReady: instances.filter((i) => i.status === 'NotReady').length,
    rebootsDeferred: instances.filter((i) => i.rebootDeferred).length,
    rebooted: instances.filter((i) => i.rebootStatus === 'Success').length,
    verified: instances.filter((i) => i.verifyStatus === 'Success').length,
    verifyFailed: instances.filter((i) => i.verifyStatus === 'Failed').length,
  };
  const stageSummaries: StageSummary[] = stages.map((s) => {
    const statuses = instances.map((i) => i.stages[s.id]?.status);
    const success = statuses.filter((x) => x === 'Success').length;
    const failed = statuses.filter((x) => x === 'Failed').length;
    return { id: s.id, title: s.title, success, failed, notRun: statuses.length - success - failed };
  });

  const doc: RunReport = {
    runId,
    generatedAt: now.toISOString(),
    dryRun,
    window,
    ...(freeze ? { changeFreeze: freeze } : {}),
    totals,
    stages: stageSummaries,
    instances,
    skipped,
    approvals: approvals.groups,
    errors,
  };
  const reportKey = reportJsonKey(runId);
  const csvKey = reportCsvKey(runId);
  await putJson(deps.s3, bucket, reportKey, doc);
  await putText(deps.s3, bucket, csvKey, toCsv(stages.map((s) => s.id), instances, skipped), 'text/csv');
  logger.info('report written', { runId, reportKey, csvKey, dryRun, changeFreeze: Boolean(freeze), window, ...totals, errors: errors.length });
  const notification = runNotification(runId, bucket, totals, { dryRun, changeFreeze: freeze?.message, errors, reportKey, csvKey });
  return { ...totals, reportKey, csvKey, dryRun, changeFreeze: Boolean(freeze), ...notification };
}

function changeFreezeReport(f: Partial<FreezeState>): ChangeFreezeReport {
  return {
    calendar: f.calendar ?? '',
    state: f.state ?? 'CLOSED',
    checkedAt: f.checkedAt ?? '',
    nextTransitionTime: f.nextTransitionTime ?? '',
    message: f.message ?? `change freeze: change calendar ${f.calendar ?? ''} is CLOSED; the run changed nothing`,
  };
}

/** The report columns that identify the instance, as the run recorded it. */
function identity(t: TargetInstance): Pick<InstanceReport, 'instanceId' | 'name' | 'platform' | 'application' | 'owner' | 'initialState'> {
  return {
    instanceId: t.instanceId,
    name: t.name,
    platform: t.platform,
    application: t.application,
    owner: t.owner,
    initialState: t.initialState,
  };
}

/** A dry-run row: what a real run would do with the target, from the readiness discover recorded. */
function dryRunReport(t: TargetInstance, stages: Pick<StageSpec, 'id'>[]): InstanceReport {
  // run.json written before readiness existed has none: the target passed discovery, which is all we know.
  const readiness = t.readiness ?? { ready: true, summary: 'passed discovery (no readiness recorded)' };
  return {
    ...identity(t),
    finalState: '',
    snapshotIds: [],
    status: readiness.ready ? 'WouldPatch' : 'NotReady',
    failedAt: '',
    reason: readiness.summary,
    stages: Object.fromEntries(stages.map((s) => [s.id, { status: 'NotRun' as const, reason: '' }])),
    updatesInstalled: 0,
    updatesFailed: 0,
    // A dry run reboots nothing and asks nobody.
    ...notRequested(),
  };
}

async function instanceReports(
  s3: S3Client,
  event: ReportInput,
  run: RunDocument,
  stages: Pick<StageSpec, 'id'>[],
  errors: string[],
): Promise<{ instances: InstanceReport[]; approvals: RunApprovals }> {
  const { runId, bucket } = event;
  const batchIds = [...new Set([...run.batches.map((b) => b.batchId), ...run.targets.map((t) => t.batchId).filter((b): b is string => !!b)])];
  const batches = new Map<string, BatchDocument>();
  await forEach(batchIds, async (id) => {
    const batch = await getJson<BatchDocument>(s3, bucket, batchKey(runId, id));
    if (batch) batches.set(id, batch);
    else errors.push(`batch ${id}: s3://${bucket}/${batchKey(runId, id)} is missing`);
  });
  const batchOf = new Map<string, string>();
  for (const b of run.batches) for (const id of b.instanceIds) batchOf.set(id, b.batchId);

  const restore = await getJson<RestoreDocument>(s3, bucket, restoreKey(runId));
  for (const [id, r] of Object.entries(restore?.instances ?? {})) if (r.error) errors.push(`restore ${id}: ${r.error}`);

  const installed = await countRows(s3, bucket, areaPrefix(runId, 'compare'), errors);
  const failedUpdates = await countRows(s3, bucket, areaPrefix(runId, 'failed'), errors);
  const batchErrors = new Map((event.batchResults ?? []).filter((r) => r.error).map((r) => [r.batchId, r.error!]));

  // 'skip' writes no record: nothing to list.
  const skipMode = (event.config ?? run.config)?.approval?.mode === 'skip';
  const approvals = skipMode ? NO_APPROVALS : await loadApprovals(s3, bucket, runId, event.approvalResults ?? [], errors, forEach, describeError);
  const notRequestedWhy = skipMode
    ? 'approval mode is skip'
    : approvals.groups.length > 0
      ? 'the instance is in no approval group'
      : isError(event.error)
        ? `the run ended before the approval phase: pipeline error: ${describeError(event.error)}`
        : 'the run ended before the approval phase';

  const instances = run.targets.map((t) => {
    const bid = t.batchId ?? batchOf.get(t.instanceId);
    const progress = bid ? batches.get(bid)?.instances[t.instanceId] : undefined;
    return instanceReport(t, progress, stages, {
      finalState: restore?.instances[t.instanceId]?.finalState ?? '',
      installed: installed.get(compareKey(runId, t.instanceId)) ?? 0,
      failed: failedUpdates.get(failedKey(runId, t.instanceId)) ?? 0,
      notReachedReason: notReachedReason(bid, batchErrors, isError(event.error) ? event.error : undefined),
      approval: (patched) => (patched ? approvalVerdict(approvals.byInstance.get(t.instanceId), notRequestedWhy) : undefined),
    });
  });
  return { instances, approvals };
}

function instanceReport(
  t: TargetInstance,
  p: InstanceProgress | undefined,
  stages: Pick<StageSpec, 'id'>[],
  extra: {
    finalState: string;
    installed: number;
    failed: number;
    notReachedReason: string;
    /** The approval phase's verdict on an instance that finished every stage. */
    approval: (patched: boolean) => ApprovalVerdict | undefined;
  },
): InstanceReport {
  const stageReports = Object.fromEntries(
    stages.map((s) => {
      const o = p?.stages[s.id];
      return [s.id, { status: o?.status ?? 'NotRun', reason: o?.reason ?? '' }];
    }),
  );
  const allDone = stages.every((s) => p?.stages[s.id]?.status === 'Success');
  let status: InstanceReportStatus;
  let failedAt = '';
  let reason = '';
  if (p?.status === 'failed') {
    status = 'Failed';
    failedAt = p.failedAt ?? '';
    reason = p.reason ?? '';
  } else if (p && allDone) {
    status = 'Patched';
  } else {
    status = 'NotReached';
    reason = p ? extra.notReachedReason : `no progress recorded for this instance; ${extra.notReachedReason}`;
  }
  let approval: ApprovalColumns = notEligible();
  const verdict = extra.approval(status === 'Patched');
  if (verdict) {
    ({ status, failedAt, reason, ...approval } = verdict);
  }
  return {
    ...identity(t),
    finalState: extra.finalState,
    snapshotIds: p?.snapshotIds ?? [],
    status,
    failedAt,
    reason,
    stages: stageReports,
    updatesInstalled: extra.installed,
    updatesFailed: extra.failed,
    ...approval,
  };
}

function notReachedReason(batchId: string | undefined, batchErrors: Map<string, PipelineError>, pipelineError: PipelineError | undefined): string {
  const batchError = batchId ? batchErrors.get(batchId) : undefined;
  if (batchError) return `pipeline error in batch ${batchId}: ${describeError(batchError)}`;
  if (pipelineError) return `pipeline error: ${describeError(pipelineError)}`;
  return 'the pipeline ended before this instance finished every stage';
}

/** Data rows of every CSV under a prefix, by key (header excluded). */
async function countRows(s3: S3Client, bucket: string, prefix: string, errors: string[]): Promise<Map<string, number>> {
  const keys = (await listKeys(s3, bucket, prefix)).filter((k) => k.endsWith('.csv'));
  const counts = new Map<string, number>();
  await forEach(keys, async (key) => {
    const text = await getText(s3, bucket, key);
    if (text === undefined) return;
    try {
      counts.set(key, (parse(text, { columns: true, skip_empty_lines: true, relax_column_count: true, bom: true }) as unknown[]).length);
    } catch (err) {
      errors.push(`s3://${bucket}/${key} cannot be read as CSV: ${errorMessage(err)}`);
    }
  });
  return counts;
}

function toCsv(stageIds: string[], instances: InstanceReport[], skipped: SkippedInstance[]): string {
  const rows: Record<string, string | number>[] = instances.map((i) => ({
    instance_id: i.instanceId,
    name: i.name,
    platform: i.platform,
    application: i.application,
    owner: i.owner,
    initial_state: i.initialState,
    final_state: i.finalState,
    snapshot_ids: i.snapshotIds.join(' '),
    status: i.status,
    failed_at: i.failedAt,
    reason: i.reason,
    ...Object.fromEntries(stageIds.flatMap((id) => [
      [`${id}_status`, i.stages[id]?.status ?? 'NotRun'],
      [`${id}_reason`, i.stages[id]?.reason ?? ''],
    ])),
    updates_installed: i.updatesInstalled,
    updates_failed: i.updatesFailed,
    ...approvalCells(i),
  }));
  for (const s of skipped) {
    rows.push({
      instance_id: s.instanceId,
      name: s.name,
      initial_state: s.state,
      status: 'Skipped',
      reason: s.reason,
      ...Object.fromEntries(stageIds.map((id) => [`${id}_status`, 'NotRun'])),
      updates_installed: 0,
      updates_failed: 0,
      ...approvalCells(notEligible()),
    });
  }
  return stringify(rows, { header: true, columns: reportColumns(stageIds) });
}

function approvalCells(a: ApprovalColumns): Record<(typeof REPORT_APPROVAL_COLUMNS)[number], string> {
  return {
    approval: a.approval,
    approver: a.approver,
    decided_by: a.decidedBy,
    decided_at: a.decidedAt,
    decided_from: a.decidedFrom,
    reboot_status: a.rebootStatus,
    reboot_reason: a.rebootReason,
    verify_status: a.verifyStatus,
    verify_reason: a.verifyReason,
  };
}

/** "Error: message", with a Lambda error's JSON Cause reduced to its errorMessage. */
export function describeError(e: PipelineError): string {
  const name = e.Error ?? 'Error';
  let cause = e.Cause ?? '';
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (parsed && typeof parsed.errorMessage === 'string') cause = parsed.errorMessage;
  } catch {
    // A plain-text Cause is already readable.
  }
  return cause ? `${name}: ${cause}` : name;
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

async function forEach<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, items.length) }, worker));
}
