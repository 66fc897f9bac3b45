import { randomBytes } from 'node:crypto';
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { readSecret, sign, signMessage, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../shared/approval-signing';
import { loadApproval, saveApproval } from '../shared/approval-store';
import { GroupSummary, summarizeGroup } from '../shared/approval-summary';
import {
  APPROVAL_REJECTED,
  ApprovalRecord,
  ApprovalRequestOutput,
  approvalKey,
  chunkId,
  groupId as groupIdOf,
} from '../shared/approvals';
import { chunk, SEND_COMMAND_MAX_TARGETS } from '../shared/batching';
import { errorMessage, InvalidInputError, RunDataError } from '../shared/errors';
import { describeInstancesById, tagValue } from '../shared/fleet';
import { batchKey } from '../shared/keys';
import { logger } from '../shared/logger';
import { loadBatch, loadRun } from '../shared/run-data';
import { putJson } from '../shared/s3-json';
import { BatchDocument, RunConfig, RunDocument, RunRef, RunTaskInput } from '../shared/types';

/** The label of instances without an application tag (also the key of config.approval.approvers for them). */
export const NO_APPLICATION = '(no application)';
/** How long the ITSM webhook may take before the request goes on without it. */
export const WEBHOOK_TIMEOUT_MS = 10_000;

export interface ApprovalEnv {
  /** The approval endpoint's function URL; the links point there. */
  readonly APPROVAL_ENDPOINT_URL?: string;
  /** Secrets Manager id (name or ARN) of the HMAC signing secret. */
  readonly APPROVAL_SECRET_ID?: string;
  /** ServiceNow-style webhook that receives each request as JSON (optional). */
  readonly ITSM_WEBHOOK_URL?: string;
}

export interface ApprovalDeps {
  readonly s3: S3Client;
  readonly ssm: SSMClient;
  /** Reads the approver tag at plan time (run.json keeps only the application and owner tags). */
  readonly ec2?: EC2Client;
  readonly sfn?: SFNClient;
  readonly now?: () => Date;
  readonly fetch?: typeof fetch;
  readonly env?: ApprovalEnv;
}

export interface PlanInput extends RunTaskInput {
  readonly action: 'plan';
}
export interface RequestInput extends RunTaskInput {
  readonly action: 'request';
  readonly groupId: string;
}
export interface WaitInput extends RunRef {
  readonly action: 'wait';
  readonly groupId: string;
  readonly taskToken: string;
}
export interface CloseInput extends RunRef {
  readonly action: 'close';
  readonly groupId: string;
  /** The Catch's error output: ApprovalRejected or States.Timeout. */
  readonly error?: { readonly Error?: string; readonly Cause?: string };
}
export type ApprovalInput = PlanInput | RequestInput | WaitInput | CloseInput;

export interface PlanOutput {
  readonly groups: string[];
}
export interface WaitOutput {
  readonly groupId: string;
  readonly status: 'waiting';
}
export interface CloseOutput {
  readonly groupId: string;
  readonly status: ApprovalRecord['status'];
}

export async function approval(event: PlanInput, deps: ApprovalDeps): Promise<PlanOutput>;
export async function approval(event: RequestInput, deps: ApprovalDeps): Promise<ApprovalRequestOutput>;
export async function approval(event: WaitInput, deps: ApprovalDeps): Promise<WaitOutput>;
export async function approval(event: CloseInput, deps: ApprovalDeps): Promise<CloseOutput>;
export async function approval(event: ApprovalInput, deps: ApprovalDeps): Promise<PlanOutput | ApprovalRequestOutput | WaitOutput | CloseOutput>;
/** The approval task of the workflow: one entry point, four actions. */
export async function approval(event: ApprovalInput, deps: ApprovalDeps): Promise<PlanOutput | ApprovalRequestOutput | WaitOutput | CloseOutput> {
  switch (event?.action) {
    case 'plan':
      return planApprovals(event, deps);
    case 'request':
      return requestApproval(event, deps);
    case 'wait':
      return waitForDecision(event, deps);
    case 'close':
      return closeApproval(event, deps);
    default:
      throw new InvalidInputError('action', `approval action is ${JSON.stringify((event as { action?: unknown })?.action)}; use "plan", "request", "wait" or "close"`);
  }
}

interface Member {
  readonly instanceId: string;
  readonly application: string;
  readonly owner: string;
  readonly approverTag: string;
}

/**
 * Groups the fully patched instances by application, names each group's approver, and writes one
 * approval record per group and one batch document per chunk of <= 50 instances.
 */
export async function planApprovals(event: PlanInput, deps: ApprovalDeps): Promise<PlanOutput> {
  const { runId, bucket, config } = event;
  // A dry run changes nothing, and 'skip' leaves every reboot to the owners (the report says so).
  if (config.approval.mode === 'skip' || config.dryRun) {
    logger.info('reboot approvals not requested', { runId, mode: config.approval.mode, dryRun: config.dryRun });
    return { groups: [] };
  }
  const now = (deps.now ?? (() => new Date()))();
  const run = await loadRun(deps.s3, bucket, runId);
  const eligible = await fullyPatched(deps.s3, bucket, run);
  if (eligible.length === 0) {
    logger.info('no fully patched instance: no reboot approval', { runId });
    return { groups: [] };
  }

  const approverTags = await readApproverTags(deps.ec2, config, eligible);
  const targets = new Map(run.targets.map((t) => [t.instanceId, t]));
  const byApp = new Map<string, Member[]>();
  for (const instanceId of eligible) {
    const t = targets.get(instanceId);
    const application = t?.application || NO_APPLICATION;
    const members = byApp.get(application) ?? [];
    members.push({ instanceId, application, owner: t?.owner ?? '', approverTag: approverTags.get(instanceId) ?? '' });
    byApp.set(application, members);
  }

  const groups: string[] = [];
  const applications = [...byApp.keys()].sort((a, b) => a.localeCompare(b));
  for (const [index, application] of applications.entries()) {
    const members = byApp.get(application)!;
    const id = groupIdOf(index);
    const { approver, source } = resolveApprover(config, application, members);
    const instanceIds = members.map((m) => m.instanceId);
    const chunks = chunk(instanceIds, SEND_COMMAND_MAX_TARGETS).map((ids, i) => ({ batchId: chunkId(id, i), ids }));
    for (const c of chunks) {
      const doc: BatchDocument = {
        runId,
        batchId: c.batchId,
        instanceIds: c.ids,
        instances: Object.fromEntries(c.ids.map((i) => [i, { status: 'active', stages: {} }])),
        updatedAt: now.toISOString(),
      };
      await putJson(deps.s3, bucket, batchKey(runId, c.batchId), doc);
    }
    const record: ApprovalRecord = {
      runId,
      groupId: id,
      application,
      approver,
      approverSource: source,
      instanceIds,
      chunks: chunks.map((c) => c.batchId),
      approvalId: '',
      expiresAt: '',
      status: approver ? 'requested' : 'no-approver',
      requestedAt: now.toISOString(),
    };
    await saveApproval(deps.s3, bucket, record);
    groups.push(id);
    logger.info('approval group planned', { runId, groupId: id, application, approverSource: source, instances: instanceIds.length, chunks: record.chunks });
  }
  return { groups };
}

/** Active instances of the discovered batches with every document stage of the run a Success. */
async function fullyPatched(s3: S3Client, bucket: string, run: RunDocument): Promise<string[]> {
  const out: string[] = [];
  for (const { batchId } of run.batches) {
    const batch = await loadBatch(s3, bucket, run.runId, batchId);
    for (const id of batch.instanceIds) {
      const p = batch.instances[id];
      if (p?.status === 'active' && run.stages.every((stage) => p.stages[stage]?.status === 'Success')) out.push(id);
    }
  }
  return out;
}

async function readApproverTags(ec2: EC2Client | undefined, config: RunConfig, ids: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!config.approval.approverTagKey) return out;
  if (!ec2) throw new Error('plan needs an EC2 client to read the approver tag');
  const described = await describeInstancesById(ec2, ids);
  for (const [id, instance] of described) out.set(id, tagValue(instance, config.approval.approverTagKey));
  return out;
}

