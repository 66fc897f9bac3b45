/**
 * Checks the invariants of a simulated run from its --out folder (report.json and the S3 mirror):
 *   every instance that was stopped is stopped again; every instance that got a document command had a
 *   completed snapshot first; the report lists every target. Prints the figures, exits 1 on a violation.
 * Usage: npx tsx scripts/check-sim-run.ts <out-dir>
 */
import * as fs from 'fs';
import * as path from 'path';

interface Row {
  instanceId: string;
  initialState: string;
  finalState: string;
  status: string;
  snapshotIds: string[];
  stages: Record<string, { status: string }>;
}

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: npx tsx scripts/check-sim-run.ts <out-dir>\n');
  process.exit(2);
}
const report = JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf-8')) as {
  runId: string;
  totals: Record<string, number>;
  instances: Row[];
  metrics?: Record<string, unknown>;
};
const runDir = path.join(dir, 's3', 'runs', report.runId);
const batches = fs.existsSync(path.join(runDir, 'batches'))
  ? fs.readdirSync(path.join(runDir, 'batches')).map((f) => JSON.parse(fs.readFileSync(path.join(runDir, 'batches', f), 'utf-8')))
  : [];
const snapshotState = new Map<string, string>();
for (const b of batches) for (const [id, p] of Object.entries<any>(b.instances)) if (p.snapshotState) snapshotState.set(id, p.snapshotState);

const problems: string[] = [];
let restored = 0;
let commanded = 0;
for (const r of report.instances) {
  if (r.initialState === 'stopped') {
    if (r.finalState !== 'stopped' && r.finalState !== 'terminated') problems.push(`${r.instanceId} was stopped, ended ${r.finalState}`);
    else restored += 1;
  }
  const gotCommand = Object.values(r.stages).some((s) => s.status !== 'NotRun');
  if (gotCommand) {
    commanded += 1;
    if (r.snapshotIds.length === 0 || snapshotState.get(r.instanceId) !== 'completed') {
      problems.push(`${r.instanceId} got a document command without a completed snapshot (${snapshotState.get(r.instanceId) ?? 'none'})`);
    }
  }
}
const byStatus: Record<string, number> = {};
for (const r of report.instances) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;

process.stdout.write(
  [
    `run ${report.runId}: ${report.instances.length} instances in report.json (${JSON.stringify(byStatus)})`,
    `stopped at discovery and stopped again: ${restored}`,
    `instances that got a document command: ${commanded}, each after a completed snapshot: ${commanded - problems.filter((p) => p.includes('snapshot')).length}`,
    `metrics: ${JSON.stringify(report.metrics ?? {})}`,
    problems.length ? `VIOLATIONS:\n  ${problems.join('\n  ')}` : 'invariants hold',
    '',
  ].join('\n'),
);
process.exit(problems.length ? 1 : 0);
