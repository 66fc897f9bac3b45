import { Instance, StartInstancesCommand, StopInstancesCommand } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { chunk } from '../shared/batching';
import { errorMessage, RunDataError } from '../shared/errors';
import { describeInstanceInformation, describeInstancesById, EC2_IDS_PER_CALL, FleetDeps, stateOf } from '../shared/fleet';
import { advanceGate, deadlinePassed, GateCounts, openGate } from '../shared/gate';
import { restoreKey, runDocumentKey } from '../shared/keys';
import { logger } from '../shared/logger';
import { activeInstances, failInstance, loadBatch, loadRun, saveBatch } from '../shared/run-data';
import { getJson, putJson } from '../shared/s3-json';
import { BatchDocument, GateState, RestoreDocument, RunConfig, RunDocument, RunTaskInput, BatchTaskInput } from '../shared/types';

export type PowerEvent =
  | (BatchTaskInput & { readonly action: 'start' | 'check-started'; readonly gate?: GateState })
  | (RunTaskInput & { readonly action: 'restore' | 'check-restored'; readonly gate?: GateState; readonly error?: unknown });

export const POWER_ON = 'power-on';

/** Start / wait for the batch's stopped targets, or put every target back to its power state at discovery. */
export async function power(event: PowerEvent, deps: FleetDeps): Promise<GateState> {
  const now = deps.now ?? (() => new Date());
  switch (event.action) {
    case 'start':
      return start(event, deps, now());
    case 'check-started':
      return checkStarted(event, deps, now());
    case 'restore':
      return restore(event, deps, now());
    case 'check-restored':
      return checkRestored(event, deps, now());
    default:
      throw new Error(`unknown power action ${JSON.stringify((event as { action?: unknown }).action)}: expected start, check-started, restore or check-restored`);
  }
}

// ---- power-on (per batch) ----

async function start(event: BatchTaskInput, deps: FleetDeps, now: Date): Promise<GateState> {
  const { runId, bucket, batchId, config } = event;
  const [batch, run] = await Promise.all([loadBatch(deps.s3, bucket, runId, batchId), loadRun(deps.s3, bucket, runId)]);
  const initial = initialStates(run);
  // startedByRun makes a retried start skip what it already started.
  const toStart = activeInstances(batch).filter((id) => initial.get(id) === 'stopped' && !batch.instances[id].startedByRun);

  const errors = await perInstance(toStart, (ids) => deps.ec2.send(new StartInstancesCommand({ InstanceIds: ids })));
  for (const id of toStart) {
    const err = errors.get(id);
    if (err) failInstance(batch, id, POWER_ON, `StartInstances failed: ${err}`);
    else batch.instances[id].startedByRun = true;
  }
  if (toStart.length) logger.info('started instances', { runId, batchId, started: toStart.filter((id) => !errors.has(id)), errors: Object.fromEntries(errors) });

  const counts = await evaluatePowerOn(batch, deps, config, undefined, now);
  await saveBatch(deps.s3, bucket, batch);
  return openGate(now, config.powerOnTimeoutSeconds, config.pollIntervalSeconds, counts);
}

async function checkStarted(event: BatchTaskInput & { gate?: GateState }, deps: FleetDeps, now: Date): Promise<GateState> {
  const { runId, bucket, batchId, config } = event;
  const gate = requireGate(event.gate, 'check-started');
  const batch = await loadBatch(deps.s3, bucket, runId, batchId);
  const counts = await evaluatePowerOn(batch, deps, config, gate, now);
  await saveBatch(deps.s3, bucket, batch);
  return advanceGate(gate, now, config.pollIntervalSeconds, counts);
}

/**
 * Done: running and Online in SSM. A terminated or vanished instance fails at once, and so does
 * one found stopped that this run did not start (the pipeline only starts what it found stopped).
 * With a gate past its deadline the pending ones fail, naming the state and ping last seen.
 */
