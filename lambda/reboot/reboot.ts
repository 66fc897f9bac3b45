import { EC2Client, Instance, RebootInstancesCommand } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { InstanceInformation } from '@aws-sdk/client-ssm';
import { ApprovalRecord, approvalKey } from '../shared/approvals';
import { chunk } from '../shared/batching';
import { errorMessage, RunDataError } from '../shared/errors';
import { describeInstanceInformation, describeInstancesById, EC2_IDS_PER_CALL, FleetDeps, stateOf, tagValue } from '../shared/fleet';
import { advanceGate, deadlinePassed, GateCounts, openGate } from '../shared/gate';
import { logger } from '../shared/logger';
import { activeInstances, failInstance, loadBatch, saveBatch } from '../shared/run-data';
import { getJson } from '../shared/s3-json';
import { BatchDocument, GateState, InstanceProgress, RunTaskInput } from '../shared/types';

export type RebootEvent = RunTaskInput & {
  readonly action: 'reboot' | 'check-rebooted';
  readonly groupId: string;
  readonly gate?: GateState;
};

/** The step id of the reboot in the chunk documents (stages['reboot'], failedAt). */
export const REBOOT = 'reboot';

/**
 * A ping must come this long after the reboot request to count: the OS takes a moment to go down,
 * and the agent may still ping from the old boot in between.
 */
export const PING_GRACE_SECONDS = 5;

/** States from which a reboot cannot bring the instance back: it fails at once. */
const GONE = new Set(['stopping', 'stopped', 'shutting-down', 'terminated']);

/** The group is not approved (the record says otherwise): nothing is rebooted. */
export class RebootNotApprovedError extends Error {
  public readonly name = 'RebootNotApprovedError';
}

/** One instance of the group and the chunk document that holds its progress. */
interface Member {
  readonly id: string;
  readonly chunk: BatchDocument;
  readonly progress: InstanceProgress;
}

interface Group {
  readonly record: ApprovalRecord;
  readonly chunks: BatchDocument[];
  readonly members: Member[];
}

/**
 * Reboots an approved group's instances in reboot order, or checks that they are back. Each call
 * starts the next order once every instance of the current one is back or failed.
 */
export async function reboot(event: RebootEvent, deps: FleetDeps): Promise<GateState> {
  const now = (deps.now ?? (() => new Date()))();
  switch (event.action) {
    case 'reboot':
      return start(event, deps, now);
    case 'check-rebooted':
      return check(event, deps, now);
    default:
      throw new Error(`unknown reboot action ${JSON.stringify((event as { action?: unknown }).action)}: expected reboot or check-rebooted`);
  }
}

async function start(event: RebootEvent, deps: FleetDeps, now: Date): Promise<GateState> {
  const { runId, bucket, groupId, config } = event;
  const group = await loadGroup(deps.s3, bucket, runId, groupId);
  if (group.record.status !== 'approved') {
    throw new RebootNotApprovedError(`group ${groupId} of run ${runId} is ${group.record.status}, not approved: nothing was rebooted`);
  }
  const orderTag = config.approval.rebootOrderTagKey;
  // A retried action keeps what the first attempt recorded, so nothing is rebooted twice.
  const fresh = group.members.filter((m) => m.progress.status === 'active' && !m.progress.stages[REBOOT]);
  const described = await describeInstancesById(deps.ec2, [...new Set([...pendingMembers(group), ...fresh].map((m) => m.id))]);
  for (const m of fresh) {
    const instance = described.get(m.id);
    const raw = instance ? tagValue(instance, orderTag) : '';
    m.progress.rebootOrder = parseOrder(raw);
    if (raw !== '' && m.progress.rebootOrder === null) {
      logger.warn('reboot order tag is not a number: the instance reboots last', { runId, groupId, instanceId: m.id, tag: orderTag, value: raw });
    }
    m.progress.stages[REBOOT] = { status: 'Pending' };
  }

  failGone(group, described, now);
  await requestNextOrder(group, deps.ec2, now, runId, groupId);
  await saveGroup(deps.s3, bucket, group);
  const counts = rebootCounts(group);
  logger.info('group reboot started', { runId, groupId, ...counts });
  return openGate(now, config.approval.rebootTimeoutSeconds, config.pollIntervalSeconds, counts);
}

