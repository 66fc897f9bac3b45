import { createHash } from 'node:crypto';
import { GetObjectCommand, GetObjectCommandOutput, NoSuchKey, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient, TaskTimedOut } from '@aws-sdk/client-sfn';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { endpoint, FunctionUrlEvent, FunctionUrlResult } from '../../../lambda/approval-endpoint/endpoint';
import { escapeHtml } from '../../../lambda/approval-endpoint/page';
import { clearSecretCache, LinkFields, sign, signMessage } from '../../../lambda/shared/approval-signing';
import { APPROVAL_REJECTED, ApprovalDecision, ApprovalRecord, approvalKey } from '../../../lambda/shared/approvals';
import { compareKey, failedKey, runDocumentKey } from '../../../lambda/shared/keys';
import { logger } from '../../../lambda/shared/logger';
import { RunDocument } from '../../../lambda/shared/types';
import { testConfig } from '../../helpers/fixtures';
import { mockS3Memory, S3Memory } from '../../helpers/s3-memory';
import { BUCKET, RUN_ID } from '../../helpers/stage-fixtures';

const ssm = mockClient(SSMClient);
const sfn = mockClient(SFNClient);
const { s3Mock, bucket } = mockS3Memory(ssm, sfn);

const NOW = new Date('2024-06-01T10:00:00.000Z');
const SECRET = 'endpoint-test-secret-0123456789abcdef';
const SECRET_ID = 'patch-pipeline/approval-signing';
const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAAf-TASK-TOKEN-must-never-leak';
const APPROVAL_ID = 'Zm9vYmFyYmF6cXV4MTIzNDU2';
const EXP = NOW.getTime() / 1000 + 3600;
const GROUP = 'a000';
const KEY = approvalKey(RUN_ID, GROUP);

const deps = () => ({
  s3: new S3Client({}),
  ssm: new SSMClient({}),
  sfn: new SFNClient({}),
  now: () => NOW,
  env: { BUCKET_NAME: BUCKET, APPROVAL_SECRET_ID: SECRET_ID },
});

const etagOf = (text: string): string => `"${createHash('md5').update(text).digest('hex')}"`;

/** The in-memory bucket with ETags and IfMatch, as S3 does conditional writes. */
function withConditionalWrites(mem: S3Memory): void {
  s3Mock.on(GetObjectCommand).callsFake(async (input: { Key?: string }) => {
    const text = mem.get(input.Key ?? '');
    if (text === undefined) throw new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} });
    return { Body: { transformToString: async () => text }, ETag: etagOf(text) } as unknown as GetObjectCommandOutput;
  });
  s3Mock.on(PutObjectCommand).callsFake(async (input: { Key?: string; Body?: unknown; IfMatch?: string }) => {
    const body = String(input.Body);
    if (input.IfMatch !== undefined) {
      const current = mem.get(input.Key ?? '');
      if (current === undefined || etagOf(current) !== input.IfMatch) throw preconditionFailed();
    }
    mem.put(input.Key ?? '', body);
    return { ETag: etagOf(body) };
  });
}

const preconditionFailed = (): Error =>
  Object.assign(new Error('At least one of the pre-conditions you specified did not hold'), { name: 'PreconditionFailed', $metadata: { httpStatusCode: 412 } });

function waitingRecord(overrides: Partial<ApprovalRecord> = {}): ApprovalRecord {
  return {
    runId: RUN_ID,
    groupId: GROUP,
    application: 'web <shop>',
    approver: 'web-owner@example.com',
    approverSource: 'owner',
    instanceIds: ['i-web1', 'i-web2'],
    chunks: ['a000-0'],
    approvalId: APPROVAL_ID,
    expiresAt: new Date(EXP * 1000).toISOString(),
    status: 'waiting',
    taskToken: TOKEN,
    requestedAt: '2024-06-01T09:00:00.000Z',
    ...overrides,
  };
}

const LINK: LinkFields = { id: APPROVAL_ID, run: RUN_ID, group: GROUP, exp: EXP };
const signed = (f: LinkFields = LINK, sig = sign(SECRET, f)) => ({ id: f.id, run: f.run, group: f.group, exp: String(f.exp), sig });

