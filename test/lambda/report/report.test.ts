import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse/sync';
import { STAGES } from '../../../lib/stages';
import { report, reportColumns, ReportInput, RunReport, runNotification } from '../../../lambda/report/report';
import { ApprovalGroupResult, ApprovalRecord, approvalKey, approvalsPrefix } from '../../../lambda/shared/approvals';
import { batchKey, compareKey, failedKey, reportCsvKey, reportJsonKey, restoreKey, runDocumentKey } from '../../../lambda/shared/keys';
import { BatchDocument, InstanceProgress, RestoreDocument, RunConfig, RunDocument, StageOutcome, StageSpec, TargetInstance, TargetReadiness } from '../../../lambda/shared/types';
import { mockS3Memory } from '../../helpers/s3-memory';
import { activeProgress, BUCKET, CONFIG, RUN_ID } from '../../helpers/stage-fixtures';

const { bucket: s3, s3Mock } = mockS3Memory();
const NOW = new Date('2024-06-01T14:00:00.000Z');
const deps = () => ({ s3: new S3Client({}), now: () => NOW });

const STAGE_SPECS: StageSpec[] = STAGES.map((s) => ({ id: s.id, title: s.title, documentName: s.document, parameters: s.parameters, prefixes: s.prefixes }));
const STAGE_IDS = STAGES.map((s) => s.id);
const EXPECTED_HEADER =
  'instance_id,name,platform,application,owner,initial_state,final_state,snapshot_ids,status,failed_at,reason,' +
  'agent-update_status,agent-update_reason,pre-inventory_status,pre-inventory_reason,patch_status,patch_reason,' +
  'post-inventory_status,post-inventory_reason,compare_status,compare_reason,failed-check_status,failed-check_reason,' +
  'updates_installed,updates_failed,' +
  'approval,approver,decided_by,decided_at,decided_from,reboot_status,reboot_reason,verify_status,verify_reason';

const ok: StageOutcome = { status: 'Success', commandId: 'cmd', finishedAt: '2024-06-01T11:00:00.000Z' };
const allStagesOk = (): Record<string, StageOutcome> => Object.fromEntries(STAGE_IDS.map((id) => [id, ok]));

const target = (instanceId: string, batchId: string, overrides: Partial<TargetInstance> = {}): TargetInstance => ({
  instanceId,
  name: `web-${instanceId}`,
  platform: 'Linux',
  initialState: 'running',
  application: 'shop',
  owner: 'team-a',
  ssm: { managed: true, pingStatus: 'Online' },
  volumeIds: ['vol-1'],
  batchId,
  ...overrides,
});

function givenRun(targets: TargetInstance[], skipped: RunDocument['skipped'] = [], config: RunConfig = CONFIG): void {
  const batches = [...new Set(targets.filter((t) => t.batchId).map((t) => t.batchId!))].map((batchId) => ({
    batchId,
    instanceIds: targets.filter((t) => t.batchId === batchId).map((t) => t.instanceId),
  }));
  const run: RunDocument = { runId: RUN_ID, createdAt: '2024-06-01T10:00:00.000Z', config, stages: STAGE_IDS, targets, skipped, batches };
  s3.put(runDocumentKey(RUN_ID), run);
}
function givenBatch(batchId: string, instances: Record<string, InstanceProgress>): void {
  const batch: BatchDocument = { runId: RUN_ID, batchId, instanceIds: Object.keys(instances), instances, updatedAt: '2024-06-01T12:00:00.000Z' };
  s3.put(batchKey(RUN_ID, batchId), batch);
}
const csvRows = (): Record<string, string>[] => parse(s3.get(reportCsvKey(RUN_ID))!, { columns: true }) as Record<string, string>[];
const csvHeader = (): string => s3.get(reportCsvKey(RUN_ID))!.split('\n')[0];
const reportJson = (): RunReport => s3.json<RunReport>(reportJsonKey(RUN_ID));