async function evaluatePowerOn(batch: BatchDocument, deps: FleetDeps, config: RunConfig, gate: GateState | undefined, now: Date): Promise<GateCounts> {
  const ids = activeInstances(batch);
  const described = await describeInstancesById(deps.ec2, ids);
  const running = ids.filter((id) => stateOf(described.get(id)) === 'running');
  const info = await describeInstanceInformation(deps.ssm, running);

  let done = 0;
  const pending: { id: string; state: string; ping: string; reason?: string }[] = [];
  for (const id of ids) {
    const instance = described.get(id);
    const state = stateOf(instance);
    const ping = info.get(id)?.PingStatus ?? (running.includes(id) ? 'not registered' : 'n/a');
    const progress = batch.instances[id];
    if (!instance) failInstance(batch, id, POWER_ON, 'instance no longer exists');
    else if (state === 'terminated' || state === 'shutting-down') failInstance(batch, id, POWER_ON, `instance is ${state}`);
    else if (state === 'running' && ping === 'Online') done++;
    else if ((state === 'stopped' || state === 'stopping') && !progress.startedByRun) {
      failInstance(batch, id, POWER_ON, `instance is ${state} although it was running at discovery; the pipeline starts only instances it found stopped`);
    } else if (state === 'stopped' && gate && progress.startedByRun) {
      // After a poll interval a started instance is pending or running; stopped means the start failed.
      failInstance(batch, id, POWER_ON, `instance stopped again after StartInstances${stateReason(instance)}`);
    } else pending.push({ id, state, ping });
  }

  let stillPending = pending.length;
  if (gate && deadlinePassed(gate, now) && pending.length) {
    for (const p of pending) {
      failInstance(batch, p.id, POWER_ON, `not running and online in SSM within ${config.powerOnTimeoutSeconds} s (state ${p.state}, PingStatus ${p.ping})`);
    }
    logger.warn('power-on deadline passed', { runId: batch.runId, batchId: batch.batchId, failed: pending.map((p) => p.id) });
    stillPending = 0;
  }
  const failed = batch.instanceIds.filter((id) => batch.instances[id]?.failedAt === POWER_ON).length;
  return { done, failed, pending: stillPending };
}

// ---- restore (whole run) ----

type RestoreEntry = { -readonly [K in keyof RestoreDocument['instances'][string]]: RestoreDocument['instances'][string][K] };

/** States from which an instance that was stopped at discovery is put back to stopped. */
const TO_STOP = new Set(['pending', 'running']);
/** States on the way to stopped: wait for them. */
const ON_THE_WAY = new Set(['pending', 'running', 'stopping']);

async function restore(event: RunTaskInput, deps: FleetDeps, now: Date): Promise<GateState> {
  const { runId, bucket, config } = event;
  const run = await getJson<RunDocument>(deps.s3, bucket, runDocumentKey(runId));
  if (!run) {
    // Discover failed before writing run.json: nothing was started, so nothing to restore.
    logger.info('no run.json: nothing to restore', { runId });
    return openGate(now, config.powerOnTimeoutSeconds, config.pollIntervalSeconds, { done: 0, failed: 0, pending: 0 });
  }
  const described = await describeInstancesById(deps.ec2, run.targets.map((t) => t.instanceId));
  const entries: Record<string, RestoreEntry> = {};
  for (const t of run.targets) {
    entries[t.instanceId] = { initialState: t.initialState, finalState: described.has(t.instanceId) ? stateOf(described.get(t.instanceId)) : 'not found', action: 'none' };
  }
  // Never stop an instance that was running at discovery.
  const toStop = run.targets.filter((t) => t.initialState === 'stopped' && TO_STOP.has(entries[t.instanceId].finalState)).map((t) => t.instanceId);
  await stop(toStop, entries, deps);
  const counts = restoreCounts(entries, undefined, config, now);
  await saveRestore(deps.s3, bucket, runId, entries, now);
  logger.info('restore requested', { runId, stopping: toStop, ...counts });
  return openGate(now, config.powerOnTimeoutSeconds, config.pollIntervalSeconds, counts);
}