const http = { sourceIp: '203.0.113.9', userAgent: 'Mozilla/5.0 (test)' };
const get = (params: Record<string, string>): FunctionUrlEvent => ({
  requestContext: { http: { method: 'GET', ...http } },
  rawQueryString: new URLSearchParams(params).toString(),
  queryStringParameters: params,
  headers: { host: 'abc.lambda-url.eu-west-1.on.aws' },
});
/** Function URLs deliver form bodies base64-encoded. */
const postForm = (fields: Record<string, string>): FunctionUrlEvent => ({
  requestContext: { http: { method: 'POST', ...http } },
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: Buffer.from(new URLSearchParams(fields).toString()).toString('base64'),
  isBase64Encoded: true,
});
const postJson = (fields: Record<string, string>): FunctionUrlEvent => ({
  requestContext: { http: { method: 'POST', ...http } },
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(fields),
  isBase64Encoded: false,
});
function itsm(body: Record<string, unknown>, opts: { timestamp?: number; secret?: string } = {}): FunctionUrlEvent {
  const text = JSON.stringify(body);
  const timestamp = String(opts.timestamp ?? NOW.getTime() / 1000);
  return {
    requestContext: { http: { method: 'POST', sourceIp: '198.51.100.20', userAgent: 'ServiceNow/1.0' } },
    headers: {
      'content-type': 'application/json',
      'x-patch-pipeline-timestamp': timestamp,
      'x-patch-pipeline-signature': signMessage(opts.secret ?? SECRET, timestamp, text),
    },
    body: text,
  };
}
const ITSM_BODY = { approvalId: APPROVAL_ID, runId: RUN_ID, groupId: GROUP, decision: 'approved', by: 'jane.doe', comment: 'CHG0031337' };

const record = (): ApprovalRecord => bucket.json<ApprovalRecord>(KEY);
const putCount = (): number => s3Mock.commandCalls(PutObjectCommand).length;
const sfnCalls = (): number => sfn.commandCalls(SendTaskSuccessCommand).length + sfn.commandCalls(SendTaskFailureCommand).length;

// Every line the logger (or anything else) writes, to prove the token never reaches a log.
let output: string[] = [];
const responses: FunctionUrlResult[] = [];
async function call(event: FunctionUrlEvent): Promise<FunctionUrlResult> {
  const res = await endpoint(event, deps());
  responses.push(res);
  return res;
}

beforeAll(() => logger.setLogLevel('DEBUG'));
afterAll(() => logger.setLogLevel('SILENT'));

beforeEach(() => {
  clearSecretCache();
  withConditionalWrites(bucket);
  ssm.on(GetParameterCommand).resolves({ Parameter: { Value: SECRET } });
  sfn.on(SendTaskSuccessCommand).resolves({});
  sfn.on(SendTaskFailureCommand).resolves({});
  output = [];
  const capture = (chunk: unknown): boolean => {
    output.push(String(chunk));
    return true;
  };
  jest.spyOn(process.stdout, 'write').mockImplementation(capture as typeof process.stdout.write);
  jest.spyOn(process.stderr, 'write').mockImplementation(capture as typeof process.stderr.write);
  for (const m of ['log', 'info', 'warn', 'error', 'debug'] as const) jest.spyOn(console, m).mockImplementation((...a: unknown[]) => capture(a.join(' ')));

  const run = { runId: RUN_ID, createdAt: NOW.toISOString(), config: testConfig(), stages: [], skipped: [], batches: [], targets: [
    { instanceId: 'i-web1', name: 'web-1 <b>', platform: 'Linux', initialState: 'running', application: 'web <shop>', owner: 'o', ssm: { managed: true }, volumeIds: [] },
    { instanceId: 'i-web2', name: 'web-2', platform: 'Windows', initialState: 'running', application: 'web <shop>', owner: 'o', ssm: { managed: true }, volumeIds: [] },
  ] } as RunDocument;
  bucket.put(runDocumentKey(RUN_ID), run);
  bucket.put(compareKey(RUN_ID, 'i-web1'), 'instance_id,owner,domain,application,name,version,previous_version,installed_on,compared_at\ni-web1,o,,web,"<script>alert(1)</script>",2.0,1.0,2024-06-01,2024-06-01\n');
  bucket.put(failedKey(RUN_ID, 'i-web2'), 'instance_id,name,version,reason,reboot_pending,checked_at\ni-web2,KB5034441,KB5034441,not installed,true,2024-06-01\n');
  bucket.put(KEY, waitingRecord());
});

