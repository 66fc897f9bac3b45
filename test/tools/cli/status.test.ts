import { DescribeExecutionCommand, GetExecutionHistoryCommand, ListStateMachinesCommand, SFNClient } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { batchKey, runDocumentKey } from '../../../lambda/shared/keys';
import { BatchDocument, InstanceProgress, RunDocument, StageOutcome, TargetInstance } from '../../../lambda/shared/types';
import { stepCounts } from '../../../tools/cli/status';
import { mockS3Memory } from '../../helpers/s3-memory';
import { testConfig } from '../../helpers/fixtures';
import { cli, execArn, SM_ARN } from './cli-harness';

const sfn = mockClient(SFNClient);
const { s3Mock, bucket } = mockS3Memory(sfn);

const RUN = 'nightly-7';
const BUCKET = 'patch-runs-123';
const STAGES = ['agent-update', 'pre-inventory', 'patch', 'post-inventory', 'compare', 'failed-check'];
const ok: StageOutcome = { status: 'Success' };

const target = (instanceId: string, initialState: string, batchId: string): TargetInstance => ({
  instanceId, name: instanceId, platform: 'Linux', initialState, application: 'web', owner: 'ops', ssm: { managed: true }, volumeIds: ['vol-1'], batchId,
});

const progress: Record<string, InstanceProgress> = {
  // patched
  'i-a': { status: 'active', snapshotIds: ['snap-a'], snapshotState: 'completed', stages: Object.fromEntries(STAGES.map((s) => [s, ok])) },
  // did not come online
  'i-b': { status: 'failed', failedAt: 'power-on', reason: 'not running and online in SSM within 900 s', startedByRun: true, stages: {} },
  // in pre-inventory
  'i-c': { status: 'active', snapshotIds: ['snap-c'], snapshotState: 'completed', stages: { 'agent-update': ok, 'pre-inventory': { status: 'Pending' } } },
  // being started
  'i-d': { status: 'active', startedByRun: true, stages: {} },
  // patch failed
  'i-e': { status: 'failed', failedAt: 'patch', reason: 'Failed marker', snapshotIds: ['snap-e'], snapshotState: 'completed', stages: { 'agent-update': ok, 'pre-inventory': ok, patch: { status: 'Failed', reason: 'Failed marker' } } },
};

function putRun(batches: Record<string, string[]> = { b000: ['i-a', 'i-b', 'i-c'], b001: ['i-d', 'i-e'] }): void {
  const initial: Record<string, string> = { 'i-a': 'running', 'i-b': 'stopped', 'i-c': 'running', 'i-d': 'stopped', 'i-e': 'running' };
  const run: RunDocument = {
    runId: RUN,
    createdAt: '2026-11-28T22:00:00Z',
    config: testConfig(),
    stages: STAGES,
    targets: Object.entries(batches).flatMap(([b, ids]) => ids.map((id) => target(id, initial[id], b))),
    skipped: [{ instanceId: 'i-z', name: 'z', state: 'running', reason: 'not managed by SSM' }],
    batches: Object.entries(batches).map(([batchId, instanceIds]) => ({ batchId, instanceIds })),
  };
  bucket.put(runDocumentKey(RUN), run, BUCKET);
  for (const [batchId, ids] of Object.entries(batches)) {
    const doc: BatchDocument = { runId: RUN, batchId, instanceIds: ids, instances: Object.fromEntries(ids.map((id) => [id, progress[id]])), updatedAt: '2026-11-28T22:10:00Z' };
    bucket.put(batchKey(RUN, batchId), doc, BUCKET);
  }
}

const normalizeExited = (b: string) => ({
  type: 'TaskStateExited' as const,
  id: 5,
  timestamp: new Date(),
  stateExitedEventDetails: { name: 'Normalize input', output: JSON.stringify({ valid: true, runId: RUN, bucket: b, config: {} }) },
});

beforeEach(() => {
  sfn.on(DescribeExecutionCommand).resolves({ executionArn: execArn(RUN), stateMachineArn: SM_ARN, status: 'RUNNING', startDate: new Date('2026-11-28T22:00:00Z') });
  sfn
    .on(GetExecutionHistoryCommand)
    .resolvesOnce({ events: [{ type: 'ExecutionStarted', id: 1, timestamp: new Date() }], nextToken: 'h2' })
    .resolvesOnce({ events: [normalizeExited(BUCKET)] });
});