/** config > approver tag > owner tag > default > none; several tag values in one group are all named. */
export function resolveApprover(config: RunConfig, application: string, members: readonly Member[]): { approver: string; source: ApprovalRecord['approverSource'] } {
  const configured = config.approval.approvers[application];
  if (configured) return { approver: configured, source: 'config' };
  const distinct = (values: string[]): string => [...new Set(values.map((v) => v.trim()).filter(Boolean))].sort().join(', ');
  const tagged = distinct(members.map((m) => m.approverTag));
  if (tagged) return { approver: tagged, source: 'tag' };
  const owners = distinct(members.map((m) => m.owner));
  if (owners) return { approver: owners, source: 'owner' };
  if (config.approval.defaultApprover) return { approver: config.approval.defaultApprover, source: 'default' };
  return { approver: '', source: 'none' };
}

/**
 * Opens the group's request: a new approval id and deadline, the signed link, the e-mail text,
 * the ITSM webhook (when configured). The task token does not exist yet and is never part of this.
 */
export async function requestApproval(event: RequestInput, deps: ApprovalDeps): Promise<ApprovalRequestOutput> {
  const { runId, bucket, config, groupId } = event;
  const now = (deps.now ?? (() => new Date()))();
  const env = deps.env ?? {};
  const stored = await loadApproval(deps.s3, bucket, runId, groupId);
  if (!stored) throw new RunDataError(`s3://${bucket}/${approvalKey(runId, groupId)} does not exist: plan did not create group ${groupId}`);
  const record = stored.record;
  const run = await loadRun(deps.s3, bucket, runId);
  const summary = await summarizeGroup(deps.s3, bucket, record, run);
  const verifyParameters = verifyParametersOf(config, record.application, now);
  const base = { groupId, application: record.application, approver: record.approver, chunks: record.chunks, verifyParameters };

  if (record.status === 'no-approver') {
    logger.warn('no approver for the group: reboot deferred', { runId, groupId, application: record.application });
    return {
      ...base,
      notify: false,
      subject: truncate(`Reboot deferred: nobody approves ${record.application} (${runId})`),
      message: deferredMessage(record, summary),
    };
  }
  if (record.status !== 'requested') {
    throw new RunDataError(`approval ${groupId} of run ${runId} is ${record.status}; a request is opened only once, after plan`);
  }
  if (!env.APPROVAL_ENDPOINT_URL) throw new Error('APPROVAL_ENDPOINT_URL is not set: the request needs the approval endpoint for its link');
  const secret = await readSecret(deps.ssm, env.APPROVAL_SECRET_ID ?? '', now);

  const approvalId = randomBytes(18).toString('base64url');
  const exp = Math.floor(now.getTime() / 1000) + config.approval.timeoutSeconds;
  const expiresAt = new Date(exp * 1000).toISOString();
  const fields = { id: approvalId, run: runId, group: groupId, exp };
  const sig = sign(secret, fields);
  const link = approvalLink(env.APPROVAL_ENDPOINT_URL, { ...fields, sig });

  const next: ApprovalRecord = { ...record, approvalId, expiresAt, status: 'requested', requestedAt: now.toISOString() };
  delete next.taskToken;
  await saveApproval(deps.s3, bucket, next);

  if (env.ITSM_WEBHOOK_URL) {
    await postToItsm(deps.fetch ?? fetch, env.ITSM_WEBHOOK_URL, secret, now, {
      approvalId,
      runId,
      groupId,
      application: record.application,
      approver: record.approver,
      short_description: `Approve the reboot of ${record.application} after patching (${runId})`,
      instances: summary.instances.map((i) => ({
        instanceId: i.instanceId,
        name: i.name,
        updatesInstalled: i.updatesInstalled ?? null,
        rebootPending: i.rebootPending ?? null,
      })),
      callbackUrl: env.APPROVAL_ENDPOINT_URL,
      link,
      exp,
      expiresAt,
      sig,
    });
  }

  logger.info('approval requested', { runId, groupId, application: record.application, approverSource: record.approverSource, expiresAt, instances: record.instanceIds.length });
  return {
    ...base,
    notify: true,
    subject: truncate(`Approve the reboot of ${record.application} after patching (${runId})`),
    message: requestMessage(next, summary, link),
  };
}