afterEach(() => {
  jest.restoreAllMocks();
  // The task token is a bearer credential for the workflow: never in a response, never in a log line.
  for (const res of responses.splice(0)) expect(res.body).not.toContain(TOKEN);
  expect(output.join('\n')).not.toContain(TOKEN);
  expect(output.join('\n')).not.toContain(SECRET);
});

describe('approval endpoint GET', () => {
  test('renders the request with escaped values, signed forms and a strict CSP, and changes nothing', async () => {
    const before = bucket.get(KEY);
    const puts = putCount();

    const res = await call(get(signed()));

    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toMatch(/default-src 'none'/);
    expect(res.headers['content-security-policy']).toMatch(/form-action 'self'/);
    expect(res.body).toContain('Reboot approval: web &#60;shop&#62;');
    expect(res.body).toContain('web-1 &#60;b&#62;');
    expect(res.body).not.toContain('<script>');
    expect(res.body).toContain('&#60;script&#62;alert(1)&#60;&#47;script&#62;');
    expect(res.body).not.toMatch(/<(script|link|img|iframe)\b/);
    expect(res.body.match(/<form method="post">/g)).toHaveLength(2);
    expect(res.body).toContain(`<input type="hidden" name="sig" value="${escapeHtml(sign(SECRET, LINK))}">`);
    expect(res.body).toContain('<input type="hidden" name="decision" value="approve">');
    expect(res.body).toContain('<input type="hidden" name="decision" value="reject">');
    // Then nothing was written and the workflow was not told anything
    expect(putCount()).toBe(puts);
    expect(bucket.get(KEY)).toBe(before);
    expect(sfnCalls()).toBe(0);
    expect(output.join('\n')).toContain('approval endpoint answered');
  });

  test('a decided request shows the decision without forms', async () => {
    bucket.put(KEY, waitingRecord({ status: 'approved', taskToken: undefined, decidedBy: 'web-owner@example.com', decidedAt: NOW.toISOString() }));
    const res = await call(get(signed()));
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('approved by web-owner@example.com');
    expect(res.body).not.toContain('<form');
  });

  test.each([
    ['a forged signature', () => signed(LINK, 'f'.repeat(64)), 403],
    ['a signature made with another secret', () => signed(LINK, sign('another-secret-0123456789', LINK)), 403],
    ['an expired link', () => signed({ ...LINK, exp: NOW.getTime() / 1000 - 1 }), 410],
    ['a missing signature', () => ({ id: APPROVAL_ID, run: RUN_ID, group: GROUP, exp: String(EXP) }) as Record<string, string>, 400],
    ['an unknown request', () => signed({ ...LINK, group: 'a007' }), 404],
  ])('%s is refused without any change', async (_name, params, status) => {
    const puts = putCount();
    const res = await call(get(params()));
    expect(res.statusCode).toBe(status);
    expect(putCount()).toBe(puts);
    expect(sfnCalls()).toBe(0);
  });
});

