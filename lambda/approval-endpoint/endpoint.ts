import { S3Client } from '@aws-sdk/client-s3';
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { readSecret, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify, verifyMessage } from '../shared/approval-signing';
import { ApprovalConflictError, loadApproval, saveApproval, StoredApproval } from '../shared/approval-store';
import { summarizeGroup } from '../shared/approval-summary';
import { APPROVAL_REJECTED, ApprovalDecision, ApprovalRecord } from '../shared/approvals';
import { RUN_ID_PATTERN } from '../shared/keys';
import { logger } from '../shared/logger';
import { HTML_HEADERS, messagePage, requestPage } from './page';

export interface EndpointEnv {
  /** The run bucket: never taken from the request. */
  readonly BUCKET_NAME?: string;
  readonly APPROVAL_SECRET_ID?: string;
}

export interface EndpointDeps {
  readonly s3: S3Client;
  readonly ssm: SSMClient;
  readonly sfn: SFNClient;
  readonly now?: () => Date;
  readonly env: EndpointEnv;
}

/** The parts of a Lambda function URL event (payload format 2.0) the endpoint reads. */
export interface FunctionUrlEvent {
  readonly rawQueryString?: string;
  readonly queryStringParameters?: Record<string, string | undefined>;
  readonly headers?: Record<string, string | undefined>;
  readonly body?: string;
  readonly isBase64Encoded?: boolean;
  readonly requestContext?: { readonly http?: { readonly method?: string; readonly sourceIp?: string; readonly userAgent?: string } };
}

