import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { approval, NO_APPLICATION } from '../../../lambda/approval/approval';
import { clearSecretCache, secretParameterName, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify, verifyMessage } from '../../../lambda/shared/approval-signing';
import { APPROVAL_REJECTED, ApprovalConfig, ApprovalRecord, approvalKey } from '../../../lambda/shared/approvals';
import { batchKey, compareKey, failedKey, runDocumentKey } from '../../../lambda/shared/keys';
import { BatchDocument, InstanceProgress, RunConfig, RunDocument, StageOutcome, TargetInstance } from '../../../lambda/shared/types';
import { testConfig } from '../../helpers/fixtures';
import { mockS3Memory } from '../../helpers/s3-memory';
import { BUCKET, RUN_ID } from '../../helpers/stage-fixtures';

const ec2 = mockClient(EC2Client);
const ssm = mockClient(SSMClient);
const { s3Mock, bucket } = mockS3Memory(ec2, ssm);

const STAGES = ['agent-update', 'pre-inventory', 'patch', 'post-inventory', 'compare', 'failed-check'];
const NOW = new Date('2024-06-01T10:00:00.000Z');
const SECRET = 'test-signing-secret-0123456789abcdef';
const ENDPOINT = 'https://abc123.lambda-url.eu-west-1.on.aws/';
const SECRET_ID = 'patch-pipeline/approval-signing';

interface Spec {
  readonly id: string;
  readonly app?: string;
  readonly owner?: string;
  readonly approverTag?: string;
  readonly progress?: InstanceProgress;
  readonly batch?: string;
}

const success: StageOutcome = { status: 'Success', finishedAt: '2024-06-01T09:00:00.000Z' };
const patched = (overrides: Partial<Record<string, StageOutcome>> = {}): InstanceProgress => ({
  status: 'active',
  stages: { ...Object.fromEntries(STAGES.map((s) => [s, success])), ...overrides } as Record<string, StageOutcome>,
});

function config(approval: Partial<ApprovalConfig> = {}): RunConfig {
  const base = testConfig();
  return { ...base, approval: { ...base.approval, ...approval } };
}

/** Writes run.json and the discovered batches; EC2 answers with the instances' tags. */
function givenRun(specs: Spec[]): void {
  const targets: TargetInstance[] = specs.map((s) => ({
    instanceId: s.id,
    name: `name-${s.id}`,
    platform: 'Linux',
    initialState: 'running',
    application: s.app ?? '',
    owner: s.owner ?? '',
    ssm: { managed: true, pingStatus: 'Online' },
    volumeIds: [],
    batchId: s.batch ?? 'b000',
  }));
  const batchIds = [...new Set(targets.map((t) => t.batchId!))].sort();
  const run: RunDocument = {
    runId: RUN_ID,
    createdAt: NOW.toISOString(),
    config: config(),
    stages: STAGES,
    targets,
    skipped: [],
    batches: batchIds.map((b) => ({ batchId: b, instanceIds: specs.filter((s) => (s.batch ?? 'b000') === b).map((s) => s.id) })),
  };
  bucket.put(runDocumentKey(RUN_ID), run);
  for (const b of run.batches) {
    const doc: BatchDocument = {
      runId: RUN_ID,
      batchId: b.batchId,
      instanceIds: b.instanceIds,
      instances: Object.fromEntries(b.instanceIds.map((id) => [id, specs.find((s) => s.id === id)!.progress ?? patched()])),
      updatedAt: NOW.toISOString(),
    };
    bucket.put(batchKey(RUN_ID, b.batchId), doc);
  }
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [
      {
        Instances: specs.map((s) => ({
          InstanceId: s.id,
          Tags: [
            ...(s.approverTag ? [{ Key: 'Approver', Value: s.approverTag }] : []),
            ...(s.app ? [{ Key: 'Application', Value: s.app }] : []),
          ],
        })),
      },
    ],
  });
}

const record = (groupId: string): ApprovalRecord => bucket.json<ApprovalRecord>(approvalKey(RUN_ID, groupId));
// aws-sdk-client-mock patches every client instance's send, so plain clients reach the mocks.
const realDeps = (extra: Record<string, unknown> = {}) => ({
  s3: new S3Client({}),
  ssm: new SSMClient({}),
  ec2: new EC2Client({}),
  now: () => NOW,
  env: { APPROVAL_ENDPOINT_URL: ENDPOINT, APPROVAL_SECRET_ID: SECRET_ID },
  ...extra,
});

