import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DescribeExecutionCommand, GetExecutionHistoryCommand, SFNClient } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { report as writeReport, RunReport } from '../../../lambda/report/report';
import { reportCsvKey, reportJsonKey } from '../../../lambda/shared/keys';
import { getText } from '../../../lambda/shared/s3-json';
import { MotoServer, startMoto } from '../../../sim/local-aws';
import { simulate, SimResult } from '../../../sim/simulate';
import { cli, execArn, SM_ARN } from './cli-harness';

/**
 * status and report against the S3 objects of a real simulated run: the simulation (its own moto,
 * stopped when it returns) mirrors the bucket to --out/s3; those files go into a fresh moto that
 * the CLI reads through AWS_ENDPOINT_URL. Only Step Functions is mocked (moto runs no workflow).
 */
const REGION = 'eu-west-1';
const BUCKET = 'pp-cli-sim-run';
const sfn = mockClient(SFNClient);

let sim: SimResult;
let moto: MotoServer;
let s3: S3Client;
let runId: string;
let reportDoc: RunReport;
let reportWrittenByTest = false;
let outDir: string;
const savedEnv = { ...process.env };

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

beforeAll(async () => {
  outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pp-cli-sim-'));
  runId = `cli-sim-${Date.now()}`;
  sim = await simulate({
    runId,
    outDir,
    scenario: { instances: 3, windows: 0.34, stopped: 0.34, seed: 5, snapshotSeconds: 60, faults: [{ type: 'stage-fails', instance: 0, stage: 'patch' }] },
  });
  // The simulation points the SDK at its own (now stopped) endpoints.
  process.env = { ...savedEnv };
  moto = await startMoto();
  process.env.AWS_ENDPOINT_URL = moto.url;
  s3 = new S3Client({ region: REGION, forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET, CreateBucketConfiguration: { LocationConstraint: REGION } }));
  const mirror = path.join(outDir, 's3');
  for (const file of filesUnder(mirror)) {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: path.relative(mirror, file).split(path.sep).join('/'), Body: fs.readFileSync(file) }));
  }
  if ((await getText(s3, BUCKET, reportJsonKey(runId))) === undefined) {
    // The simulated execution ended before its report task: write it from the run's own objects, as that task does.
    reportWrittenByTest = true;
    await writeReport({ runId, bucket: BUCKET, stages: [] }, { s3 });
  }
  reportDoc = JSON.parse((await getText(s3, BUCKET, reportJsonKey(runId)))!) as RunReport;
}, 600_000);

afterAll(async () => {
  await moto?.stop();
  if (outDir) fs.rmSync(outDir, { recursive: true, force: true });
  process.env = savedEnv;
});

beforeEach(() => {
  sfn.reset();
  sfn.on(DescribeExecutionCommand).resolves({ executionArn: execArn(runId), stateMachineArn: SM_ARN, status: sim.status, startDate: new Date('2026-11-28T22:00:00Z'), stopDate: new Date('2026-11-28T22:20:00Z') });
  sfn.on(GetExecutionHistoryCommand).resolves({
    events: [{ type: 'TaskStateExited', id: 4, timestamp: new Date(), stateExitedEventDetails: { name: 'Normalize input', output: JSON.stringify({ valid: true, runId, bucket: BUCKET }) } }],
  });
});

const deps = { s3: () => new S3Client({ region: REGION, forcePathStyle: true }) };

describe('CLI on a simulated run', () => {
  test('the simulation patched all but the faulty instance', () => {
    expect(sim.instances.map((i) => i.status)).toEqual(['Failed', 'Patched', 'Patched']);
    expect(reportDoc.totals).toMatchObject({ targets: 3, patched: 2, failed: 1 });
    if (reportWrittenByTest) console.warn('report.json was written by this test: the simulated execution did not write it');
  });

  test('status: every step finished, counts agree with the report, bucket read from the execution', async () => {
    const r = await cli(['status', runId, '--state-machine-arn', SM_ARN], deps);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toContain(`bucket:     ${BUCKET}`);
    expect(r.stdout).toContain('targets:    3 in 1 batch, 0 skipped at discovery');
    const steps = Object.fromEntries(
      [...r.stdout.matchAll(/^(\S+) +done (\d+) +failed (\d+) +pending (\d+) +\(of (\d+)\)$/gm)].map((m) => [m[1], { done: +m[2], failed: +m[3], pending: +m[4], total: +m[5] }]),
    );
    expect(Object.keys(steps)).toEqual(['power-on', 'snapshot', ...reportDoc.stages.map((s) => s.id)]);
    expect(steps['power-on']).toEqual({ done: 3, failed: 0, pending: 0, total: 3 });
    expect(steps.snapshot).toEqual({ done: 3, failed: 0, pending: 0, total: 3 });
    for (const s of reportDoc.stages) expect({ stage: s.id, done: steps[s.id].done, failed: steps[s.id].failed, pending: steps[s.id].pending }).toEqual({ stage: s.id, done: s.success, failed: s.failed, pending: 0 });
    expect(steps.patch).toEqual({ done: 2, failed: 1, pending: 0, total: 3 });
  });

  test('report: totals, stage counts and the failed instance with its reason', async () => {
    const r = await cli(['report', runId, '--bucket', BUCKET], deps);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const failed = reportDoc.instances.find((i) => i.status === 'Failed')!;
    expect(failed).toMatchObject({ instanceId: sim.instances[0].instanceId, failedAt: 'patch' });
    expect(r.stdout).toMatch(new RegExp(`^${failed.instanceId} +${failed.name} +Failed +patch +\\S`, 'm'));
    expect(r.stdout).toContain(failed.reason.slice(0, 40));
    expect(r.stdout).toMatch(/^matched +targets +skipped +patched +failed +not reached/m);
    expect(r.stdout).toMatch(/^3 +3 +0 +2 +1 +0 /m);
    expect(r.stdout).toMatch(/^patch +\S.* +2 +1 +0$/m);
  });

  test('report --json and --csv print the stored objects; the bucket may come from the execution', async () => {
    const json = await cli(['report', runId, '--json', '--state-machine-arn', SM_ARN], deps);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(reportDoc);
    const csv = await cli(['report', runId, '--csv'], { ...deps, env: { PATCH_PIPELINE_BUCKET: BUCKET } });
    expect(csv.code).toBe(0);
    expect(csv.stdout.trimEnd()).toBe((await getText(s3, BUCKET, reportCsvKey(runId)))!.trimEnd());
    expect(csv.stdout.split('\n')[0]).toMatch(/^instance_id,name,platform,/);
  });

  test('report of a run without a report: exit 1 pointing at status', async () => {
    const r = await cli(['report', 'not-finished', '--bucket', BUCKET], deps);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`patch-pipeline: no report yet: s3://${BUCKET}/runs/not-finished/report/report.json does not exist (the run writes it at the end; see patch-pipeline status not-finished)\n`);
  });

  test('the installed bin (bin/cli.js) prints the same report', async () => {
    const root = path.resolve(__dirname, '../../..');
    const env = { ...process.env, AWS_ENDPOINT_URL: moto.url, AWS_REGION: REGION, AWS_S3_FORCE_PATH_STYLE: 'true', AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' };
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [path.join(root, 'bin', 'cli.js'), 'report', runId, '--bucket', BUCKET, '--csv'], { env, cwd: os.tmpdir() });
    expect(stderr).toBe('');
    expect(stdout.trimEnd()).toBe((await getText(s3, BUCKET, reportCsvKey(runId)))!.trimEnd());
  });
});