async function check(event: RebootEvent, deps: FleetDeps, now: Date): Promise<GateState> {
  const { runId, bucket, groupId, config } = event;
  const gate = event.gate;
  if (!gate) throw new RunDataError(`check-rebooted of group ${groupId} needs the gate returned by the reboot action ($.gate)`);
  const group = await loadGroup(deps.s3, bucket, runId, groupId);
  const pending = pendingMembers(group);

  const described = await describeInstancesById(deps.ec2, pending.map((m) => m.id));
  failGone(group, described, now);
  const requested = pendingMembers(group).filter((m) => m.progress.stages[REBOOT]?.startedAt);
  const info = await describeInstanceInformation(deps.ssm, requested.filter((m) => stateOf(described.get(m.id)) === 'running').map((m) => m.id));
  for (const m of requested) {
    const outcome = m.progress.stages[REBOOT];
    if (isBack(described.get(m.id), info.get(m.id), new Date(outcome.startedAt!))) {
      m.progress.stages[REBOOT] = { status: 'Success', startedAt: outcome.startedAt, finishedAt: now.toISOString() };
    }
  }

  if (deadlinePassed(gate, now)) failLate(group, described, info, config.approval.rebootTimeoutSeconds, now, runId, groupId);
  else await requestNextOrder(group, deps.ec2, now, runId, groupId);

  await saveGroup(deps.s3, bucket, group);
  return advanceGate(gate, now, config.pollIntervalSeconds, rebootCounts(group));
}

/**
 * Back after its reboot: running, and the agent Online with a ping later than the reboot request
 * (an Online status alone may still be the one from before the reboot). The verify document then
 * proves the boot time on the instance itself.
 */
function isBack(instance: Instance | undefined, info: InstanceInformation | undefined, requestedAt: Date): boolean {
  if (stateOf(instance) !== 'running' || info?.PingStatus !== 'Online' || !info.LastPingDateTime) return false;
  return new Date(info.LastPingDateTime).getTime() > requestedAt.getTime() + PING_GRACE_SECONDS * 1000;
}

/** A stopped, terminated or vanished instance cannot come back from a reboot: it fails at once. */
function failGone(group: Group, described: Map<string, Instance>, now: Date): void {
  for (const m of pendingMembers(group)) {
    const instance = described.get(m.id);
    const state = stateOf(instance);
    if (!instance) fail(m, 'instance no longer exists', now);
    else if (GONE.has(state)) fail(m, `instance is ${state}${instance.StateReason?.Message ? ` (${instance.StateReason.Message})` : ''}`, now);
  }
}

/**
 * Starts the lowest reboot order that has instances waiting, once no instance of a lower order is
 * still pending. When every RebootInstances call of an order fails, the next order starts at once.
 */
async function requestNextOrder(group: Group, ec2: EC2Client, now: Date, runId: string, groupId: string): Promise<void> {
  for (;;) {
    const pending = pendingMembers(group);
    if (pending.length === 0) return;
    const current = Math.min(...pending.map(orderKey));
    const toRequest = pending.filter((m) => orderKey(m) === current && !m.progress.stages[REBOOT].startedAt);
    if (toRequest.length === 0) return;

    let requested = 0;
    for (const calls of chunk(toRequest, EC2_IDS_PER_CALL)) {
      try {
        await ec2.send(new RebootInstancesCommand({ InstanceIds: calls.map((m) => m.id) }));
        for (const m of calls) m.progress.stages[REBOOT] = { status: 'Pending', startedAt: now.toISOString() };
        requested += calls.length;
      } catch (err) {
        // Only the instances of the refused call fail; the error names the one at fault.
        for (const m of calls) fail(m, `RebootInstances failed: ${errorMessage(err)}`, now);
      }
    }
    logger.info('reboot requested', { runId, groupId, order: orderLabel(current), requested, refused: toRequest.length - requested });
    if (requested > 0) return;
  }
}