describe('report', () => {
  test('writes an empty report for a run that matched no instance', async () => {
    givenRun([]);

    const out = await report({ runId: RUN_ID, bucket: BUCKET, config: CONFIG, stages: STAGE_SPECS, batchResults: [] }, deps());

    expect(out).toEqual({
      matched: 0,
      targets: 0,
      skipped: 0,
      patched: 0,
      failed: 0,
      notReached: 0,
      updatesInstalled: 0,
      updatesFailed: 0,
      wouldPatch: 0,
      notReady: 0,
      rebootsDeferred: 0,
      rebooted: 0,
      verified: 0,
      verifyFailed: 0,
      reportKey: `runs/${RUN_ID}/report/report.json`,
      csvKey: `runs/${RUN_ID}/report/report.csv`,
      dryRun: false,
      changeFreeze: false,
      subject: `patch-pipeline ${RUN_ID}: 0 patched, 0 failed, 0 not reached, 0 skipped`,
      message: expect.stringContaining(`Report: s3://${BUCKET}/runs/${RUN_ID}/report/report.json`),
    });
    const doc = reportJson();
    expect(doc).toMatchObject({ runId: RUN_ID, generatedAt: NOW.toISOString(), dryRun: false, window: '', instances: [], skipped: [], approvals: [], errors: [] });
    expect(doc).not.toHaveProperty('changeFreeze');
    expect(doc.stages).toEqual(STAGES.map((s) => ({ id: s.id, title: s.title, success: 0, failed: 0, notRun: 0 })));
    expect(s3.get(reportCsvKey(RUN_ID))).toBe(`${EXPECTED_HEADER}\n`);
  });

  test('announces a run in one subject line and a short message that says where the report is', () => {
    const totals = { matched: 7, targets: 6, skipped: 1, patched: 4, failed: 1, notReached: 1, updatesInstalled: 12, updatesFailed: 2, wouldPatch: 0, notReady: 0, rebootsDeferred: 1, rebooted: 3, verified: 3, verifyFailed: 0 };
    const n = runNotification('run-1', 'bkt', totals, { dryRun: false, errors: ['batch b001: States.Timeout'], reportKey: 'runs/run-1/report/report.json', csvKey: 'runs/run-1/report/report.csv' });
    expect(n.subject).toBe('patch-pipeline run-1: 4 patched, 1 failed, 1 not reached, 1 skipped (pipeline errors)');
    expect(n.message.split('\n')).toEqual([
      'patch-pipeline run run-1: 4 patched, 1 failed, 1 not reached, 1 skipped.',
      'Updates installed: 12; failed to install: 2.',
      'Reboots: 3 done, 3 verified, 0 failed verification, 1 deferred.',
      'Error: batch b001: States.Timeout',
      'Report: s3://bkt/runs/run-1/report/report.json (CSV: s3://bkt/runs/run-1/report/report.csv)',
    ]);
    const long = runNotification('r'.repeat(80), 'bkt', totals, { dryRun: true, errors: [], reportKey: 'k', csvKey: 'c' });
    expect(long.subject.length).toBeLessThanOrEqual(100);
    expect(runNotification('run-2', 'bkt', totals, { dryRun: false, changeFreeze: 'change freeze: calendar x is CLOSED', errors: [], reportKey: 'k', csvKey: 'c' }).subject)
      .toBe('patch-pipeline run-2: change freeze, nothing changed');
  });

  test('reports patched, failed at snapshot, failed at patch and skipped instances', async () => {
    // Given a run with three targets in one batch and one skipped instance
    givenRun(
      [target('i-ok', 'b000'), target('i-snap', 'b000', { platform: 'Windows', initialState: 'stopped' }), target('i-patch', 'b000')],
      [{ instanceId: 'i-skip', name: 'legacy', state: 'running', reason: 'not managed by SSM' }],
    );
    givenBatch('b000', {
      'i-ok': activeProgress({ snapshotIds: ['snap-1', 'snap-2'], stages: allStagesOk() }),
      'i-snap': activeProgress({ status: 'failed', failedAt: 'snapshot', reason: 'snapshot snap-9 error', snapshotIds: ['snap-9'], snapshotState: 'error' }),
      'i-patch': activeProgress({
        status: 'failed',
        failedAt: 'patch',
        reason: 'marker: yum exited 1',
        snapshotIds: ['snap-3'],
        stages: { 'agent-update': ok, 'pre-inventory': ok, patch: { status: 'Failed', reason: 'marker: yum exited 1' } },
      }),
    });
    s3.put(compareKey(RUN_ID, 'i-ok'), 'instance_id,owner,domain,application,name,version,previous_version,installed_on,compared_at\n' +
      'i-ok,team-a,,shop,openssl,3.0.2,3.0.1,2024-06-01,2024-06-01T11:00:00Z\n' +
      'i-ok,team-a,,shop,curl,8.5,8.4,2024-06-01,2024-06-01T11:00:00Z\n' +
      'i-ok,team-a,,shop,"bash, the shell",5.2,5.1,2024-06-01,2024-06-01T11:00:00Z\n');
    s3.put(failedKey(RUN_ID, 'i-ok'), 'instance_id,name,version,reason,reboot_pending,checked_at\ni-ok,kernel,6.1,"needs\nreboot",true,2024-06-01T11:00:00Z\n');
    s3.put(failedKey(RUN_ID, 'i-patch'), 'instance_id,name,version,reason,reboot_pending,checked_at\n');
    const restore: RestoreDocument = {
      runId: RUN_ID,
      finishedAt: '2024-06-01T13:00:00.000Z',
      instances: {
        'i-ok': { initialState: 'running', finalState: 'running', action: 'none' },
        'i-snap': { initialState: 'stopped', finalState: 'stopped', action: 'stopped' },
        'i-patch': { initialState: 'running', finalState: 'running', action: 'none' },
      },
    };
    s3.put(restoreKey(RUN_ID), restore);

    // When
    const out = await report({ runId: RUN_ID, bucket: BUCKET, config: CONFIG, stages: STAGE_SPECS, batchResults: [{ batchId: 'b000' }] }, deps());

    // Then
    expect(out).toMatchObject({ matched: 4, targets: 3, skipped: 1, patched: 1, failed: 2, notReached: 0, updatesInstalled: 3, updatesFailed: 1 });
    expect(csvHeader()).toBe(EXPECTED_HEADER);
    const rows = csvRows();
    expect(rows.map((r) => [r.instance_id, r.status])).toEqual([
      ['i-ok', 'Patched'],
      ['i-snap', 'Failed'],
      ['i-patch', 'Failed'],
      ['i-skip', 'Skipped'],
    ]);
    expect(rows[0]).toMatchObject({
      name: 'web-i-ok',
      platform: 'Linux',
      application: 'shop',
      owner: 'team-a',
      initial_state: 'running',
      final_state: 'running',
      snapshot_ids: 'snap-1 snap-2',
      failed_at: '',
      patch_status: 'Success',
      'failed-check_status': 'Success',
      updates_installed: '3',
      updates_failed: '1',
      approval: 'not-requested',
      reason: 'reboot deferred: not requested (the run ended before the approval phase)',
      reboot_status: 'NotRun',
    });
    expect(rows[1]).toMatchObject({ platform: 'Windows', initial_state: 'stopped', final_state: 'stopped', failed_at: 'snapshot', reason: 'snapshot snap-9 error', 'agent-update_status': 'NotRun' });
    expect(rows[2]).toMatchObject({
      failed_at: 'patch',
      reason: 'marker: yum exited 1',
      'pre-inventory_status': 'Success',
      patch_status: 'Failed',
      patch_reason: 'marker: yum exited 1',
      'post-inventory_status': 'NotRun',
      updates_installed: '0',
      updates_failed: '0',
    });
    expect(rows[3]).toMatchObject({ name: 'legacy', reason: 'not managed by SSM', patch_status: 'NotRun', approval: 'not-eligible', verify_status: 'NotRun' });
    expect(rows[1]).toMatchObject({ approval: 'not-eligible', approver: '', reboot_status: 'NotRun' });

    const doc = reportJson();
    expect(doc.totals).toEqual({
      matched: 4,
      targets: 3,
      skipped: 1,
      patched: 1,
      failed: 2,
      notReached: 0,
      updatesInstalled: 3,
      updatesFailed: 1,
      wouldPatch: 0,
      notReady: 0,
      // No approval record: the approval phase never ran, and the patched instance says its reboot is owed.
      rebootsDeferred: 1,
      rebooted: 0,
      verified: 0,
      verifyFailed: 0,
    });
    expect(doc.stages.find((s) => s.id === 'patch')).toEqual({ id: 'patch', title: 'Install patches without restart', success: 1, failed: 1, notRun: 1 });
    expect(doc.stages.find((s) => s.id === 'agent-update')).toMatchObject({ success: 2, failed: 0, notRun: 1 });
    expect(doc.skipped).toEqual([{ instanceId: 'i-skip', name: 'legacy', state: 'running', reason: 'not managed by SSM' }]);
    expect(doc.errors).toEqual([]);
  });

  test('reports the instances of a batch that ended with an error as not reached', async () => {
    givenRun([target('i-a', 'b000'), target('i-b', 'b001'), target('i-c', 'b001')]);
    givenBatch('b000', { 'i-a': activeProgress({ stages: allStagesOk() }) });
    givenBatch('b001', {
      'i-b': activeProgress({ stages: { 'agent-update': ok, 'pre-inventory': { status: 'Pending', commandId: 'cmd-2' } } }),
      'i-c': activeProgress({ status: 'failed', failedAt: 'agent-update', reason: 'command Failed: Undeliverable', stages: { 'agent-update': { status: 'Failed', reason: 'command Failed: Undeliverable' } } }),
    });
    const cause = JSON.stringify({ errorType: 'RunDataError', errorMessage: 'batch document is malformed', trace: [] });

    const out = await report(
      { runId: RUN_ID, bucket: BUCKET, config: CONFIG, stages: STAGE_SPECS, batchResults: [{ batchId: 'b000' }, { batchId: 'b001', error: { Error: 'RunDataError', Cause: cause } }] },
      deps(),
    );

    expect(out).toMatchObject({ targets: 3, patched: 1, failed: 1, notReached: 1 });
    const row = csvRows().find((r) => r.instance_id === 'i-b')!;
    expect(row).toMatchObject({ status: 'NotReached', reason: 'pipeline error in batch b001: RunDataError: batch document is malformed', 'pre-inventory_status': 'Pending' });
    expect(reportJson().errors).toEqual(['batch b001: RunDataError: batch document is malformed']);
  });

  test('still writes a report saying discovery failed when run.json is missing', async () => {
    const error = { Error: 'States.TaskFailed', Cause: 'DescribeInstances: UnauthorizedOperation' };

    const out = await report({ runId: RUN_ID, bucket: BUCKET, config: CONFIG, stages: STAGE_SPECS, error }, deps());

    expect(out).toMatchObject({ matched: 0, targets: 0, patched: 0, reportKey: reportJsonKey(RUN_ID), csvKey: reportCsvKey(RUN_ID) });
    const doc = reportJson();
    expect(doc.errors[0]).toMatch(/^discovery failed: .*run\.json was not written/);
    expect(doc.errors).toContain('pipeline error: States.TaskFailed: DescribeInstances: UnauthorizedOperation');
    expect(csvHeader()).toBe(EXPECTED_HEADER);
  });

  test('carries the patch window that started the run, and treats the workflow\'s {} placeholders as no error', async () => {
    givenRun([]);
    const config = { ...CONFIG, window: 'nightly-web' };

    await report({ runId: RUN_ID, bucket: BUCKET, config, stages: STAGE_SPECS, batchResults: [], error: {}, restoreError: {}, freeze: { frozen: false } }, deps());

    expect(reportJson()).toMatchObject({ window: 'nightly-web', dryRun: false, errors: [] });
  });

  describe('dry run', () => {
    const readiness = (over: Partial<TargetReadiness>): TargetReadiness => ({
      ready: true,
      summary: 'ready',
      blockers: [],
      notes: [],
      agentOutdated: false,
      volumesReady: 1,
      encryptedVolumes: 0,
      ...over,
    });
    const DRY = { ...CONFIG, dryRun: true, window: 'weekly' };

    test('reports every target as WouldPatch (or NotReady) with its readiness, and reads no batch document', async () => {
      // Given a dry run's run.json: no batch planned, readiness per target, one skipped instance
      givenRun(
        [
          target('i-ok', '', { batchId: undefined, readiness: readiness({}) }),
          target('i-stopped', '', {
            batchId: undefined,
            initialState: 'stopped',
            readiness: readiness({
              summary: 'stopped: would be started; SSM online state is checked after start; agent 3.2.1 < 3.3.2746.0: agent-update updates it first',
              agentVersion: '3.2.1',
              agentOutdated: true,
            }),
          }),
          target('i-err', '', {
            batchId: undefined,
            readiness: readiness({ ready: false, summary: 'not ready: volume vol-1 is in state error', blockers: ['volume vol-1 is in state error'], volumesReady: 0 }),
          }),
        ],
        [{ instanceId: 'i-skip', name: 'legacy', state: 'running', reason: 'not managed by SSM' }],
        DRY,
      );

      const out = await report({ runId: RUN_ID, bucket: BUCKET, config: DRY, stages: STAGE_SPECS, batchResults: [], error: {}, restoreError: {}, freeze: { frozen: false } }, deps());

      expect(out).toMatchObject({ dryRun: true, changeFreeze: false, matched: 4, targets: 3, skipped: 1, wouldPatch: 2, notReady: 1, patched: 0, failed: 0, notReached: 0 });
      // Only run.json was read: no batch document, restore record or CSV listing.
      expect(s3Mock.commandCalls(GetObjectCommand).map((c) => c.args[0].input.Key)).toEqual([runDocumentKey(RUN_ID)]);
      expect(s3Mock).toHaveReceivedCommandTimes(ListObjectsV2Command, 0);

      const rows = csvRows();
      expect(rows.map((r) => [r.instance_id, r.status, r.reason])).toEqual([
        ['i-ok', 'WouldPatch', 'ready'],
        ['i-stopped', 'WouldPatch', 'stopped: would be started; SSM online state is checked after start; agent 3.2.1 < 3.3.2746.0: agent-update updates it first'],
        ['i-err', 'NotReady', 'not ready: volume vol-1 is in state error'],
        ['i-skip', 'Skipped', 'not managed by SSM'],
      ]);
      for (const id of STAGE_IDS) expect(rows.every((r) => r[`${id}_status`] === 'NotRun')).toBe(true);
      // A dry run asks nobody: no approval is read, and no reboot is owed.
      expect(rows.slice(0, 3).map((r) => r.approval)).toEqual(['not-requested', 'not-requested', 'not-requested']);
      expect(out).toMatchObject({ rebootsDeferred: 0, rebooted: 0 });
      expect(rows[1]).toMatchObject({ initial_state: 'stopped', final_state: '', snapshot_ids: '' });

      const doc = reportJson();
      expect(doc).toMatchObject({ dryRun: true, window: 'weekly', errors: [] });
      expect(doc.totals).toMatchObject({ wouldPatch: 2, notReady: 1 });
      expect(doc.stages.find((s) => s.id === 'patch')).toMatchObject({ success: 0, failed: 0, notRun: 3 });
    });
  });

  test('a change freeze writes a report with zero instances, the calendar block, and no error', async () => {
    const freeze = {
      frozen: true,
      calendar: 'prod-freeze',
      state: 'CLOSED' as const,
      checkedAt: '2024-06-01T10:00:00.000Z',
      nextTransitionTime: '2024-06-03T06:00:00Z',
      message: 'change freeze: change calendar prod-freeze is CLOSED at 2024-06-01T10:00:00.000Z until 2024-06-03T06:00:00Z; the run changed nothing',
    };
    const config = { ...CONFIG, changeCalendarName: 'prod-freeze', window: 'nightly' };

    const out = await report({ runId: RUN_ID, bucket: BUCKET, config, stages: STAGE_SPECS, batchResults: [], error: {}, restoreError: {}, freeze }, deps());

    expect(out).toMatchObject({ changeFreeze: true, dryRun: false, matched: 0, targets: 0, skipped: 0, patched: 0, wouldPatch: 0 });
    const doc = reportJson();
    expect(doc).toMatchObject({ window: 'nightly', dryRun: false, instances: [], skipped: [], approvals: [], errors: [] });
    expect(doc.changeFreeze).toEqual({
      calendar: 'prod-freeze',
      state: 'CLOSED',
      checkedAt: '2024-06-01T10:00:00.000Z',
      nextTransitionTime: '2024-06-03T06:00:00Z',
      message: freeze.message,
    });
    // Discover never ran: run.json is not even looked for.
    expect(s3Mock).toHaveReceivedCommandTimes(GetObjectCommand, 0);
    expect(s3.get(reportCsvKey(RUN_ID))).toBe(`${EXPECTED_HEADER}\n`);
  });

  describe('reboot approvals', () => {
    const TOKEN = 'AAAAKgAAAAIAAAAAAAAAAVerySecretTaskToken+/=';
    const APPROVED_AT = '2024-06-01T12:10:00.000Z';
    const REQUESTED_AT = '2024-06-01T12:00:00.000Z';
    const rebootOk: StageOutcome = { status: 'Success', startedAt: '2024-06-01T12:11:00.000Z', finishedAt: '2024-06-01T12:14:00.000Z' };
    const verifyOk: StageOutcome = { status: 'Success', commandId: 'cmd-v', finishedAt: '2024-06-01T12:20:00.000Z' };
    const DOWN = 'did not come back online within 1800 s after its reboot (state running, ping ConnectionLost at 2024-06-01T12:10:30.000Z)';
    const UNHEALTHY = 'marker: service nginx is not running';

    const record = (groupId: string, application: string, instanceIds: string[], over: Partial<ApprovalRecord>): ApprovalRecord => ({
      runId: RUN_ID,
      groupId,
      application,
      approver: 'owner@example.com',
      approverSource: 'tag',
      instanceIds,
      chunks: [`${groupId}-0`],
      approvalId: `opaque-${groupId}`,
      expiresAt: '2024-06-02T12:00:00.000Z',
      status: 'requested',
      requestedAt: REQUESTED_AT,
      ...over,
    });
    const givenRecord = (r: ApprovalRecord): void => s3.put(approvalKey(RUN_ID, r.groupId), r);

    /**
     * One patch batch of fully patched instances (plus one that failed at patch), grouped by
     * application as plan does, with each group's chunk document after the approval phase.
     */
    function givenApprovalPhase(): ApprovalGroupResult[] {
      const ids = ['i-ok', 'i-verify', 'i-down', 'i-rej', 'i-late', 'i-none', 'i-err', 'i-fail'];
      const apps: Record<string, string> = { 'i-ok': 'shop', 'i-verify': 'shop', 'i-down': 'shop', 'i-rej': 'crm', 'i-late': 'erp', 'i-none': '', 'i-err': 'hr', 'i-fail': 'shop' };
      givenRun(ids.map((id) => target(id, 'b000', { application: apps[id] })));
      givenBatch('b000', {
        ...Object.fromEntries(ids.filter((id) => id !== 'i-fail').map((id) => [id, activeProgress({ stages: allStagesOk() })])),
        'i-fail': activeProgress({ status: 'failed', failedAt: 'patch', reason: 'marker: yum exited 1', stages: { 'agent-update': ok, 'pre-inventory': ok, patch: { status: 'Failed', reason: 'marker: yum exited 1' } } }),
      });

      givenRecord(record('a000', 'shop', ['i-ok', 'i-verify', 'i-down'], {
        status: 'approved',
        decidedAt: APPROVED_AT,
        decidedBy: 'owner@example.com (as "Olivia")',
        decidedFrom: { channel: 'link', sourceIp: '203.0.113.9', userAgent: 'Mozilla/5.0' },
      }));
      givenBatch('a000-0', {
        'i-ok': activeProgress({ snapshotIds: [], stages: { reboot: rebootOk, verify: verifyOk } }),
        'i-verify': activeProgress({ snapshotIds: [], status: 'failed', failedAt: 'verify', reason: UNHEALTHY, stages: { reboot: rebootOk, verify: { status: 'Failed', reason: UNHEALTHY } } }),
        'i-down': activeProgress({
          snapshotIds: [],
          status: 'failed',
          failedAt: 'reboot',
          reason: DOWN,
          stages: { reboot: { status: 'Failed', reason: DOWN, startedAt: '2024-06-01T12:11:00.000Z', finishedAt: '2024-06-01T12:41:00.000Z' } },
        }),
      });
      givenRecord(record('a001', 'crm', ['i-rej'], {
        status: 'rejected',
        decidedAt: '2024-06-01T12:05:00.000Z',
        decidedBy: 'crm-lead@example.com',
        decidedFrom: { channel: 'itsm', sourceIp: '198.51.100.7' },
        comment: 'quarter-end closing',
      }));
      givenBatch('a001-0', { 'i-rej': activeProgress({ snapshotIds: [] }) });
      givenRecord(record('a002', 'erp', ['i-late'], { status: 'timed-out', decidedAt: '2024-06-02T12:00:05.000Z', decidedFrom: { channel: 'timeout' } }));
      givenBatch('a002-0', { 'i-late': activeProgress({ snapshotIds: [] }) });
      givenRecord(record('a003', '(no application)', ['i-none'], { approver: '', approverSource: 'none', status: 'no-approver' }));
      givenBatch('a003-0', { 'i-none': activeProgress({ snapshotIds: [] }) });
      // The group failed while waiting: its record still holds the task token.
      givenRecord(record('a004', 'hr', ['i-err'], { status: 'waiting', taskToken: TOKEN }));
      givenBatch('a004-0', { 'i-err': activeProgress({ snapshotIds: [] }) });

      return [
        { groupId: 'a000', outcome: 'rebooted' },
        { groupId: 'a001', outcome: 'deferred' },
        { groupId: 'a002', outcome: 'deferred' },
        { groupId: 'a003', outcome: 'no-approver' },
        { groupId: 'a004', error: { Error: 'States.TaskFailed', Cause: JSON.stringify({ errorMessage: 'SNS publish failed: topic not found', errorType: 'NotFound' }) } },
      ];
    }
    const runReport = (approvalResults: ApprovalGroupResult[], over: Partial<ReportInput> = {}) =>
      report({ runId: RUN_ID, bucket: BUCKET, config: CONFIG, stages: STAGE_SPECS, batchResults: [{ batchId: 'b000' }], approvalResults, error: {}, restoreError: {}, freeze: { frozen: false }, ...over }, deps());
    const row = (id: string): Record<string, string> => csvRows().find((r) => r.instance_id === id)!;
    const instance = (id: string) => reportJson().instances.find((i) => i.instanceId === id)!;

    test('approved, rebooted and verified: Patched, with who decided, when and from where', async () => {
      const out = await runReport(givenApprovalPhase());

      expect(row('i-ok')).toMatchObject({
        status: 'Patched',
        failed_at: '',
        reason: '',
        application: 'shop',
        approval: 'approved',
        approver: 'owner@example.com',
        decided_by: 'owner@example.com (as "Olivia")',
        decided_at: APPROVED_AT,
        decided_from: 'link from 203.0.113.9',
        reboot_status: 'Success',
        reboot_reason: '',
        verify_status: 'Success',
        verify_reason: '',
      });
      expect(instance('i-ok')).toMatchObject({ approval: 'approved', decidedFrom: 'link from 203.0.113.9', rebootStatus: 'Success', verifyStatus: 'Success', rebootDeferred: false });
      expect(out).toMatchObject({ targets: 8, patched: 5, failed: 3, rebooted: 2, verified: 1, verifyFailed: 1, rebootsDeferred: 4 });
      expect(reportJson().totals).toMatchObject({ patched: 5, failed: 3, rebooted: 2, verified: 1, verifyFailed: 1, rebootsDeferred: 4 });
      // The patch stages are still summarised from the patch batches only.
      expect(reportJson().stages.find((s) => s.id === 'patch')).toMatchObject({ success: 7, failed: 1, notRun: 0 });
    });

    test('approved but verify failed: Failed at verify with the verify reason', async () => {
      await runReport(givenApprovalPhase());

      expect(row('i-verify')).toMatchObject({
        status: 'Failed',
        failed_at: 'verify',
        reason: UNHEALTHY,
        approval: 'approved',
        reboot_status: 'Success',
        verify_status: 'Failed',
        verify_reason: UNHEALTHY,
        // The document stages did succeed.
        'failed-check_status': 'Success',
      });
    });

    test('approved but the instance did not come back: Failed at reboot, verify not run', async () => {
      await runReport(givenApprovalPhase());

      expect(row('i-down')).toMatchObject({ status: 'Failed', failed_at: 'reboot', reason: DOWN, approval: 'approved', reboot_status: 'Failed', reboot_reason: DOWN, verify_status: 'NotRun' });
    });

    test('rejected: stays Patched, the reboot is reported deferred with who rejected it and why', async () => {
      await runReport(givenApprovalPhase());

      expect(row('i-rej')).toMatchObject({
        status: 'Patched',
        failed_at: '',
        reason: 'reboot deferred: rejected by crm-lead@example.com at 2024-06-01T12:05:00.000Z: quarter-end closing',
        approval: 'rejected',
        decided_by: 'crm-lead@example.com',
        decided_at: '2024-06-01T12:05:00.000Z',
        decided_from: 'itsm from 198.51.100.7',
        reboot_status: 'NotRun',
        verify_status: 'NotRun',
      });
      expect(instance('i-rej').rebootDeferred).toBe(true);
    });

    test('timed out: stays Patched, deferred, nobody decided', async () => {
      await runReport(givenApprovalPhase());

      expect(row('i-late')).toMatchObject({
        status: 'Patched',
        reason: 'reboot deferred: no decision from owner@example.com before 2024-06-02T12:00:00.000Z (timed out)',
        approval: 'timed-out',
        decided_by: '',
        decided_at: '2024-06-02T12:00:05.000Z',
        decided_from: 'timeout',
        reboot_status: 'NotRun',
      });
    });

    test('no approver: stays Patched, deferred, and says nobody could approve', async () => {
      await runReport(givenApprovalPhase());

      expect(row('i-none')).toMatchObject({
        status: 'Patched',
        application: '',
        reason: 'reboot deferred: no approver for (no application) (none configured, no approver or owner tag, no default approver)',
        approval: 'no-approver',
        approver: '',
        decided_by: '',
      });
    });

    test('a group that ended with an error: its instances name it, and it is in errors and approvals', async () => {
      await runReport(givenApprovalPhase());

      expect(row('i-err')).toMatchObject({
        status: 'Patched',
        approval: 'error',
        reason: 'reboot deferred: approval waiting, no decision; approval group a004 failed: States.TaskFailed: SNS publish failed: topic not found',
        reboot_status: 'NotRun',
      });
      const doc = reportJson();
      expect(doc.errors).toEqual(['approval group a004 (hr): States.TaskFailed: SNS publish failed: topic not found']);
      expect(doc.approvals.find((a) => a.groupId === 'a004')).toMatchObject({ status: 'waiting', error: 'States.TaskFailed: SNS publish failed: topic not found', instances: 1 });
    });

    test('approvals[] has one entry per group, without token or approval id', async () => {
      await runReport(givenApprovalPhase());

      const approvals = reportJson().approvals;
      expect(approvals.map((a) => [a.groupId, a.application, a.status, a.instances])).toEqual([
        ['a000', 'shop', 'approved', 3],
        ['a001', 'crm', 'rejected', 1],
        ['a002', 'erp', 'timed-out', 1],
        ['a003', '(no application)', 'no-approver', 1],
        ['a004', 'hr', 'waiting', 1],
      ]);
      expect(approvals[0]).toEqual({
        groupId: 'a000',
        application: 'shop',
        approver: 'owner@example.com',
        approverSource: 'tag',
        status: 'approved',
        decidedBy: 'owner@example.com (as "Olivia")',
        decidedAt: APPROVED_AT,
        decidedFrom: { channel: 'link', sourceIp: '203.0.113.9' },
        instances: 3,
      });
      expect(approvals[3]).toMatchObject({ approverSource: 'none', decidedBy: '', decidedAt: '', decidedFrom: null });
      for (const a of approvals) {
        expect(a).not.toHaveProperty('taskToken');
        expect(a).not.toHaveProperty('approvalId');
      }
    });

    test('the task token of a record never reaches report.json or report.csv', async () => {
      const results = givenApprovalPhase();
      // A decided record whose token was not cleared yet (the endpoint clears it after answering).
      const shop = s3.json<ApprovalRecord>(approvalKey(RUN_ID, 'a000'));
      givenRecord({ ...shop, taskToken: TOKEN });

      await runReport(results);

      const json = s3.get(reportJsonKey(RUN_ID))!;
      const csv = s3.get(reportCsvKey(RUN_ID))!;
      for (const text of [json, csv]) {
        expect(text).not.toContain(TOKEN);
        expect(text).not.toContain('VerySecretTaskToken');
        expect(text).not.toContain('opaque-a00');
        expect(text).not.toMatch(/taskToken/i);
      }
    });

    test('reads every record under the approvals prefix and the chunk documents they name', async () => {
      await runReport(givenApprovalPhase());

      expect(s3Mock.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input.Prefix)).toContain(approvalsPrefix(RUN_ID));
      const read = s3Mock.commandCalls(GetObjectCommand).map((c) => c.args[0].input.Key);
      for (const g of ['a000', 'a001', 'a002', 'a003', 'a004']) {
        expect(read).toContain(approvalKey(RUN_ID, g));
        expect(read).toContain(batchKey(RUN_ID, `${g}-0`));
      }
    });

    test('a missing chunk document is an error, not a crash, and the group\'s instances are not called rebooted', async () => {
      const results = givenApprovalPhase();
      await new S3Client({}).send(new DeleteObjectCommand({ Bucket: BUCKET, Key: batchKey(RUN_ID, 'a000-0') }));

      await runReport(results);

      expect(reportJson().errors).toContain(`approval chunk a000-0: s3://${BUCKET}/${batchKey(RUN_ID, 'a000-0')} is missing`);
      expect(row('i-ok')).toMatchObject({ status: 'Patched', approval: 'approved', reboot_status: 'NotRun', reason: 'reboot not confirmed: no progress recorded for this instance in a000-0' });
      expect(reportJson().totals).toMatchObject({ rebooted: 0, verified: 0 });
    });

    test('approval mode skip: no record is read, every patched instance is reported deferred, not requested', async () => {
      const config: RunConfig = { ...CONFIG, approval: { ...CONFIG.approval, mode: 'skip' } };
      givenRun([target('i-a', 'b000'), target('i-b', 'b000')], [], config);
      givenBatch('b000', {
        'i-a': activeProgress({ stages: allStagesOk() }),
        'i-b': activeProgress({ status: 'failed', failedAt: 'patch', reason: 'marker: yum exited 1', stages: { patch: { status: 'Failed', reason: 'marker: yum exited 1' } } }),
      });

      const out = await runReport([], { config });

      expect(s3Mock.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input.Prefix)).not.toContain(approvalsPrefix(RUN_ID));
      expect(row('i-a')).toMatchObject({ status: 'Patched', approval: 'not-requested', reason: 'reboot deferred: not requested (approval mode is skip)' });
      expect(row('i-b')).toMatchObject({ status: 'Failed', approval: 'not-eligible', reason: 'marker: yum exited 1' });
      expect(out).toMatchObject({ patched: 1, failed: 1, rebootsDeferred: 1, rebooted: 0 });
      expect(reportJson().approvals).toEqual([]);
    });

    test('a pipeline error before the approval phase: the patched instance says its reboot was not requested and why', async () => {
      givenRun([target('i-a', 'b000')]);
      givenBatch('b000', { 'i-a': activeProgress({ stages: allStagesOk() }) });

      await runReport([], { error: { Error: 'States.TaskFailed', Cause: 'plan: AccessDenied' } });

      expect(row('i-a')).toMatchObject({
        status: 'Patched',
        approval: 'not-requested',
        reason: 'reboot deferred: not requested (the run ended before the approval phase: pipeline error: States.TaskFailed: plan: AccessDenied)',
      });
    });
  });

  test('builds the CSV header from the stage list', () => {
    expect(reportColumns(STAGE_IDS).join(',')).toBe(EXPECTED_HEADER);
  });
});
