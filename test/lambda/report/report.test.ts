import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse/sync';
import { STAGES } from '../../../lib/stages';
import { report, reportColumns, RunReport } from '../../../lambda/report/report';
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
  'updates_installed,updates_failed';

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
      reportKey: `runs/${RUN_ID}/report/report.json`,
      csvKey: `runs/${RUN_ID}/report/report.csv`,
      dryRun: false,
      changeFreeze: false,
    });
    const doc = reportJson();
    expect(doc).toMatchObject({ runId: RUN_ID, generatedAt: NOW.toISOString(), dryRun: false, window: '', instances: [], skipped: [], errors: [] });
    expect(doc).not.toHaveProperty('changeFreeze');
    expect(doc.stages).toEqual(STAGES.map((s) => ({ id: s.id, title: s.title, success: 0, failed: 0, notRun: 0 })));
    expect(s3.get(reportCsvKey(RUN_ID))).toBe(`${EXPECTED_HEADER}\n`);
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
    expect(rows[3]).toMatchObject({ name: 'legacy', reason: 'not managed by SSM', patch_status: 'NotRun' });

    const doc = reportJson();
    expect(doc.totals).toEqual({ matched: 4, targets: 3, skipped: 1, patched: 1, failed: 2, notReached: 0, updatesInstalled: 3, updatesFailed: 1, wouldPatch: 0, notReady: 0 });
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
    expect(doc).toMatchObject({ window: 'nightly', dryRun: false, instances: [], skipped: [], errors: [] });
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

  test('builds the CSV header from the stage list', () => {
    expect(reportColumns(STAGE_IDS).join(',')).toBe(EXPECTED_HEADER);
  });
});
