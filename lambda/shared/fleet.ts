import { EC2Client, Filter, Instance, paginateDescribeInstances, paginateDescribeVolumes, Volume } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { InstanceInformation, paginateDescribeInstanceInformation, SSMClient } from '@aws-sdk/client-ssm';
import { chunk } from './batching';
import { Platform } from './types';

/** An EC2 Filter takes at most 200 values. */
export const FILTER_MAX_VALUES = 200;
/** DescribeInstanceInformation's InstanceIds filter takes at most 50 values. */
export const INSTANCE_INFORMATION_MAX_IDS = 50;
/** Ids per StartInstances / StopInstances / CreateSnapshots-style batch call. */
export const EC2_IDS_PER_CALL = 50;

/** The clients of the Lambdas that act on the fleet and record it in S3; `now` is for tests. */
export interface FleetDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly s3: S3Client;
  readonly now?: () => Date;
}

/**
 * DescribeInstances by tag filters and, when given, an instance-id filter (a filter rather than
 * InstanceIds, so a stale id matches nothing instead of failing the whole call with NotFound).
 */
export async function describeInstances(ec2: EC2Client, tags: Record<string, string[]>, instanceIds: readonly string[]): Promise<Instance[]> {
  const tagFilters: Filter[] = Object.entries(tags).map(([key, values]) => ({ Name: `tag:${key}`, Values: values }));
  const idChunks: (string[] | undefined)[] = instanceIds.length ? chunk(instanceIds, FILTER_MAX_VALUES) : [undefined];
  const found = new Map<string, Instance>();
  for (const ids of idChunks) {
    const Filters = ids ? [...tagFilters, { Name: 'instance-id', Values: ids }] : tagFilters;
    for await (const page of paginateDescribeInstances({ client: ec2, pageSize: 1000 }, { Filters })) {
      for (const reservation of page.Reservations ?? []) {
        for (const instance of reservation.Instances ?? []) if (instance.InstanceId) found.set(instance.InstanceId, instance);
      }
    }
  }
  return [...found.values()];
}

/** The current description of exactly these instances (none for an empty list; absent ids no longer exist). */
export async function describeInstancesById(ec2: EC2Client, instanceIds: readonly string[]): Promise<Map<string, Instance>> {
  if (instanceIds.length === 0) return new Map();
  const instances = await describeInstances(ec2, {}, instanceIds);
  return new Map(instances.map((i) => [i.InstanceId!, i]));
}

/** SSM registration of the given instances (absent = not managed), 50 ids per filter. */
export async function describeInstanceInformation(ssm: SSMClient, instanceIds: readonly string[]): Promise<Map<string, InstanceInformation>> {
  const out = new Map<string, InstanceInformation>();
  for (const ids of chunk(instanceIds, INSTANCE_INFORMATION_MAX_IDS)) {
    const pages = paginateDescribeInstanceInformation(
      { client: ssm, pageSize: INSTANCE_INFORMATION_MAX_IDS },
      { Filters: [{ Key: 'InstanceIds', Values: ids }] },
    );
    for await (const page of pages) {
      for (const info of page.InstanceInformationList ?? []) if (info.InstanceId) out.set(info.InstanceId, info);
    }
  }
  return out;
}

/** DescribeVolumes MaxResults ceiling. */
export const DESCRIBE_VOLUMES_PAGE_SIZE = 500;

/**
 * The given EBS volumes, by id, through a volume-id filter (a filter rather than VolumeIds, so a stale
 * id is simply absent from the result instead of failing the whole call), 200 ids per filter.
 */
export async function describeVolumes(ec2: EC2Client, volumeIds: readonly string[]): Promise<Map<string, Volume>> {
  const out = new Map<string, Volume>();
  for (const ids of chunk([...new Set(volumeIds)], FILTER_MAX_VALUES)) {
    const pages = paginateDescribeVolumes({ client: ec2, pageSize: DESCRIBE_VOLUMES_PAGE_SIZE }, { Filters: [{ Name: 'volume-id', Values: ids }] });
    for await (const page of pages) {
      for (const volume of page.Volumes ?? []) if (volume.VolumeId) out.set(volume.VolumeId, volume);
    }
  }
  return out;
}

export const stateOf = (instance: Instance | undefined): string => instance?.State?.Name ?? 'unknown';

export const tagValue = (instance: Instance, key: string): string => instance.Tags?.find((t) => t.Key === key)?.Value ?? '';

export const platformOf = (instance: Instance): Platform =>
  // The API sends 'windows' (lower case) although the SDK's enum spells it 'Windows'.
  String(instance.Platform ?? '').toLowerCase() === 'windows' || /windows/i.test(instance.PlatformDetails ?? '') ? 'Windows' : 'Linux';

export const volumeIds = (instance: Instance): string[] =>
  (instance.BlockDeviceMappings ?? []).map((m) => m.Ebs?.VolumeId).filter((v): v is string => Boolean(v));

/** Runs `fn` over items with at most `limit` calls in flight, keeping the order of results. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
