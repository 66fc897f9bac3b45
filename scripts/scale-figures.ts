/**
 * Prints the scale figures of the design: the largest execution state for a fleet, and the worst-case
 * history events of the parent execution and of each child execution (a batch, an approval group),
 * against the Standard-workflow limits (256 KiB payload, 25,000 events). Worst case = every gate polls
 * until its timeout at the deployed poll interval.
 * Usage: npx tsx scripts/scale-figures.ts [instances=1000] [applications=100]
 */
import { resolveDefaults } from '../lib/config';
import { STAGES, VERIFY_STAGE } from '../lib/stages';

const instances = Number(process.argv[2] ?? 1000);
const applications = Number(process.argv[3] ?? 100);
const d = resolveDefaults();
const batches = Math.ceil(instances / d.batchSize);
const chunksPerGroup = Math.ceil(instances / applications / 50);

// Events Step Functions records per state (Standard): Lambda task 5, Wait 2, Choice 2, Pass 2.
const TASK = 5;
const WAIT = 2;
const CHOICE = 2;
const PASS = 2;
/** A gate: action + choice, then per poll wait + check + choice, then done. */
const gate = (timeoutSeconds: number): number => TASK + CHOICE + Math.ceil(timeoutSeconds / d.pollIntervalSeconds) * (WAIT + TASK + CHOICE) + PASS;

const batchEvents =
  4 + gate(d.powerOnTimeoutSeconds) + gate(d.snapshotTimeoutSeconds) + STAGES.reduce((n, s) => n + gate(d.stageTimeouts[s.id] ?? s.timeoutSeconds), 0) + PASS;
const groupEvents =
  4 + TASK + CHOICE + TASK /* sns */ + TASK /* wait */ + gate(d.approval.rebootTimeoutSeconds) + 6 + chunksPerGroup * (4 + gate(VERIFY_STAGE.timeoutSeconds) + PASS) + PASS;
const parentEvents = 4 + TASK + CHOICE + PASS + TASK + CHOICE + TASK + CHOICE + 8 /* batch map run */ + TASK + 8 /* approval map run */ + gate(d.powerOnTimeoutSeconds) + TASK + CHOICE + 2;

const ids = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
const state = {
  runId: 'scheduled-prod-sunday-2026-11-29T03-00-00Z-0123456789abcdef',
  bucket: 'patchpipelinestack-patchpipelinerunbucket816d8b13-abcdefghijkl',
  config: { ...d, region: 'eu-west-1', dryRun: false, window: 'prod-sunday' },
  discovery: { matched: instances, targets: instances, skipped: 0, batches: ids(batches, (i) => `b${String(i).padStart(3, '0')}`) },
  batchResults: ids(batches, (i) => ({ batchId: `b${String(i).padStart(3, '0')}` })),
  approvals: { groups: ids(applications, (i) => `a${String(i).padStart(3, '0')}`) },
  approvalResults: ids(applications, (i) => ({ groupId: `a${String(i).padStart(3, '0')}`, outcome: 'rebooted' })),
  error: {},
  restoreError: {},
  freeze: { frozen: false, calendar: 'year-end-freeze', state: 'OPEN', checkedAt: new Date().toISOString(), message: 'change calendar year-end-freeze is OPEN' },
  gate: { complete: true, waitSeconds: 30, deadline: new Date().toISOString(), startedAt: new Date().toISOString(), done: 0, failed: 0, pending: 0, checks: 30 },
  report: { matched: instances, targets: instances, skipped: 0, patched: instances, failed: 0, notReached: 0, updatesInstalled: 12345, updatesFailed: 0, reportKey: 'runs/x/report/report.json', csvKey: 'runs/x/report/report.csv' },
};
const bytes = Buffer.byteLength(JSON.stringify(state));
const pct = (n: number, limit: number): string => `${((100 * n) / limit).toFixed(1)} %`;

process.stdout.write(
  [
    `fleet: ${instances} instances, ${applications} applications -> ${batches} batches of <= ${d.batchSize}, <= ${chunksPerGroup} verify chunk(s) per application`,
    `largest execution state: ${bytes} bytes = ${pct(bytes, 256 * 1024)} of 256 KiB (references and counts only; the fleet lives in S3)`,
    `worst-case history, parent execution: ${parentEvents} events = ${pct(parentEvents, 25000)} of 25,000 (batches and groups run as child executions)`,
    `worst-case history, one batch child (every gate polls to its timeout every ${d.pollIntervalSeconds} s): ${batchEvents} events = ${pct(batchEvents, 25000)}`,
    `worst-case history, one approval-group child: ${groupEvents} events = ${pct(groupEvents, 25000)}`,
    '',
  ].join('\n'),
);
