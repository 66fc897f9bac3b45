import { S3Client } from '@aws-sdk/client-s3';
import type { RunReport } from '../../lambda/report/report';
import { reportCsvKey, reportJsonKey } from '../../lambda/shared/keys';
import { getText } from '../../lambda/shared/s3-json';
import { CliError } from './errors';
import { table } from './io';

export type ReportFormat = 'table' | 'json' | 'csv';

/** The report object as text (report.json or report.csv); a clear error while the run is not over. */
export async function fetchReport(s3: S3Client, bucket: string, runId: string, format: ReportFormat): Promise<string> {
  const key = format === 'csv' ? reportCsvKey(runId) : reportJsonKey(runId);
  const text = await getText(s3, bucket, key);
  if (text === undefined) {
    throw new CliError(`no report yet: s3://${bucket}/${key} does not exist (the run writes it at the end; see patch-pipeline status ${runId})`);
  }
  return text;
}

export function parseReport(text: string, where: string): RunReport {
  try {
    return JSON.parse(text) as RunReport;
  } catch (err) {
    throw new CliError(`${where} is not valid JSON: ${(err as Error).message}`);
  }
}

const clip = (s: string, n = 100): string => (s.length > n ? `${s.slice(0, n - 3)}...` : s);

/** Totals, per-stage counts, then every failed, not reached and skipped instance with its reason. */
export function reportLines(r: RunReport): string[] {
  const t = r.totals;
  const kind = r.changeFreeze ? ' (change freeze)' : r.dryRun ? ' (dry run: nothing was changed)' : '';
  const out = [
    `run ${r.runId}${kind}, report written ${r.generatedAt}${r.window ? `, patch window ${r.window}` : ''}`,
    ...(r.changeFreeze ? [r.changeFreeze.message] : []),
    '',
    ...table(
      ['matched', 'targets', 'skipped', 'patched', 'failed', 'not reached', 'updates installed', 'updates failed'],
      [[t.matched, t.targets, t.skipped, t.patched, t.failed, t.notReached, t.updatesInstalled, t.updatesFailed].map(String)],
    ),
    ...(r.dryRun || r.changeFreeze
      ? []
      : ['', ...table(
          ['rebooted', 'verified', 'verify failed', 'reboots deferred'],
          [[t.rebooted ?? 0, t.verified ?? 0, t.verifyFailed ?? 0, t.rebootsDeferred ?? 0].map(String)],
        )]),
    '',
    ...table(
      ['stage', 'title', 'success', 'failed', 'not run'],
      r.stages.map((s) => [s.id, s.title, String(s.success), String(s.failed), String(s.notRun)]),
    ),
  ];
  // A dry run lists every target (what would be patched, and why not); a real run only what did not go well.
  const listed = r.dryRun ? r.instances : r.instances.filter((i) => i.status !== 'Patched');
  if (listed.length) {
    out.push('', ...table(
      ['instance', 'name', 'status', 'at', 'reason'],
      listed.map((i) => [i.instanceId, i.name, i.status, i.failedAt, clip(i.reason)]),
    ));
  }
  const notPatched = r.dryRun ? [] : listed;
  if (r.skipped.length) {
    out.push('', ...table(['skipped', 'name', 'state', 'reason'], r.skipped.map((s) => [s.instanceId, s.name, s.state, clip(s.reason)])));
  }
  if (r.errors.length) out.push('', 'errors:', ...r.errors.map((e) => `  ${clip(e, 300)}`));
  if (r.dryRun) out.push('', `dry run: ${t.wouldPatch ?? 0} would be patched, ${t.notReady ?? 0} not ready`);
  else if (!r.changeFreeze && !notPatched.length && !r.skipped.length && !r.errors.length) out.push('', `every target was patched (${t.patched})`);
  return out;
}