/** Stores the task token of the wait task; the endpoint needs it to answer. Never logged, never returned. */
export async function waitForDecision(event: WaitInput, deps: ApprovalDeps): Promise<WaitOutput> {
  const { runId, bucket, groupId, taskToken } = event;
  if (typeof taskToken !== 'string' || taskToken.length === 0) throw new InvalidInputError('taskToken', 'wait needs the task token: set "taskToken.$": "$$.Task.Token"');
  const stored = await loadApproval(deps.s3, bucket, runId, groupId);
  if (!stored) throw new RunDataError(`s3://${bucket}/${approvalKey(runId, groupId)} does not exist: plan did not create group ${groupId}`);
  const { record } = stored;
  if (record.status !== 'requested' && record.status !== 'waiting') {
    throw new RunDataError(`approval ${groupId} of run ${runId} is ${record.status}; only a requested approval can wait for a decision`);
  }
  // A retried wait task brings a new token; the last one is the one the workflow waits on.
  await saveApproval(deps.s3, bucket, { ...record, status: 'waiting', taskToken }, stored.etag);
  logger.info('waiting for the approval decision', { runId, groupId, expiresAt: record.expiresAt });
  return { groupId, status: 'waiting' };
}

/** Ends a group that will not reboot: a rejection (already recorded by the endpoint) or a timeout. */
export async function closeApproval(event: CloseInput, deps: ApprovalDeps): Promise<CloseOutput> {
  const { runId, bucket, groupId } = event;
  const now = (deps.now ?? (() => new Date()))();
  const stored = await loadApproval(deps.s3, bucket, runId, groupId);
  if (!stored) throw new RunDataError(`s3://${bucket}/${approvalKey(runId, groupId)} does not exist: plan did not create group ${groupId}`);
  const record: ApprovalRecord = { ...stored.record };
  delete record.taskToken;
  const error = event.error?.Error ?? '';
  if (error === APPROVAL_REJECTED) {
    if (record.status !== 'rejected') {
      record.status = 'rejected';
      record.decidedAt ??= now.toISOString();
      record.decidedFrom ??= { channel: 'link' };
      record.comment ??= causeText(event.error?.Cause);
    }
  } else if (record.status !== 'rejected') {
    // A timeout wins over an approval the workflow never received (SendTaskSuccess after the deadline).
    record.status = 'timed-out';
    record.decidedAt = now.toISOString();
    record.decidedFrom = { channel: 'timeout' };
    delete record.decidedBy;
    if (error && error !== 'States.Timeout') record.comment = `closed after ${error}`;
  }
  await saveApproval(deps.s3, bucket, record);
  logger.info('approval closed: reboot deferred', { runId, groupId, status: record.status, error });
  return { groupId, status: record.status };
}