export interface FunctionUrlResult {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Bodies larger than this are not decisions. */
export const MAX_BODY_BYTES = 16 * 1024;
const ID_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;
const GROUP_PATTERN = /^a\d{3,6}$/;
const EXP_PATTERN = /^\d{1,12}$/;
const SIG_PATTERN = /^[0-9a-fA-F]{64}$/;
/** SFN answers for a token that can no longer be used: the wait task ended (timeout) or never existed. */
const DEAD_TOKEN_ERRORS = new Set(['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken']);

type Format = 'html' | 'json';
type Channel = 'link' | 'itsm';

/** A refusal with its HTTP status; the message is safe to show (it never holds a token or a signature). */
class Refusal extends Error {
  constructor(
    public readonly statusCode: number,
    public readonly title: string,
    message: string,
  ) {
    super(message);
  }
}

interface LinkInput {
  readonly id: string;
  readonly run: string;
  readonly group: string;
  readonly exp: string;
  readonly sig: string;
}

interface DecisionInput {
  readonly decision: 'approved' | 'rejected';
  /** The name typed on the page, or the ITSM user. */
  readonly typedBy: string;
  readonly comment: string;
  readonly channel: Channel;
}

/**
 * The approval endpoint (function URL, no IAM auth: the links come from e-mails, so the HMAC
 * signature is the authentication). GET shows the request and never changes anything; POST decides.
 */
export async function endpoint(event: FunctionUrlEvent, deps: EndpointDeps): Promise<FunctionUrlResult> {
  const method = (event.requestContext?.http?.method ?? '').toUpperCase();
  const headers = lowerKeys(event.headers);
  const itsm = method === 'POST' && headers[SIGNATURE_HEADER.toLowerCase()] !== undefined;
  const format: Format = itsm || /json/i.test(headers['content-type'] ?? '') ? 'json' : 'html';
  const context = { method, channel: itsm ? 'itsm' : 'link', sourceIp: event.requestContext?.http?.sourceIp };
  try {
    let result: FunctionUrlResult;
    if (method === 'GET') result = await showRequest(event, deps);
    else if (method === 'POST') result = itsm ? await itsmCallback(event, headers, deps) : await linkDecision(event, headers, deps, format);
    else throw new Refusal(405, 'Method not allowed', 'Use GET to see a request and POST to decide.');
    logger.info('approval endpoint answered', { ...context, statusCode: result.statusCode });
    return result;
  } catch (err) {
    if (err instanceof Refusal) {
      logger.warn('approval endpoint refused a request', { ...context, statusCode: err.statusCode, reason: err.message });
      return respond(format, err.statusCode, err.title, err.message, err.statusCode === 405 ? { allow: 'GET, POST' } : {});
    }
    // The name only: SDK messages are not ours to vouch for.
    logger.error('approval endpoint failed', { ...context, error: (err as { name?: string })?.name ?? 'Error' });
    return respond(format, 500, 'Something went wrong', 'The request could not be processed; nothing was decided. Try again in a minute.');
  }
}

async function showRequest(event: FunctionUrlEvent, deps: EndpointDeps): Promise<FunctionUrlResult> {
  const params = event.queryStringParameters ?? Object.fromEntries(new URLSearchParams(event.rawQueryString ?? ''));
  const link = linkFields(params);
  const now = clock(deps);
  const stored = await checkLink(link, deps, now);
  const summary = await summarizeGroup(deps.s3, bucketOf(deps), stored.record);
  return { statusCode: 200, headers: { ...HTML_HEADERS }, body: requestPage(stored.record, summary, link) };
}

async function linkDecision(event: FunctionUrlEvent, headers: Record<string, string>, deps: EndpointDeps, format: Format): Promise<FunctionUrlResult> {
  const body = parseBody(rawBody(event), headers['content-type'] ?? '');
  const link = linkFields(body);
  const decision = decisionOf(body.decision);
  const now = clock(deps);
  const stored = await checkLink(link, deps, now);
  return decide(stored, { decision, typedBy: text(body.name, 100), comment: text(body.comment, 1000), channel: 'link' }, event, deps, now, format);
}

async function itsmCallback(event: FunctionUrlEvent, headers: Record<string, string>, deps: EndpointDeps): Promise<FunctionUrlResult> {
  const raw = rawBody(event);
  const now = clock(deps);
  const secret = await readSecret(deps.ssm, deps.env.APPROVAL_SECRET_ID ?? '', now);
  const check = verifyMessage(secret, headers[TIMESTAMP_HEADER.toLowerCase()], raw, headers[SIGNATURE_HEADER.toLowerCase()], now);
  if (check === 'bad-signature') throw new Refusal(403, 'Forbidden', `The ${SIGNATURE_HEADER} header does not match the body and ${TIMESTAMP_HEADER}.`);
  if (check === 'stale') throw new Refusal(403, 'Forbidden', `${TIMESTAMP_HEADER} is more than 5 minutes away from now; resend with a fresh timestamp and signature.`);
  const body = parseBody(raw, 'application/json');
  const approvalId = String(body.approvalId ?? '');
  const runId = String(body.runId ?? '');
  const groupId = String(body.groupId ?? '');
  if (!ID_PATTERN.test(approvalId) || !RUN_ID_PATTERN.test(runId) || !GROUP_PATTERN.test(groupId)) {
    throw new Refusal(400, 'Bad request', 'The body needs approvalId, runId and groupId as sent in the approval request.');
  }
  const decision = decisionOf(body.decision);
  const stored = await loadKnown(deps, runId, groupId, approvalId);
  if (expired(stored.record.expiresAt, now)) throw new Refusal(410, 'Expired', `This approval request expired at ${stored.record.expiresAt}; the reboot was deferred.`);
  return decide(stored, { decision, typedBy: text(body.by, 100), comment: text(body.comment, 1000), channel: 'itsm' }, event, deps, now, 'json');
}

/** Signature first (a forged link learns nothing, not even whether it expired), then expiry, then the record. */
async function checkLink(link: LinkInput, deps: EndpointDeps, now: Date): Promise<StoredApproval> {
  const secret = await readSecret(deps.ssm, deps.env.APPROVAL_SECRET_ID ?? '', now);
  const exp = Number(link.exp);
  if (!verify(secret, { id: link.id, run: link.run, group: link.group, exp }, link.sig)) {
    throw new Refusal(403, 'Forbidden', 'This link is not valid: its signature does not match. Use the link exactly as it was sent.');
  }
  if (exp * 1000 <= now.getTime()) throw new Refusal(410, 'Expired', `This approval link expired at ${new Date(exp * 1000).toISOString()}; the reboot was deferred.`);
  const stored = await loadKnown(deps, link.run, link.group, link.id);
  if (expired(stored.record.expiresAt, now)) throw new Refusal(410, 'Expired', `This approval request expired at ${stored.record.expiresAt}; the reboot was deferred.`);
  return stored;
}

async function loadKnown(deps: EndpointDeps, runId: string, groupId: string, approvalId: string): Promise<StoredApproval> {
  const stored = await loadApproval(deps.s3, bucketOf(deps), runId, groupId);
  // A record with another approval id belongs to a newer request: this one is unknown now.
  if (!stored || !stored.record.approvalId || stored.record.approvalId !== approvalId) {
    throw new Refusal(404, 'Unknown request', 'There is no such approval request (it may have been replaced by a newer one).');
  }
  return stored;
}

/**
 * Records the decision with a conditional write (the record's ETag), so of two concurrent decisions
 * only one reaches Step Functions, then answers the wait task with the stored token.
 */
async function decide(stored: StoredApproval, input: DecisionInput, event: FunctionUrlEvent, deps: EndpointDeps, now: Date, format: Format): Promise<FunctionUrlResult> {
  const { record, etag } = stored;
  if (record.status === 'requested' || (record.status === 'waiting' && !record.taskToken)) {
    throw new Refusal(409, 'Not ready yet', 'The pipeline is not waiting for this decision yet; retry in a few seconds.');
  }
  if (record.status !== 'waiting') throw new Refusal(409, 'Already decided', alreadyDecided(record));

  const taskToken = record.taskToken!;
  const decidedBy = input.typedBy ? `${record.approver} (as "${input.typedBy}")` : record.approver;
  const http = event.requestContext?.http;
  const decided: ApprovalRecord = {
    ...record,
    status: input.decision,
    decidedAt: now.toISOString(),
    decidedBy,
    decidedFrom: { ...(http?.sourceIp ? { sourceIp: http.sourceIp } : {}), ...(http?.userAgent ? { userAgent: text(http.userAgent, 300) } : {}), channel: input.channel },
    ...(input.comment ? { comment: input.comment } : {}),
  };
  let decidedEtag: string | undefined;
  try {
    decidedEtag = await saveApproval(deps.s3, bucketOf(deps), decided, etag);
  } catch (err) {
    if (err instanceof ApprovalConflictError) throw new Refusal(409, 'Already decided', 'Someone else decided this request at the same moment; reload the page to see the decision.');
    throw err;
  }

  const sent = await answerWorkflow(deps.sfn, taskToken, decided, input);
  const bucket = bucketOf(deps);
  const cleared: ApprovalRecord = { ...decided };
  delete cleared.taskToken;
  if (sent === 'dead-token') {
    // The workflow stopped waiting (timeout) before the decision came: record what really happened.
    await saveApproval(deps.s3, bucket, { ...cleared, status: 'timed-out', decidedFrom: { channel: 'timeout' } });
    throw new Refusal(410, 'Expired', 'The pipeline stopped waiting for this decision before it arrived; the reboot was deferred.');
  }
  if (sent === 'failed') {
    // Undo, so the same link can be used again: the decision never reached the workflow.
    await saveApproval(deps.s3, bucket, record, decidedEtag);
    throw new Refusal(502, 'Try again', 'The decision could not be passed to the pipeline; nothing was decided. Try again in a minute.');
  }
  try {
    await saveApproval(deps.s3, bucket, cleared, decidedEtag);
  } catch (err) {
    // The workflow has its answer; a token left in the record is only dead weight.
    logger.warn('could not clear the task token from the decided record', { runId: record.runId, groupId: record.groupId, error: (err as { name?: string })?.name });
  }
  logger.info('approval decided', { runId: record.runId, groupId: record.groupId, application: record.application, decision: input.decision, channel: input.channel, decidedBy });
  const title = input.decision === 'approved' ? `Approved — the reboot of ${record.application} starts now` : `Rejected — the reboot of ${record.application} is deferred`;
  return respond(format, 200, title, `Recorded for run ${record.runId}, group ${record.groupId}, by ${decidedBy} at ${decided.decidedAt}.`, {}, { status: input.decision });
}

/** Sends the decision; never lets an SDK error (whose text we do not control) travel with the token. */
async function answerWorkflow(sfn: SFNClient, taskToken: string, record: ApprovalRecord, input: DecisionInput): Promise<'sent' | 'dead-token' | 'failed'> {
  try {
    if (input.decision === 'approved') {
      const output: ApprovalDecision = { decision: 'approved', by: record.decidedBy ?? '', at: record.decidedAt ?? '', channel: input.channel };
      await sfn.send(new SendTaskSuccessCommand({ taskToken, output: JSON.stringify(output) }));
    } else {
      const cause = `rejected by ${record.decidedBy ?? '?'}${input.comment ? `: ${input.comment}` : ''}`;
      await sfn.send(new SendTaskFailureCommand({ taskToken, error: APPROVAL_REJECTED, cause }));
    }
    return 'sent';
  } catch (err) {
    const name = (err as { name?: string })?.name ?? 'Error';
    logger.warn('Step Functions did not take the decision', { runId: record.runId, groupId: record.groupId, error: name });
    return DEAD_TOKEN_ERRORS.has(name) ? 'dead-token' : 'failed';
  }
}

function alreadyDecided(record: ApprovalRecord): string {
  switch (record.status) {
    case 'approved':
    case 'rejected':
      return `This request was already ${record.status} by ${record.decidedBy ?? '?'} at ${record.decidedAt ?? '?'}.`;
    case 'timed-out':
      return 'This request timed out; the reboot was deferred.';
    default:
      return 'Nobody approves this group; the reboot was deferred.';
  }
}

function linkFields(params: Record<string, unknown>): LinkInput {
  const f = { id: str(params.id), run: str(params.run), group: str(params.group), exp: str(params.exp), sig: str(params.sig) };
  if (!ID_PATTERN.test(f.id) || !RUN_ID_PATTERN.test(f.run) || !GROUP_PATTERN.test(f.group) || !EXP_PATTERN.test(f.exp) || !SIG_PATTERN.test(f.sig)) {
    throw new Refusal(400, 'Bad request', 'The link is incomplete or damaged: it needs id, run, group, exp and sig as sent in the e-mail.');
  }
  return f;
}

function decisionOf(value: unknown): 'approved' | 'rejected' {
  const v = str(value).toLowerCase();
  if (v === 'approve' || v === 'approved') return 'approved';
  if (v === 'reject' || v === 'rejected') return 'rejected';
  throw new Refusal(400, 'Bad request', 'The decision must be "approve" or "reject".');
}

function rawBody(event: FunctionUrlEvent): string {
  const body = event.body ?? '';
  const text = event.isBase64Encoded ? Buffer.from(body, 'base64').toString('utf-8') : body;
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) throw new Refusal(400, 'Bad request', `The body is larger than ${MAX_BODY_BYTES} bytes.`);
  return text;
}