const EXPECTED = [
  'power-on        done 3  failed 1  pending 1  (of 5)',
  'snapshot        done 3  failed 0  pending 1  (of 4)',
  'agent-update    done 3  failed 0  pending 1  (of 4)',
  'pre-inventory   done 2  failed 0  pending 2  (of 4)',
  'patch           done 1  failed 1  pending 2  (of 4)',
  'post-inventory  done 1  failed 0  pending 2  (of 3)',
  'compare         done 1  failed 0  pending 2  (of 3)',
  'failed-check    done 1  failed 0  pending 2  (of 3)',
];

describe('status', () => {
  test('execution state, then done / failed / pending per step from run.json and the batches; bucket from the history', async () => {
    putRun();
    const r = await cli(['status', RUN, '--state-machine-arn', SM_ARN]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(sfn).toHaveReceivedCommandWith(DescribeExecutionCommand, { executionArn: execArn(RUN) });
    expect(sfn.commandCalls(GetExecutionHistoryCommand).map((c) => c.args[0].input.nextToken)).toEqual([undefined, 'h2']);
    expect(s3Mock.calls().every((c) => (c.args[0].input as { Bucket?: string }).Bucket === BUCKET)).toBe(true);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toEqual(expect.arrayContaining([
      `run:        ${RUN}`,
      'execution:  RUNNING  started 2026-11-28T22:00:00Z',
      `bucket:     ${BUCKET}`,
      'targets:    5 in 2 batches, 1 skipped at discovery',
    ]));
    expect(lines.slice(-8)).toEqual(EXPECTED);
  });

  test('--bucket and PATCH_PIPELINE_BUCKET skip the history; the state machine comes from ListStateMachines', async () => {
    putRun();
    sfn.on(ListStateMachinesCommand).resolves({ stateMachines: [{ name: 'PatchPipelineStateMachineE9F1A2B3-AbCdEf', stateMachineArn: SM_ARN, type: 'STANDARD', creationDate: new Date() }] });
    const flag = await cli(['status', RUN, '--bucket', BUCKET]);
    const env = await cli(['status', RUN], { env: { PATCH_PIPELINE_BUCKET: BUCKET } });
    for (const r of [flag, env]) expect(r.stdout.trimEnd().split('\n').slice(-8)).toEqual(EXPECTED);
    expect(sfn).not.toHaveReceivedCommand(GetExecutionHistoryCommand);
  });

  test('an execution ARN works as the run; before discovery it says so; missing batch documents are named', async () => {
    const early = await cli(['status', execArn(RUN)]);
    expect(early.code).toBe(0);
    expect(early.stdout).toContain(`targets:    not discovered yet (no runs/${RUN}/run.json)`);
    expect(sfn).not.toHaveReceivedCommand(ListStateMachinesCommand);
    putRun();
    bucket.put(runDocumentKey(RUN), { ...bucket.json<RunDocument>(runDocumentKey(RUN), BUCKET), batches: [{ batchId: 'b000', instanceIds: ['i-a', 'i-b', 'i-c'] }, { batchId: 'b002', instanceIds: [] }] }, BUCKET);
    const r = await cli(['status', execArn(RUN), '--bucket', BUCKET]);
    expect(r.stdout).toContain('batch documents not written yet: b002');
  });

  test('before "Normalize input" the bucket is unknown: says how to pass it', async () => {
    sfn.on(GetExecutionHistoryCommand).resolves({ events: [{ type: 'ExecutionStarted', id: 1, timestamp: new Date() }] });
    const r = await cli(['status', RUN, '--state-machine-arn', SM_ARN]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/bucket: +unknown .*--bucket or set PATCH_PIPELINE_BUCKET/);
  });

  test('an unknown run: exit 1, one line', async () => {
    sfn.on(DescribeExecutionCommand).rejects(Object.assign(new Error('Execution Does Not Exist'), { name: 'ExecutionDoesNotExist' }));
    const r = await cli(['status', 'nope', '--state-machine-arn', SM_ARN, '--bucket', BUCKET]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`patch-pipeline: no run nope: ${execArn('nope')} does not exist (check the run id, AWS_REGION and the state machine)\n`);
  });

  test('a bad run id is a usage error', async () => {
    const r = await cli(['status', 'bad id', '--state-machine-arn', SM_ARN]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/run id "bad id" must be 1-80/);
  });

  test('--watch refreshes until the execution ends, reads the history once, and exits 1 when it failed', async () => {
    putRun();
    sfn
      .on(DescribeExecutionCommand)
      .resolvesOnce({ status: 'RUNNING', startDate: new Date('2026-11-28T22:00:00Z'), executionArn: execArn(RUN), stateMachineArn: SM_ARN })
      .resolvesOnce({ status: 'RUNNING', startDate: new Date('2026-11-28T22:00:00Z'), executionArn: execArn(RUN), stateMachineArn: SM_ARN })
      .resolves({ status: 'FAILED', error: 'States.TaskFailed', cause: 'boom', startDate: new Date('2026-11-28T22:00:00Z'), stopDate: new Date('2026-11-28T23:00:00Z'), executionArn: execArn(RUN), stateMachineArn: SM_ARN });
    const r = await cli(['status', RUN, '--watch', '--interval', '3', '--state-machine-arn', SM_ARN]);
    expect(sfn).toHaveReceivedCommandTimes(DescribeExecutionCommand, 3);
    expect(sfn).toHaveReceivedCommandTimes(GetExecutionHistoryCommand, 2); // two pages, once
    expect(r.sleeps).toEqual([3000, 3000]);
    // Plain output repeats only what changed: the RUNNING view once, then the FAILED one.
    expect(r.stdout.match(/execution: +RUNNING/g)).toHaveLength(1);
    expect(r.stdout).toMatch(/execution: +FAILED  started 2026-11-28T22:00:00Z  stopped 2026-11-28T23:00:00Z/);
    expect(r.stdout).toContain('error:      States.TaskFailed: boom');
    expect(r.stdout).toContain(`execution FAILED: see patch-pipeline report ${RUN}`);
    expect(r.code).toBe(1);
  });

  test('on a terminal: one progress bar per step', async () => {
    putRun();
    sfn.on(DescribeExecutionCommand).resolves({ status: 'SUCCEEDED', startDate: new Date(), executionArn: execArn(RUN), stateMachineArn: SM_ARN });
    const once = await cli(['status', RUN, '--bucket', BUCKET, '--state-machine-arn', SM_ARN], { tty: true });
    expect(once.code).toBe(0);
    for (const step of ['power-on', 'snapshot', ...STAGES]) expect(once.stdout).toMatch(new RegExp(`${step} +[\\u2588\\u2591]{30} \\d/\\d  done`));
    expect(once.stdout).toContain('patch          ' + '\u2588'.repeat(15) + '\u2591'.repeat(15) + ' 2/4  done 1  failed 1  pending 2');
    const watch = await cli(['status', RUN, '--bucket', BUCKET, '--watch', '--state-machine-arn', SM_ARN], { tty: true });
    expect(watch.code).toBe(0);
    expect(watch.stdout).toMatch(/failed-check   \u2588+\u2591* 1\/3  done 1/);
  });
});

describe('stepCounts', () => {
  test('a failure at a step this CLI does not know counts at the first unfinished step', () => {
    const c = stepCounts(['power-on', 'snapshot', 'patch'], [
      { initialState: 'running', progress: { status: 'failed', failedAt: 'reboot', snapshotState: 'completed', stages: { patch: ok } } },
      { initialState: 'running', progress: { status: 'failed', failedAt: 'approval', snapshotIds: ['s'], snapshotState: 'pending', stages: {} } },
      { initialState: 'stopped' },
    ]);
    expect(c).toEqual([
      { step: 'power-on', total: 3, done: 2, failed: 0, pending: 1 },
      { step: 'snapshot', total: 3, done: 1, failed: 1, pending: 1 },
      { step: 'patch', total: 2, done: 0, failed: 1, pending: 1 },
    ]);
  });
});
