import { S3Client } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse/sync';
import { ApprovalRecord } from './approvals';
import { compareKey, failedKey } from './keys';
import { loadBatch, loadRun } from './run-data';
import { getText } from './s3-json';
import { BatchDocument, RunDocument } from './types';

/** What an approver needs to know about one instance of the group. */
export interface InstanceSummary {
  readonly instanceId: string;
  readonly name: string;
  readonly platform: string;
  /** Rows of the compare CSV (updates installed by this run); undefined when the CSV is missing. */
  readonly updatesInstalled?: number;
  /** The first installed updates, "name previous -> version". */
  readonly installed: string[];
  /** From the failed-check CSV, else the failed-check marker detail; undefined when neither says. */
  readonly rebootPending?: boolean;
  /** Security updates still missing after the patch stage (failed-check CSV rows). */
  readonly stillMissing?: number;
}

export interface GroupSummary {
  readonly instances: InstanceSummary[];
  readonly updatesInstalled: number;
  readonly pendingReboots: number;
}

/** At most this many installed updates are listed per instance (the count is always complete). */
export const MAX_LISTED_UPDATES = 20;
const PARALLEL_READS = 16;

type Row = Record<string, string>;

const parseCsv = (text: string): Row[] =>
  parse(text, { columns: true, skip_empty_lines: true, relax_column_count: true, bom: true, trim: true }) as Row[];

const truthy = (v: string | undefined): boolean | undefined => {
  if (v === undefined || v === '') return undefined;
  return /^(true|1|yes)$/i.test(v.trim());
};

/** Reads the run's CSVs for the group's instances: names, installed updates, pending reboots. */
export async function summarizeGroup(s3: S3Client, bucket: string, record: ApprovalRecord, run?: RunDocument): Promise<GroupSummary> {
  const runDoc = run ?? (await loadRun(s3, bucket, record.runId));
  const targets = new Map(runDoc.targets.map((t) => [t.instanceId, t]));
  const batchIds = [...new Set(record.instanceIds.map((id) => targets.get(id)?.batchId).filter((b): b is string => Boolean(b)))];
  const batches = new Map<string, BatchDocument>();
  for (const b of batchIds) {
    try {
      batches.set(b, await loadBatch(s3, bucket, record.runId, b));
    } catch {
      // Only the failed-check detail comes from here: the summary still stands without it.
    }
  }

  const instances = await mapLimited(record.instanceIds, PARALLEL_READS, async (instanceId): Promise<InstanceSummary> => {
    const target = targets.get(instanceId);
    const [compareText, failedText] = await Promise.all([
      getText(s3, bucket, compareKey(record.runId, instanceId)),
      getText(s3, bucket, failedKey(record.runId, instanceId)),
    ]);
    const compared = compareText === undefined ? undefined : parseCsv(compareText);
    const failed = failedText === undefined ? undefined : parseCsv(failedText);
    const detail = target?.batchId ? batches.get(target.batchId)?.instances[instanceId]?.stages['failed-check']?.reason : undefined;
    // The CSV has no row when nothing is missing, so the marker detail ("rebootPending=true") is the fallback.
    const rebootPending = truthy(failed?.[0]?.reboot_pending) ?? truthy(/rebootPending=(\w+)/.exec(detail ?? '')?.[1]);
    return {
      instanceId,
      name: target?.name ?? '',
      platform: target?.platform ?? '',
      ...(compared ? { updatesInstalled: compared.length } : {}),
      installed: (compared ?? [])
        .slice(0, MAX_LISTED_UPDATES)
        .map((r) => `${r.name ?? ''} ${r.previous_version ? `${r.previous_version} -> ` : ''}${r.version ?? ''}`.trim()),
      ...(rebootPending === undefined ? {} : { rebootPending }),
      ...(failed ? { stillMissing: failed.length } : {}),
    };
  });
  return {
    instances,
    updatesInstalled: instances.reduce((n, i) => n + (i.updatesInstalled ?? 0), 0),
    pendingReboots: instances.filter((i) => i.rebootPending).length,
  };
}

async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
