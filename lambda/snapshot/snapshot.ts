import { CreateSnapshotsCommand, EC2Client, paginateDescribeSnapshots, Snapshot } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { chunk } from '../shared/batching';
import { errorMessage, RunDataError } from '../shared/errors';
import { FILTER_MAX_VALUES, mapLimit } from '../shared/fleet';
import { advanceGate, deadlinePassed, GateCounts, openGate } from '../shared/gate';
import { logger } from '../shared/logger';
import { activeInstances, failInstance, loadBatch, saveBatch } from '../shared/run-data';
import { BatchDocument, BatchTaskInput, GateState, RunConfig } from '../shared/types';

export type SnapshotEvent = BatchTaskInput & { readonly action: 'create' | 'check'; readonly gate?: GateState };

export interface SnapshotDeps {
  readonly ec2: EC2Client;
  readonly s3: S3Client;
  readonly now?: () => Date;
}

export const SNAPSHOT = 'snapshot';
export const TAG_RUN_ID = 'patch-pipeline:run-id';
export const TAG_INSTANCE_ID = 'patch-pipeline:instance-id';
export const TAG_EXPIRES_ON = 'patch-pipeline:expires-on';
/** CreateSnapshots calls in flight at once (one per instance; the SDK's adaptive retry handles throttling). */
const CREATE_CONCURRENCY = 10;

/** Crash-consistent snapshots of every EBS volume of the batch's active instances, then wait until completed. */
export async function snapshot(event: SnapshotEvent, deps: SnapshotDeps): Promise<GateState> {
  const now = (deps.now ?? (() => new Date()))();
  const { runId, bucket, batchId, config } = event;
  const batch = await loadBatch(deps.s3, bucket, runId, batchId);
  if (event.action === 'create') {
    await create(batch, config, deps, now);
    const counts = await evaluate(batch, config, deps, undefined, now);
    await saveBatch(deps.s3, bucket, batch);
    return openGate(now, config.snapshotTimeoutSeconds, config.pollIntervalSeconds, counts);
  }
  if (event.action === 'check') {
    if (!event.gate) throw new RunDataError('check needs the gate returned by the previous snapshot task ($.gate)');
    const counts = await evaluate(batch, config, deps, event.gate, now);
    await saveBatch(deps.s3, bucket, batch);
    return advanceGate(event.gate, now, config.pollIntervalSeconds, counts);
  }
  throw new Error(`unknown snapshot action ${JSON.stringify((event as { action?: unknown }).action)}: expected create or check`);
}

async function create(batch: BatchDocument, config: RunConfig, deps: SnapshotDeps, now: Date): Promise<void> {
  const expiresOn = new Date(now.getTime() + config.snapshotRetentionDays * 86_400_000).toISOString().slice(0, 10);
  // A retried create must not snapshot twice.
  const ids = activeInstances(batch).filter((id) => !batch.instances[id].snapshotIds);
  await mapLimit(ids, CREATE_CONCURRENCY, async (instanceId) => {
    try {
      const res = await deps.ec2.send(
        new CreateSnapshotsCommand({
          InstanceSpecification: { InstanceId: instanceId, ExcludeBootVolume: false },
          CopyTagsFromSource: 'volume',
          Description: `patch-pipeline ${batch.runId}: ${instanceId} before patching`,
          TagSpecifications: [
            {
              ResourceType: 'snapshot',
              Tags: [
                { Key: TAG_RUN_ID, Value: batch.runId },
                { Key: TAG_INSTANCE_ID, Value: instanceId },
                { Key: TAG_EXPIRES_ON, Value: expiresOn },
                { Key: 'CreatedBy', Value: 'patch-pipeline' },
              ],
            },
          ],
        }),
      );
      const snapshotIds = (res.Snapshots ?? []).map((s) => s.SnapshotId).filter((s): s is string => Boolean(s));
      if (snapshotIds.length === 0) {
        failInstance(batch, instanceId, SNAPSHOT, 'CreateSnapshots created no snapshot (the instance has no EBS volume)');
        return;
      }
      batch.instances[instanceId].snapshotIds = snapshotIds;
      batch.instances[instanceId].snapshotState = 'pending';
    } catch (err) {
      failInstance(batch, instanceId, SNAPSHOT, `CreateSnapshots failed: ${errorMessage(err)}`);
    }
  });
  logger.info('snapshots requested', {
    runId: batch.runId,
    batchId: batch.batchId,
    snapshots: Object.fromEntries(ids.map((id) => [id, batch.instances[id].snapshotIds ?? batch.instances[id].reason])),
  });
}

/**
 * Done when all of an instance's snapshots are completed; an 'error' (or vanished) snapshot fails
 * the instance at once; past the deadline the pending ones fail. No completed snapshot, no patch.
 */
async function evaluate(batch: BatchDocument, config: RunConfig, deps: SnapshotDeps, gate: GateState | undefined, now: Date): Promise<GateCounts> {
  const waiting = activeInstances(batch).filter((id) => batch.instances[id].snapshotState === 'pending');
  const snapshots = await describeSnapshots(deps.ec2, waiting.flatMap((id) => batch.instances[id].snapshotIds ?? []));
  const late = gate !== undefined && deadlinePassed(gate, now);

  for (const id of waiting) {
    const p = batch.instances[id];
    const mine = (p.snapshotIds ?? []).map((sid) => ({ sid, snap: snapshots.get(sid) }));
    const broken = mine.find((m) => m.snap?.State === 'error');
    const missing = mine.find((m) => !m.snap);
    if (broken) {
      p.snapshotState = 'error';
      failInstance(batch, id, SNAPSHOT, `snapshot ${broken.sid} failed: ${broken.snap?.StateMessage || 'state error'}`);
    } else if (missing && gate) {
      // Right after CreateSnapshots a new id may not be visible yet; at a check it is gone.
      p.snapshotState = 'error';
      failInstance(batch, id, SNAPSHOT, `snapshot ${missing.sid} no longer exists`);
    } else if (mine.every((m) => m.snap?.State === 'completed')) {
      p.snapshotState = 'completed';
    } else if (late) {
      const progress = mine.map((m) => `${m.sid} ${m.snap?.State ?? 'unknown'} ${m.snap?.Progress ?? ''}`.trim()).join(', ');
      failInstance(batch, id, SNAPSHOT, `snapshot not completed within ${config.snapshotTimeoutSeconds} s (${progress})`);
    }
  }

  const active = activeInstances(batch);
  return {
    done: active.filter((id) => batch.instances[id].snapshotState === 'completed').length,
    pending: active.filter((id) => batch.instances[id].snapshotState === 'pending').length,
    failed: batch.instanceIds.filter((id) => batch.instances[id]?.failedAt === SNAPSHOT).length,
  };
}

/** By a snapshot-id filter (not SnapshotIds), so one deleted snapshot does not fail the whole call. */
async function describeSnapshots(ec2: EC2Client, snapshotIds: readonly string[]): Promise<Map<string, Snapshot>> {
  const out = new Map<string, Snapshot>();
  for (const ids of chunk(snapshotIds, FILTER_MAX_VALUES)) {
    const pages = paginateDescribeSnapshots({ client: ec2, pageSize: 1000 }, { Filters: [{ Name: 'snapshot-id', Values: ids }] });
    for await (const page of pages) for (const s of page.Snapshots ?? []) if (s.SnapshotId) out.set(s.SnapshotId, s);
  }
  return out;
}