async function checkRestored(event: RunTaskInput & { gate?: GateState }, deps: FleetDeps, now: Date): Promise<GateState> {
  const { runId, bucket, config } = event;
  const gate = requireGate(event.gate, 'check-restored');
  const doc = await getJson<RestoreDocument>(deps.s3, bucket, restoreKey(runId));
  if (!doc) return advanceGate(gate, now, config.pollIntervalSeconds, { done: 0, failed: 0, pending: 0 });

  const entries: Record<string, RestoreEntry> = Object.fromEntries(Object.entries(doc.instances).map(([id, e]) => [id, { ...e }]));
  const ids = Object.keys(entries);
  const described = await describeInstancesById(deps.ec2, ids);
  for (const id of ids) entries[id].finalState = described.has(id) ? stateOf(described.get(id)) : 'not found';
  // A stop refused while the instance was still pending (or throttled) is asked again once it runs.
  const retry = ids.filter((id) => entries[id].initialState === 'stopped' && entries[id].finalState === 'running');
  await stop(retry, entries, deps);

  const counts = restoreCounts(entries, gate, config, now);
  await saveRestore(deps.s3, bucket, runId, entries, now);
  return advanceGate(gate, now, config.pollIntervalSeconds, counts);
}

async function stop(ids: string[], entries: Record<string, RestoreEntry>, deps: FleetDeps): Promise<void> {
  if (!ids.length) return;
  const current = new Map<string, string>();
  const errors = await perInstance(ids, async (chunkIds) => {
    const res = await deps.ec2.send(new StopInstancesCommand({ InstanceIds: chunkIds }));
    for (const s of res.StoppingInstances ?? []) if (s.InstanceId && s.CurrentState?.Name) current.set(s.InstanceId, s.CurrentState.Name);
  });
  for (const id of ids) {
    const err = errors.get(id);
    if (err) entries[id].error = `StopInstances failed: ${err}`;
    else {
      entries[id].action = 'stopped';
      entries[id].finalState = current.get(id) ?? entries[id].finalState;
      delete entries[id].error;
    }
  }
}

/**
 * Over the instances that were stopped at discovery: done when stopped again (or gone), pending
 * while on the way; past the deadline the pending ones get an error and count as failed.
 */
function restoreCounts(entries: Record<string, RestoreEntry>, gate: GateState | undefined, config: RunConfig, now: Date): GateCounts {
  const late = gate !== undefined && deadlinePassed(gate, now);
  let done = 0;
  let failed = 0;
  let pending = 0;
  for (const e of Object.values(entries)) {
    if (e.initialState !== 'stopped') continue;
    if (!ON_THE_WAY.has(e.finalState)) {
      if (e.error && e.finalState !== 'stopped') failed++;
      else done++;
    } else if (late) {
      e.error = `${e.error ? `${e.error}; ` : ''}not stopped within ${config.powerOnTimeoutSeconds} s (state ${e.finalState})`;
      failed++;
    } else pending++;
  }
  return { done, failed, pending };
}

async function saveRestore(s3: S3Client, bucket: string, runId: string, entries: Record<string, RestoreEntry>, now: Date): Promise<void> {
  const doc: RestoreDocument = { runId, instances: entries, finishedAt: now.toISOString() };
  await putJson(s3, bucket, restoreKey(runId), doc);
}

// ---- helpers ----

function initialStates(run: RunDocument): Map<string, string> {
  return new Map(run.targets.map((t) => [t.instanceId, t.initialState]));
}

function requireGate(gate: GateState | undefined, action: string): GateState {
  if (!gate) throw new RunDataError(`${action} needs the gate returned by the previous power task ($.gate)`);
  return gate;
}

const stateReason = (instance: Instance | undefined): string => (instance?.StateReason?.Message ? ` (${instance.StateReason.Message})` : '');

/**
 * Calls an EC2 action for up to 50 ids at a time; when a call fails, tries its ids one by one so
 * one bad instance does not hold back the others. Returns the error of each id that failed.
 */
async function perInstance(ids: readonly string[], call: (ids: string[]) => Promise<unknown>): Promise<Map<string, string>> {
  const errors = new Map<string, string>();
  for (const group of chunk(ids, EC2_IDS_PER_CALL)) {
    try {
      await call(group);
    } catch (err) {
      if (group.length === 1) {
        errors.set(group[0], errorMessage(err));
        continue;
      }
      for (const id of group) {
        try {
          await call([id]);
        } catch (single) {
          errors.set(id, errorMessage(single));
        }
      }
    }
  }
  return errors;
}