beforeEach(() => {
  clearSecretCache();
  ssm.on(GetParameterCommand).resolves({ Parameter: { Name: secretParameterName(SECRET_ID), Value: SECRET } });
});

describe('approval plan', () => {
  test('groups fully patched instances by application with the approver of each source (config, tag, owner, default)', async () => {
    // Given four applications, each with its approver found at a different place
    givenRun([
      { id: 'i-billing1', app: 'billing', owner: 'owner-billing@example.com', approverTag: 'tagged@example.com' },
      { id: 'i-crm1', app: 'crm', owner: 'owner-crm@example.com', approverTag: 'crm-approver@example.com' },
      { id: 'i-erp1', app: 'erp', owner: 'erp-owner@example.com', batch: 'b001' },
      { id: 'i-erp2', app: 'erp', owner: 'erp-owner@example.com', batch: 'b001' },
      { id: 'i-loose', app: '' },
    ]);
    const cfg = config({ approvers: { billing: 'billing-lead@example.com' }, defaultApprover: 'ops@example.com' });

    // When
    const out = await approval({ action: 'plan', runId: RUN_ID, bucket: BUCKET, config: cfg }, realDeps());

    // Then: one group per application, in name order, each with its approver source
    expect(out).toEqual({ groups: ['a000', 'a001', 'a002', 'a003'] });
    const byApp = Object.fromEntries(out.groups.map((g) => [record(g).application, record(g)]));
    expect(Object.keys(byApp)).toEqual([NO_APPLICATION, 'billing', 'crm', 'erp'].sort((a, b) => a.localeCompare(b)));
    expect(byApp.billing).toMatchObject({ approver: 'billing-lead@example.com', approverSource: 'config', status: 'requested', instanceIds: ['i-billing1'] });
    expect(byApp.crm).toMatchObject({ approver: 'crm-approver@example.com', approverSource: 'tag' });
    expect(byApp.erp).toMatchObject({ approver: 'erp-owner@example.com', approverSource: 'owner', instanceIds: ['i-erp1', 'i-erp2'] });
    expect(byApp[NO_APPLICATION]).toMatchObject({ approver: 'ops@example.com', approverSource: 'default', instanceIds: ['i-loose'] });
    expect(byApp.erp.taskToken).toBeUndefined();
    // And one chunk batch per group, fresh for the reboot and verify stages
    const erpChunk = bucket.json<BatchDocument>(batchKey(RUN_ID, byApp.erp.chunks[0]));
    expect(erpChunk.instanceIds).toEqual(['i-erp1', 'i-erp2']);
    expect(erpChunk.instances['i-erp1']).toEqual({ status: 'active', stages: {} });
  });

  test('a group nobody can approve is recorded as no-approver (source none)', async () => {
    givenRun([{ id: 'i-orphan', app: 'legacy' }]);
    const out = await approval({ action: 'plan', runId: RUN_ID, bucket: BUCKET, config: config({ defaultApprover: '' }) }, realDeps());
    expect(out.groups).toEqual(['a000']);
    expect(record('a000')).toMatchObject({ application: 'legacy', approver: '', approverSource: 'none', status: 'no-approver' });
  });

  test('only instances that are active with all six stages Success are planned', async () => {
    givenRun([
      { id: 'i-ok', app: 'web', owner: 'o@example.com' },
      { id: 'i-failed', app: 'web', progress: { ...patched(), status: 'failed', failedAt: 'patch', reason: 'boom' } },
      { id: 'i-compare-failed', app: 'web', progress: patched({ compare: { status: 'Failed', reason: 'no csv' } }) },
      { id: 'i-no-failed-check', app: 'web', progress: patched({ 'failed-check': { status: 'Pending' } }) },
      { id: 'i-other', app: 'db', progress: patched({ patch: { status: 'NotRun' } }) },
    ]);
    const out = await approval({ action: 'plan', runId: RUN_ID, bucket: BUCKET, config: config() }, realDeps());
    expect(out.groups).toEqual(['a000']);
    expect(record('a000')).toMatchObject({ application: 'web', instanceIds: ['i-ok'] });
  });

  test('splits a group of more than 50 instances into chunks of at most 50', async () => {
    const specs = Array.from({ length: 120 }, (_, i) => ({ id: `i-${String(i).padStart(4, '0')}`, app: 'big', owner: 'big@example.com', batch: `b00${Math.floor(i / 50)}` }));
    givenRun(specs);
    await approval({ action: 'plan', runId: RUN_ID, bucket: BUCKET, config: config() }, realDeps());
    const r = record('a000');
    expect(r.chunks).toEqual(['a000-0', 'a000-1', 'a000-2']);
    expect(r.chunks.map((c) => bucket.json<BatchDocument>(batchKey(RUN_ID, c)).instanceIds.length)).toEqual([50, 50, 20]);
    expect(r.chunks.flatMap((c) => bucket.json<BatchDocument>(batchKey(RUN_ID, c)).instanceIds)).toEqual(specs.map((s) => s.id));
  });

  test("mode 'skip' plans no group and writes nothing", async () => {
    givenRun([{ id: 'i-1', app: 'web', owner: 'o@example.com' }]);
    const writesBefore = s3Mock.commandCalls(PutObjectCommand).length;
    const out = await approval({ action: 'plan', runId: RUN_ID, bucket: BUCKET, config: config({ mode: 'skip' }) }, realDeps());
    expect(out).toEqual({ groups: [] });
    expect(s3Mock.commandCalls(PutObjectCommand)).toHaveLength(writesBefore);
    expect(bucket.list(`runs/${RUN_ID}/approvals/`)).toEqual([]);
    expect(ec2).not.toHaveReceivedCommand(DescribeInstancesCommand);
  });
});