/** The verify document's group-level parameters. The request time is a floor the reboot must be after. */
export function verifyParametersOf(config: RunConfig, application: string, requestedAt: Date): Record<string, string> {
  const checks = config.approval.healthChecks[application] ?? {};
  return {
    RebootedAfter: requestedAt.toISOString(),
    ServiceNames: (checks.services ?? []).join(','),
    SystemdUnits: (checks.units ?? []).join(','),
    HealthUrl: checks.url ?? '',
  };
}

export function approvalLink(endpoint: string, f: { id: string; run: string; group: string; exp: number; sig: string }): string {
  const query = new URLSearchParams({ id: f.id, run: f.run, group: f.group, exp: String(f.exp), sig: f.sig }).toString();
  return `${endpoint}${endpoint.includes('?') ? '&' : '?'}${query}`;
}

/** SNS subjects: at most 100 printable ASCII characters, no line breaks. */
function truncate(subject: string): string {
  const ascii = subject.replace(/[^\x20-\x7e]/g, '?');
  return ascii.length <= 100 ? ascii : `${ascii.slice(0, 97)}...`;
}

function instanceLines(summary: GroupSummary): string[] {
  return summary.instances.map((i) => {
    const updates = i.updatesInstalled === undefined ? 'updates installed: unknown (no compare CSV)' : `${i.updatesInstalled} update(s) installed`;
    const reboot = i.rebootPending === undefined ? 'reboot pending: unknown' : i.rebootPending ? 'reboot pending: yes' : 'reboot pending: no';
    const missing = i.stillMissing ? `, ${i.stillMissing} security update(s) still missing` : '';
    return `  - ${i.name || '(no Name tag)'} (${i.instanceId}): ${updates}, ${reboot}${missing}`;
  });
}

function requestMessage(record: ApprovalRecord, summary: GroupSummary, link: string): string {
  return [
    `Patching of ${record.application} (run ${record.runId}) has finished and its instances need your approval to reboot.`,
    '',
    `Approver: ${record.approver} (${record.approverSource})`,
    `Instances (${summary.instances.length}), ${summary.updatesInstalled} update(s) installed in total, ${summary.pendingReboots} with a reboot pending:`,
    ...instanceLines(summary),
    '',
    `Approve or reject before ${record.expiresAt} (UTC):`,
    link,
    '',
    'The link opens a page that shows the request; nothing happens until you press Approve or Reject.',
    'After the deadline the reboot is deferred and the instances keep running unrebooted.',
  ].join('\n');
}

function deferredMessage(record: ApprovalRecord, summary: GroupSummary): string {
  return [
    `Patching of ${record.application} (run ${record.runId}) has finished, but nobody is named to approve its reboot:`,
    'no approver in the configuration, no approver or owner tag, no default approver. The reboot is deferred.',
    '',
    `Instances (${summary.instances.length}), ${summary.pendingReboots} with a reboot pending:`,
    ...instanceLines(summary),
  ].join('\n');
}

/** The webhook is a convenience next to the e-mail: its failure is logged, not fatal to the request. */
async function postToItsm(fetchFn: typeof fetch, url: string, secret: string, now: Date, payload: Record<string, unknown>): Promise<void> {
  const body = JSON.stringify(payload);
  const timestamp = String(Math.floor(now.getTime() / 1000));
  const context = { runId: payload.runId, groupId: payload.groupId };
  try {
    const res = await fetchFn(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: signMessage(secret, timestamp, body) },
      body,
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
    });
    if (!res.ok) logger.warn('the ITSM webhook refused the approval request', { ...context, status: res.status });
    else logger.info('approval request sent to the ITSM webhook', { ...context, status: res.status });
  } catch (err) {
    logger.warn('could not reach the ITSM webhook', { ...context, error: errorMessage(err) });
  }
}

function causeText(cause: string | undefined): string | undefined {
  if (!cause) return undefined;
  return cause.length > 500 ? `${cause.slice(0, 497)}...` : cause;
}