/** At the deadline: the rebooted ones not back fail with what was last seen; the queued ones were never rebooted. */
function failLate(group: Group, described: Map<string, Instance>, info: Map<string, InstanceInformation>, timeoutSeconds: number, now: Date, runId: string, groupId: string): void {
  const pending = pendingMembers(group);
  if (pending.length === 0) return;
  const current = Math.min(...pending.map(orderKey));
  for (const m of pending) {
    const startedAt = m.progress.stages[REBOOT].startedAt;
    if (startedAt) {
      // Later orders had less than the whole timeout: say how long this one really had.
      const seconds = Math.min(timeoutSeconds, Math.floor((now.getTime() - new Date(startedAt).getTime()) / 1000));
      fail(m, `did not come back online within ${seconds} s after its reboot (state ${stateOf(described.get(m.id))}, ping ${pingOf(info.get(m.id))})`, now);
    } else {
      fail(m, `not rebooted: reboot order ${orderLabel(orderKey(m))} was still waiting for order ${orderLabel(current)} when the ${timeoutSeconds} s reboot timeout ended`, now);
    }
  }
  logger.warn('reboot deadline passed', { runId, groupId, failed: pending.map((m) => m.id) });
}

function fail(m: Member, reason: string, now: Date): void {
  const startedAt = m.progress.stages[REBOOT]?.startedAt;
  m.progress.stages[REBOOT] = { status: 'Failed', reason, ...(startedAt ? { startedAt } : {}), finishedAt: now.toISOString() };
  failInstance(m.chunk, m.id, REBOOT, reason);
}

function pingOf(info: InstanceInformation | undefined): string {
  if (!info) return 'not registered';
  const last = info.LastPingDateTime ? ` at ${new Date(info.LastPingDateTime).toISOString()}` : '';
  return `${info.PingStatus ?? 'unknown'}${last}`;
}

/** A number (integer or decimal, sign allowed); anything else is no order. */
export function parseOrder(value: string): number | null {
  const text = value.trim();
  if (!/^[+-]?\d{1,15}(\.\d{1,6})?$/.test(text)) return null;
  return Number(text);
}

const orderKey = (m: Member): number => m.progress.rebootOrder ?? Number.POSITIVE_INFINITY;
const orderLabel = (order: number): string => (Number.isFinite(order) ? String(order) : 'untagged');

const pendingMembers = (group: Group): Member[] =>
  group.members.filter((m) => m.progress.status === 'active' && m.progress.stages[REBOOT]?.status === 'Pending');

function rebootCounts(group: Group): GateCounts {
  let done = 0;
  let failed = 0;
  let pending = 0;
  for (const m of group.members) {
    const status = m.progress.stages[REBOOT]?.status;
    if (status === 'Success') done++;
    else if (m.progress.failedAt === REBOOT) failed++;
    else if (status === 'Pending' && m.progress.status === 'active') pending++;
  }
  return { done, failed, pending };
}

async function loadGroup(s3: S3Client, bucket: string, runId: string, groupId: string): Promise<Group> {
  const key = approvalKey(runId, groupId);
  const record = await getJson<ApprovalRecord>(s3, bucket, key);
  if (!record) throw new RunDataError(`s3://${bucket}/${key} does not exist: approval planning did not create group ${groupId}`);
  const chunks = await Promise.all(record.chunks.map((id) => loadBatch(s3, bucket, runId, id)));
  const members: Member[] = [];
  const seen = new Set<string>();
  for (const c of chunks) {
    for (const id of c.instanceIds) {
      if (seen.has(id) || !c.instances[id]) continue;
      seen.add(id);
      members.push({ id, chunk: c, progress: c.instances[id] });
    }
  }
  // Instances that left the pipeline before the reboot are not part of it.
  const active = new Set(chunks.flatMap(activeInstances));
  return { record, chunks, members: members.filter((m) => active.has(m.id) || m.progress.stages[REBOOT]) };
}

async function saveGroup(s3: S3Client, bucket: string, group: Group): Promise<void> {
  await Promise.all(group.chunks.map((c) => saveBatch(s3, bucket, c)));
}
