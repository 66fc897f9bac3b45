import { EC2Client, Instance } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { InstanceInformation, SSMClient } from '@aws-sdk/client-ssm';
import { chunk } from '../shared/batching';
import { describeInstanceInformation, describeInstances, describeVolumes, mapLimit, platformOf, stateOf, tagValue as tag, volumeIds } from '../shared/fleet';
import { batchId as makeBatchId, batchKey, runDocumentKey } from '../shared/keys';
import { logger } from '../shared/logger';
import { putJson } from '../shared/s3-json';
import { BatchDocument, DiscoverOutput, RunDocument, RunTaskInput, SkippedInstance, TargetInstance } from '../shared/types';
import { readinessOf } from './readiness';

export interface DiscoverEvent extends RunTaskInput {
  readonly stages: string[];
}

export interface DiscoverDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly s3: S3Client;
  readonly now?: () => Date;
}

const PUT_CONCURRENCY = 10;

export const SKIP_REASONS = {
  terminated: (state: string) => `instance is ${state}`,
  stopping: 'instance is stopping: it can be neither patched nor started until it is stopped',
  otherState: (state: string) => `instance is ${state}: only running and stopped instances are patched`,
  notManaged: 'not managed by SSM: no agent registration (check the instance profile and the agent)',
  notOnline: (ping: string) => `SSM agent not online (PingStatus ${ping})`,
  noVolume: 'no EBS volume to snapshot',
  volumeNotReady: (blockers: readonly string[]) => `EBS volume cannot be snapshotted: ${blockers.join('; ')}`,
} as const;

/**
 * Finds the run's instances, decides which can be patched (the others are skipped with a reason),
 * records each target's readiness, splits the targets into batches and writes run.json and one
 * BatchDocument per batch. A dry run writes run.json only: it keeps the targets that are not ready
 * (so the report can say why) and plans no batch, since nothing will be processed.
 */
export async function discover(event: DiscoverEvent, deps: DiscoverDeps): Promise<DiscoverOutput> {
  const now = deps.now ?? (() => new Date());
  const { runId, bucket, config } = event;

  const instances = await describeInstances(deps.ec2, config.targetTags, config.instanceIds);
  const live = instances.filter((i) => !['terminated', 'shutting-down'].includes(stateOf(i)));
  const ssmInfo = await describeInstanceInformation(deps.ssm, live.map((i) => i.InstanceId!));

  const skipped: SkippedInstance[] = [];
  const candidates: Instance[] = [];
  for (const instance of instances) {
    const reason = skipReason(stateOf(instance), ssmInfo.get(instance.InstanceId!), instance);
    if (reason) skipped.push({ instanceId: instance.InstanceId!, name: tag(instance, 'Name'), state: stateOf(instance), reason });
    else candidates.push(instance);
  }
  // Only the candidates' volumes: the call is cheap, and a skipped instance needs no readiness.
  const volumes = await describeVolumes(deps.ec2, candidates.flatMap(volumeIds));

  const targets: TargetInstance[] = [];
  for (const instance of candidates) {
    const id = instance.InstanceId!;
    const state = stateOf(instance);
    const name = tag(instance, 'Name');
    const info = ssmInfo.get(id);
    const readiness = readinessOf({ state, agentVersion: info?.AgentVersion, volumeIds: volumeIds(instance), volumes });
    if (!readiness.ready && !config.dryRun) {
      skipped.push({ instanceId: id, name, state, reason: SKIP_REASONS.volumeNotReady(readiness.blockers) });
      continue;
    }
    targets.push({
      instanceId: id,
      name,
      platform: platformOf(instance),
      initialState: state,
      application: tag(instance, config.applicationTagKey),
      owner: tag(instance, config.ownerTagKey),
      ssm: {
        managed: true,
        ...(info?.PingStatus ? { pingStatus: info.PingStatus } : {}),
        ...(info?.AgentVersion ? { agentVersion: info.AgentVersion } : {}),
        ...(info?.PlatformName ? { platformName: info.PlatformName } : {}),
      },
      volumeIds: volumeIds(instance),
      readiness,
    });
  }

  const groups = config.dryRun ? [] : chunk(targets, config.batchSize);
  const batches = groups.map((group, index) => ({ batchId: makeBatchId(index), instanceIds: group.map((t) => t.instanceId) }));
  const batchOf = new Map(batches.flatMap((b) => b.instanceIds.map((id) => [id, b.batchId] as const)));
  const createdAt = now().toISOString();

  const batchDocs: BatchDocument[] = batches.map((b) => ({
    runId,
    batchId: b.batchId,
    instanceIds: b.instanceIds,
    instances: Object.fromEntries(b.instanceIds.map((id) => [id, { status: 'active' as const, stages: {} }])),
    updatedAt: createdAt,
  }));
  await mapLimit(batchDocs, PUT_CONCURRENCY, (doc) => putJson(deps.s3, bucket, batchKey(runId, doc.batchId), doc));

  // run.json last: its presence says discover finished (restore and report read it).
  const run: RunDocument = {
    runId,
    createdAt,
    config,
    stages: event.stages,
    targets: targets.map((t) => (batchOf.has(t.instanceId) ? { ...t, batchId: batchOf.get(t.instanceId) } : t)),
    skipped,
    batches,
  };
  await putJson(deps.s3, bucket, runDocumentKey(runId), run);

  const output: DiscoverOutput = {
    matched: instances.length,
    targets: targets.length,
    skipped: skipped.length,
    batches: batches.map((b) => b.batchId),
  };
  const notReady = targets.filter((t) => t.readiness && !t.readiness.ready).length;
  logger.info('discovered', { runId, dryRun: config.dryRun, ...output, notReady, skippedInstances: skipped });
  return output;
}

function skipReason(state: string, info: InstanceInformation | undefined, instance: Instance): string | undefined {
  if (state === 'terminated' || state === 'shutting-down') return SKIP_REASONS.terminated(state);
  if (state === 'stopping') return SKIP_REASONS.stopping;
  if (state !== 'running' && state !== 'stopped') return SKIP_REASONS.otherState(state);
  if (!info) return SKIP_REASONS.notManaged;
  // A stopped instance shows ConnectionLost; it is started and waited for at power-on.
  if (state === 'running' && info.PingStatus !== 'Online') return SKIP_REASONS.notOnline(info.PingStatus ?? 'unknown');
  if (volumeIds(instance).length === 0) return SKIP_REASONS.noVolume;
  return undefined;
}