describe('approval endpoint POST', () => {
  test('a valid approval sends SendTaskSuccess with the decision and records who, when and from where', async () => {
    const res = await call(postForm({ ...signed(), decision: 'approve', name: 'Jane Doe', comment: 'go ahead' }));

    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('Approved — the reboot of web &#60;shop&#62; starts now');
    expect(sfn).toHaveReceivedCommandTimes(SendTaskSuccessCommand, 1);
    expect(sfn).not.toHaveReceivedCommand(SendTaskFailureCommand);
    const sent = sfn.commandCalls(SendTaskSuccessCommand)[0].args[0].input;
    expect(sent.taskToken).toBe(TOKEN);
    const decision = JSON.parse(sent.output!) as ApprovalDecision;
    expect(decision).toEqual({ decision: 'approved', by: 'web-owner@example.com (as "Jane Doe")', at: NOW.toISOString(), channel: 'link' });
    const r = record();
    expect(r).toMatchObject({
      status: 'approved',
      decidedBy: 'web-owner@example.com (as "Jane Doe")',
      decidedAt: NOW.toISOString(),
      decidedFrom: { sourceIp: '203.0.113.9', userAgent: 'Mozilla/5.0 (test)', channel: 'link' },
      comment: 'go ahead',
    });
    expect(r.taskToken).toBeUndefined();
  });

  test('a valid rejection sends SendTaskFailure with ApprovalRejected (JSON body)', async () => {
    const res = await call(postJson({ ...signed(), decision: 'reject', comment: 'month end' }));
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'rejected' });
    expect(sfn).toHaveReceivedCommandWith(SendTaskFailureCommand, { taskToken: TOKEN, error: APPROVAL_REJECTED, cause: 'rejected by web-owner@example.com: month end' });
    expect(sfn).not.toHaveReceivedCommand(SendTaskSuccessCommand);
    expect(record()).toMatchObject({ status: 'rejected', decidedBy: 'web-owner@example.com', decidedFrom: { channel: 'link' } });
  });

  test.each([
    ['a forged signature', () => signed(LINK, '0'.repeat(64)), 403],
    ['a tampered group', () => ({ ...signed(), group: 'a001' }), 403],
    ['a tampered run', () => ({ ...signed(), run: 'other-run' }), 403],
    ['a tampered id', () => ({ ...signed(), id: 'AAAAAAAAAAAAAAAAAAAAAAAA' }), 403],
    ['a tampered (extended) expiry', () => ({ ...signed(), exp: String(EXP + 86400) }), 403],
    ['an expired link', () => signed({ ...LINK, exp: NOW.getTime() / 1000 - 60 }), 410],
    ['a malformed run id', () => ({ ...signed(), run: '../../etc' }), 400],
  ])('%s is refused with no SFN call and no record change', async (_name, fields, status) => {
    const before = bucket.get(KEY);
    const res = await call(postForm({ ...fields(), decision: 'approve' }));
    expect(res.statusCode).toBe(status);
    expect(sfnCalls()).toBe(0);
    expect(bucket.get(KEY)).toBe(before);
  });

  test('a malformed body or decision is a 400', async () => {
    expect((await call({ ...postJson({}), body: '{not json' })).statusCode).toBe(400);
    expect((await call(postForm({ ...signed(), decision: 'maybe' }))).statusCode).toBe(400);
    expect((await call({ ...postForm({}), requestContext: { http: { method: 'PUT' } } })).statusCode).toBe(405);
    expect(sfnCalls()).toBe(0);
  });

  test('a replayed POST after a decision is a 409 and changes nothing', async () => {
    const form = { ...signed(), decision: 'approve' };
    expect((await call(postForm(form))).statusCode).toBe(200);
    const after = bucket.get(KEY);

    const replay = await call(postForm({ ...form, decision: 'reject' }));

    expect(replay.statusCode).toBe(409);
    expect(replay.body).toContain('already approved');
    expect(sfnCalls()).toBe(1);
    expect(bucket.get(KEY)).toBe(after);
  });

  test('a request the workflow is not waiting on yet is a 409 (retry later)', async () => {
    bucket.put(KEY, waitingRecord({ status: 'requested', taskToken: undefined }));
    const before = bucket.get(KEY);
    const res = await call(postForm({ ...signed(), decision: 'approve' }));
    expect(res.statusCode).toBe(409);
    expect(res.body).toMatch(/not waiting for this decision yet/);
    expect(sfnCalls()).toBe(0);
    expect(bucket.get(KEY)).toBe(before);
  });

  test('a link of an older request (another approval id) is unknown', async () => {
    bucket.put(KEY, waitingRecord({ approvalId: 'bmV3ZXJyZXF1ZXN0aWQxMjM0' }));
    const res = await call(postForm({ ...signed(), decision: 'approve' }));
    expect(res.statusCode).toBe(404);
    expect(sfnCalls()).toBe(0);
  });

  test('two concurrent approvals: only one reaches Step Functions', async () => {
    const form = { ...signed(), decision: 'approve' };
    const results = await Promise.all([call(postForm({ ...form, name: 'first' })), call(postForm({ ...form, name: 'second' }))]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 409]);
    expect(sfn).toHaveReceivedCommandTimes(SendTaskSuccessCommand, 1);
    expect(record().status).toBe('approved');
  });

  test('a conditional write that loses (PreconditionFailed) is a 409 without any SFN call', async () => {
    // Given another decision lands between our read and our write
    s3Mock.on(PutObjectCommand).rejects(preconditionFailed());
    const before = bucket.get(KEY);

    const res = await call(postForm({ ...signed(), decision: 'approve' }));

    expect(res.statusCode).toBe(409);
    expect(s3Mock).toHaveReceivedCommandWith(PutObjectCommand, { IfMatch: etagOf(before!) });
    expect(sfnCalls()).toBe(0);
    expect(bucket.get(KEY)).toBe(before);
  });

  test('a decision after the workflow stopped waiting records the timeout and answers 410', async () => {
    sfn.on(SendTaskSuccessCommand).rejects(new TaskTimedOut({ message: `Task Timed Out: '${TOKEN}'`, $metadata: {} }));
    const res = await call(postForm({ ...signed(), decision: 'approve' }));
    expect(res.statusCode).toBe(410);
    const r = record();
    expect(r.status).toBe('timed-out');
    expect(r.taskToken).toBeUndefined();
  });

  test('a Step Functions outage undoes the decision so the link works again', async () => {
    sfn.on(SendTaskSuccessCommand).rejectsOnce(Object.assign(new Error('Service unavailable'), { name: 'ServiceUnavailable' }));
    const res = await call(postForm({ ...signed(), decision: 'approve' }));
    expect(res.statusCode).toBe(502);
    expect(record()).toMatchObject({ status: 'waiting', taskToken: TOKEN });

    sfn.on(SendTaskSuccessCommand).resolves({});
    expect((await call(postForm({ ...signed(), decision: 'approve' }))).statusCode).toBe(200);
  });
});