describe('approval request', () => {
  const COMPARE_HEADER = 'instance_id,owner,domain,application,name,version,previous_version,installed_on,compared_at\n';
  const FAILED_HEADER = 'instance_id,name,version,reason,reboot_pending,checked_at\n';

  async function planned(specs: Spec[], cfg: RunConfig = config()): Promise<void> {
    givenRun(specs);
    await approval({ action: 'plan', runId: RUN_ID, bucket: BUCKET, config: cfg }, realDeps());
    bucket.put(compareKey(RUN_ID, 'i-web1'), `${COMPARE_HEADER}i-web1,o,,web,openssl,3.0.2-1,3.0.1-1,2024-06-01,2024-06-01\ni-web1,o,,web,curl,8.5.0,8.4.0,2024-06-01,2024-06-01\n`);
    bucket.put(compareKey(RUN_ID, 'i-web2'), COMPARE_HEADER);
    bucket.put(failedKey(RUN_ID, 'i-web1'), FAILED_HEADER);
    bucket.put(failedKey(RUN_ID, 'i-web2'), `${FAILED_HEADER}i-web2,kernel,6.1.2,security update not installed (dnf),true,2024-06-01\n`);
  }

  test('builds a signed link that verifies, a readable message, and stores the approval id (no token anywhere)', async () => {
    // Given a group with a reboot pending on one instance and 2 updates installed on the other
    const b000 = patched({ 'failed-check': { status: 'Success', reason: 'failed=0 rebootPending=true manager=dnf' } });
    await planned([
      { id: 'i-web1', app: 'web', owner: 'web-owner@example.com', progress: b000 },
      { id: 'i-web2', app: 'web', owner: 'web-owner@example.com' },
    ]);
    const cfg = config({ timeoutSeconds: 7200, healthChecks: { web: { services: ['W3SVC'], units: ['nginx', 'php-fpm'], url: 'http://localhost/health' } } });

    // When
    const out = await approval({ action: 'request', runId: RUN_ID, bucket: BUCKET, config: cfg, groupId: 'a000' }, realDeps());

    // Then the link carries only signed fields, and verifies with the secret
    const r = record('a000');
    const link = /https:\/\/\S+/.exec(out.message)![0];
    const url = new URL(link);
    expect(url.origin + url.pathname).toBe(ENDPOINT);
    const q = Object.fromEntries(url.searchParams);
    expect(Object.keys(q).sort()).toEqual(['exp', 'group', 'id', 'run', 'sig']);
    expect(q).toMatchObject({ id: r.approvalId, run: RUN_ID, group: 'a000', exp: String(NOW.getTime() / 1000 + 7200) });
    expect(verify(SECRET, { id: q.id, run: q.run, group: q.group, exp: Number(q.exp) }, q.sig)).toBe(true);
    expect(verify(SECRET, { id: q.id, run: q.run, group: 'a001', exp: Number(q.exp) }, q.sig)).toBe(false);
    expect(r.approvalId).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(r).toMatchObject({ status: 'requested', expiresAt: '2024-06-01T12:00:00.000Z', requestedAt: NOW.toISOString() });
    expect(ssm).toHaveReceivedCommandWith(GetParameterCommand, { Name: `/aws/reference/secretsmanager/${SECRET_ID}`, WithDecryption: true });

    // And the output is what the notify and verify states need
    expect(out).toMatchObject({ groupId: 'a000', application: 'web', approver: 'web-owner@example.com', notify: true, chunks: ['a000-0'] });
    expect(out.subject).toBe(`Approve the reboot of web after patching (${RUN_ID})`);
    expect(out.verifyParameters).toEqual({ RebootedAfter: NOW.toISOString(), ServiceNames: 'W3SVC', SystemdUnits: 'nginx,php-fpm', HealthUrl: 'http://localhost/health' });
    expect(out.message).toContain('name-i-web1 (i-web1): 2 update(s) installed, reboot pending: yes');
    expect(out.message).toContain('name-i-web2 (i-web2): 0 update(s) installed, reboot pending: yes, 1 security update(s) still missing');
    expect(out.message).toContain('before 2024-06-01T12:00:00.000Z');
    expect(JSON.stringify(out)).not.toMatch(/token/i);
  });

  test('POSTs a signed JSON request to the ITSM webhook when one is set', async () => {
    await planned([{ id: 'i-web1', app: 'web', owner: 'web-owner@example.com' }]);
    const fetchMock = jest.fn(async (_url: string, _init: RequestInit) => ({ ok: true, status: 201 }) as Response);
    const env = { APPROVAL_ENDPOINT_URL: ENDPOINT, APPROVAL_SECRET_ID: SECRET_ID, ITSM_WEBHOOK_URL: 'https://itsm.example.com/api/approvals' };

    await approval({ action: 'request', runId: RUN_ID, bucket: BUCKET, config: config(), groupId: 'a000' }, realDeps({ fetch: fetchMock, env }));

    expect(fetchMock).toHaveBeenCalledTimes(1);
    const [url, init] = fetchMock.mock.calls[0];
    expect(url).toBe('https://itsm.example.com/api/approvals');
    expect(init.method).toBe('POST');
    const headers = init.headers as Record<string, string>;
    const body = init.body as string;
    expect(verifyMessage(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER], NOW)).toBe('ok');
    const payload = JSON.parse(body);
    expect(payload).toMatchObject({
      application: 'web',
      approver: 'web-owner@example.com',
      approvalId: record('a000').approvalId,
      runId: RUN_ID,
      groupId: 'a000',
      callbackUrl: ENDPOINT,
      exp: NOW.getTime() / 1000 + 86400,
      instances: [{ instanceId: 'i-web1', name: 'name-i-web1', updatesInstalled: 2 }],
    });
    expect(verify(SECRET, { id: payload.approvalId, run: RUN_ID, group: 'a000', exp: payload.exp }, payload.sig)).toBe(true);
  });

  test('does not call a webhook when none is set, and a failing webhook does not fail the request', async () => {
    await planned([{ id: 'i-web1', app: 'web', owner: 'web-owner@example.com' }]);
    const fetchMock = jest.fn(async () => {
      throw new Error('connect ECONNREFUSED');
    });
    await approval({ action: 'request', runId: RUN_ID, bucket: BUCKET, config: config(), groupId: 'a000' }, realDeps({ fetch: fetchMock }));
    expect(fetchMock).not.toHaveBeenCalled();

    const env = { APPROVAL_ENDPOINT_URL: ENDPOINT, APPROVAL_SECRET_ID: SECRET_ID, ITSM_WEBHOOK_URL: 'https://itsm.example.com/x' };
    bucket.put(approvalKey(RUN_ID, 'a000'), { ...record('a000'), status: 'requested' });
    const out = await approval({ action: 'request', runId: RUN_ID, bucket: BUCKET, config: config(), groupId: 'a000' }, realDeps({ fetch: fetchMock, env }));
    expect(fetchMock).toHaveBeenCalledTimes(1);
    expect(out.notify).toBe(true);
  });

  test('a group without approver is not notified and gets no link', async () => {
    await planned([{ id: 'i-web1', app: 'web' }]);
    const fetchMock = jest.fn();
    const out = await approval({ action: 'request', runId: RUN_ID, bucket: BUCKET, config: config(), groupId: 'a000' }, realDeps({ fetch: fetchMock }));
    expect(out.notify).toBe(false);
    expect(out.message).not.toContain(ENDPOINT);
    expect(out.subject).toMatch(/^Reboot deferred/);
    expect(record('a000').status).toBe('no-approver');
    expect(ssm).not.toHaveReceivedCommand(GetParameterCommand);
    expect(fetchMock).not.toHaveBeenCalled();
  });
});