function parseBody(body: string, contentType: string): Record<string, unknown> {
  if (/json/i.test(contentType) || body.trimStart().startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      throw new Refusal(400, 'Bad request', 'The body is not valid JSON.');
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Refusal(400, 'Bad request', 'The body must be a JSON object.');
    return value as Record<string, unknown>;
  }
  return Object.fromEntries(new URLSearchParams(body));
}

function respond(format: Format, statusCode: number, title: string, message: string, extraHeaders: Record<string, string> = {}, extra: Record<string, string> = {}): FunctionUrlResult {
  if (format === 'json') {
    return {
      statusCode,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...extraHeaders },
      body: JSON.stringify({ ...extra, title, message }),
    };
  }
  return { statusCode, headers: { ...HTML_HEADERS, ...extraHeaders }, body: messagePage(title, message) };
}

const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');
/** Free text from the page, without control characters, bounded. */
const text = (v: unknown, max: number): string => str(v).replace(/[\u0000-\u001f\u007f]/g, ' ').trim().slice(0, max);
const expired = (iso: string, now: Date): boolean => Boolean(iso) && new Date(iso).getTime() <= now.getTime();
const clock = (deps: EndpointDeps): Date => (deps.now ?? (() => new Date()))();
const lowerKeys = (h: Record<string, string | undefined> | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(h ?? {}).filter((e): e is [string, string] => e[1] !== undefined).map(([k, v]) => [k.toLowerCase(), v]));

function bucketOf(deps: EndpointDeps): string {
  if (!deps.env.BUCKET_NAME) throw new Error('BUCKET_NAME is not set');
  return deps.env.BUCKET_NAME;
}