describe('approval endpoint ITSM callback', () => {
  test('a callback with a valid header signature decides like the link', async () => {
    const res = await call(itsm(ITSM_BODY));
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const sent = sfn.commandCalls(SendTaskSuccessCommand)[0].args[0].input;
    expect(JSON.parse(sent.output!)).toMatchObject({ decision: 'approved', channel: 'itsm', by: 'web-owner@example.com (as "jane.doe")' });
    expect(record()).toMatchObject({ status: 'approved', comment: 'CHG0031337', decidedFrom: { sourceIp: '198.51.100.20', userAgent: 'ServiceNow/1.0', channel: 'itsm' } });
  });

  test('a rejection through ITSM fails the task with ApprovalRejected', async () => {
    expect((await call(itsm({ ...ITSM_BODY, decision: 'rejected' }))).statusCode).toBe(200);
    expect(sfn).toHaveReceivedCommandWith(SendTaskFailureCommand, { error: APPROVAL_REJECTED });
  });

  test.each([
    ['a bad header signature', () => itsm(ITSM_BODY, { secret: 'not-the-secret-0123456789' }), 403],
    ['a body changed after signing', () => ({ ...itsm(ITSM_BODY), body: JSON.stringify({ ...ITSM_BODY, decision: 'approved', by: 'mallory' }) }), 403],
    ['a stale timestamp (6 minutes old)', () => itsm(ITSM_BODY, { timestamp: NOW.getTime() / 1000 - 360 }), 403],
    ['an unknown approval id', () => itsm({ ...ITSM_BODY, approvalId: 'dW5rbm93bmFwcHJvdmFsaWQx' }), 404],
  ])('%s is refused without any change', async (_name, event, status) => {
    const before = bucket.get(KEY);
    const res = await call(event());
    expect(res.statusCode).toBe(status);
    expect(sfnCalls()).toBe(0);
    expect(bucket.get(KEY)).toBe(before);
  });

  test('a callback after the request expired is a 410', async () => {
    bucket.put(KEY, waitingRecord({ expiresAt: '2024-06-01T09:59:59.000Z' }));
    const res = await call(itsm(ITSM_BODY));
    expect(res.statusCode).toBe(410);
    expect(sfnCalls()).toBe(0);
  });
});