describe('approval wait and close', () => {
  const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAAf-secret-task-token-value';

  async function requested(): Promise<void> {
    givenRun([{ id: 'i-web1', app: 'web', owner: 'web-owner@example.com' }]);
    await approval({ action: 'plan', runId: RUN_ID, bucket: BUCKET, config: config() }, realDeps());
    await approval({ action: 'request', runId: RUN_ID, bucket: BUCKET, config: config(), groupId: 'a000' }, realDeps());
  }

  test('wait stores the token in the record only, with status waiting', async () => {
    await requested();
    const out = await approval({ action: 'wait', runId: RUN_ID, bucket: BUCKET, groupId: 'a000', taskToken: TOKEN }, realDeps());
    expect(out).toEqual({ groupId: 'a000', status: 'waiting' });
    expect(record('a000')).toMatchObject({ status: 'waiting', taskToken: TOKEN });
    expect(JSON.stringify(out)).not.toContain(TOKEN);
  });

  test('wait refuses a group that has no approver', async () => {
    givenRun([{ id: 'i-web1', app: 'web' }]);
    await approval({ action: 'plan', runId: RUN_ID, bucket: BUCKET, config: config() }, realDeps());
    await expect(approval({ action: 'wait', runId: RUN_ID, bucket: BUCKET, groupId: 'a000', taskToken: TOKEN }, realDeps())).rejects.toThrow(/no-approver/);
  });

  test('close records a timeout and clears the token', async () => {
    await requested();
    await approval({ action: 'wait', runId: RUN_ID, bucket: BUCKET, groupId: 'a000', taskToken: TOKEN }, realDeps());
    const out = await approval({ action: 'close', runId: RUN_ID, bucket: BUCKET, groupId: 'a000', error: { Error: 'States.Timeout', Cause: '' } }, realDeps());
    expect(out).toEqual({ groupId: 'a000', status: 'timed-out' });
    const r = record('a000');
    expect(r).toMatchObject({ status: 'timed-out', decidedAt: NOW.toISOString(), decidedFrom: { channel: 'timeout' } });
    expect(r.taskToken).toBeUndefined();
  });

  test('close keeps the rejection the endpoint recorded and clears the token', async () => {
    await requested();
    await approval({ action: 'wait', runId: RUN_ID, bucket: BUCKET, groupId: 'a000', taskToken: TOKEN }, realDeps());
    const rejected = { ...record('a000'), status: 'rejected', decidedBy: 'web-owner@example.com', decidedAt: '2024-06-01T10:30:00.000Z', decidedFrom: { sourceIp: '203.0.113.7', channel: 'link' }, comment: 'not during month end' };
    bucket.put(approvalKey(RUN_ID, 'a000'), rejected);
    const out = await approval(
      { action: 'close', runId: RUN_ID, bucket: BUCKET, groupId: 'a000', error: { Error: APPROVAL_REJECTED, Cause: 'rejected by web-owner@example.com: not during month end' } },
      realDeps(),
    );
    expect(out.status).toBe('rejected');
    const r = record('a000');
    expect(r).toMatchObject({ status: 'rejected', decidedBy: 'web-owner@example.com', decidedAt: '2024-06-01T10:30:00.000Z', decidedFrom: { sourceIp: '203.0.113.7', channel: 'link' } });
    expect(r.taskToken).toBeUndefined();
  });
});
