import { DescribeInstancesCommand, DescribeVolumesCommand, EC2Client, Instance, Volume } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { DescribeInstanceInformationCommand, InstanceInformation, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { discover, DiscoverEvent } from '../../../lambda/discover/discover';
import { compareVersions, MIN_AGENT_VERSION } from '../../../lambda/discover/readiness';
import { BatchDocument, RunConfig, RunDocument } from '../../../lambda/shared/types';
import { testConfig } from '../../helpers/fixtures';
import { mockS3Memory } from '../../helpers/s3-memory';

const ec2 = mockClient(EC2Client);
const ssm = mockClient(SSMClient);
const { bucket } = mockS3Memory(ec2, ssm);
const NOW = new Date('2024-06-01T10:00:00Z');

const CONFIG = testConfig({ targetTags: { PatchGroup: ['web', 'api'], Env: ['prod'] } });
const STAGES = ['agent-update', 'pre-inventory', 'patch', 'post-inventory', 'compare', 'failed-check'];

const event = (config: Partial<RunConfig> = {}): DiscoverEvent => ({ runId: 'run-1', bucket: 'b', config: { ...CONFIG, ...config }, stages: STAGES });
const deps = () => ({ ec2: new EC2Client({}), ssm: new SSMClient({}), s3: new S3Client({}), now: () => NOW });

const id = (n: number): string => `i-${n.toString(16).padStart(17, '0')}`;

function instance(n: number, over: Partial<Instance> & { state?: string } = {}): Instance {
  const { state = 'running', ...rest } = over;
  return {
    InstanceId: id(n),
    State: { Name: state as never },
    Tags: [
      { Key: 'Name', Value: `web-${n}` },
      { Key: 'Application', Value: 'shop' },
      { Key: 'Owner', Value: 'ops@example.com' },
    ],
    BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeId: `vol-${n}` } }],
    ...rest,
  };
}

const info = (n: number, over: Partial<InstanceInformation> = {}): InstanceInformation => ({
  InstanceId: id(n),
  PingStatus: 'Online',
  AgentVersion: '3.3.0.0',
  PlatformName: 'Amazon Linux',
  ...over,
});

/** DescribeInstanceInformation answers for the ids in its filter, from a table. */
function ssmAnswers(table: InstanceInformation[]): void {
  ssm.on(DescribeInstanceInformationCommand).callsFake((input: { Filters?: { Key: string; Values: string[] }[] }) => {
    const ids = input.Filters?.find((f) => f.Key === 'InstanceIds')?.Values ?? [];
    return { InstanceInformationList: table.filter((i) => ids.includes(i.InstanceId!)) };
  });
}

type VolumeFilterInput = { Filters?: { Name: string; Values: string[] }[]; VolumeIds?: string[]; NextToken?: string };
const filteredVolumeIds = (input: VolumeFilterInput): string[] => input.Filters?.find((f) => f.Name === 'volume-id')?.Values ?? [];

/**
 * DescribeVolumes answers for the ids in its volume-id filter: in-use unless the table says otherwise;
 * an id mapped to null does not exist (a filter simply does not match it).
 */
function volumeAnswers(table: Record<string, Partial<Volume> | null> = {}): void {
  ec2.on(DescribeVolumesCommand).callsFake((input: VolumeFilterInput) => ({
    Volumes: filteredVolumeIds(input)
      .filter((v) => table[v] !== null)
      .map((v) => ({ VolumeId: v, State: 'in-use', Encrypted: false, ...table[v] })),
  }));
}

const AGENT_NOTE = `agent 3.3.0.0 < ${MIN_AGENT_VERSION}: agent-update updates it first`;

// After mockS3Memory's reset: every volume exists and is in use unless a test says otherwise.
beforeEach(() => volumeAnswers());

describe('discover', () => {
  test('filters by tag (one filter per key, several values) and records platform, tags, volumes and SSM state', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        { Instances: [instance(1, { Platform: 'windows' as never, BlockDeviceMappings: [{ Ebs: { VolumeId: 'vol-a' } }, { Ebs: { VolumeId: 'vol-b' } }] })] },
        { Instances: [instance(2, { state: 'stopped' })] },
      ],
    });
    ssmAnswers([info(1, { PlatformName: 'Microsoft Windows Server 2022' }), info(2, { PingStatus: 'ConnectionLost' })]);

    const out = await discover(event(), deps());

    expect(out).toEqual({ matched: 2, targets: 2, skipped: 0, batches: ['b000'] });
    expect(ec2).toHaveReceivedCommandWith(DescribeInstancesCommand, {
      Filters: [
        { Name: 'tag:PatchGroup', Values: ['web', 'api'] },
        { Name: 'tag:Env', Values: ['prod'] },
      ],
    });
    const run = bucket.json<RunDocument>('runs/run-1/run.json');
    expect(run).toMatchObject({ runId: 'run-1', createdAt: NOW.toISOString(), stages: STAGES, skipped: [] });
    expect(run.targets).toEqual([
      {
        instanceId: id(1),
        name: 'web-1',
        platform: 'Windows',
        initialState: 'running',
        application: 'shop',
        owner: 'ops@example.com',
        ssm: { managed: true, pingStatus: 'Online', agentVersion: '3.3.0.0', platformName: 'Microsoft Windows Server 2022' },
        volumeIds: ['vol-a', 'vol-b'],
        batchId: 'b000',
        readiness: {
          ready: true,
          summary: AGENT_NOTE,
          blockers: [],
          notes: [AGENT_NOTE],
          agentVersion: '3.3.0.0',
          agentOutdated: true,
          volumesReady: 2,
          encryptedVolumes: 0,
        },
      },
      expect.objectContaining({ instanceId: id(2), platform: 'Linux', initialState: 'stopped', ssm: expect.objectContaining({ pingStatus: 'ConnectionLost' }) }),
    ]);
    expect(bucket.json<BatchDocument>('runs/run-1/batches/b000.json')).toEqual({
      runId: 'run-1',
      batchId: 'b000',
      instanceIds: [id(1), id(2)],
      instances: { [id(1)]: { status: 'active', stages: {} }, [id(2)]: { status: 'active', stages: {} } },
      updatedAt: NOW.toISOString(),
    });
  });

  test('adds an instance-id filter when instance ids are given', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    ssmAnswers([]);
    await discover(event({ targetTags: {}, instanceIds: [id(1), id(2)] }), deps());
    expect(ec2).toHaveReceivedCommandWith(DescribeInstancesCommand, { Filters: [{ Name: 'instance-id', Values: [id(1), id(2)] }] });
  });

  test('follows NextToken across pages of DescribeInstances and DescribeInstanceInformation', async () => {
    // Pages keyed by the NextToken they answer (the paginator reuses its input object, so tokens are recorded at call time).
    const ec2Pages: Record<string, { Reservations: { Instances: Instance[] }[]; NextToken?: string }> = {
      '': { Reservations: [{ Instances: [instance(1), instance(2)] }], NextToken: 'p2' },
      p2: { Reservations: [{ Instances: [instance(3)] }], NextToken: 'p3' },
      p3: { Reservations: [{ Instances: [instance(4)] }] },
    };
    const ssmPages: Record<string, { InstanceInformationList: InstanceInformation[]; NextToken?: string }> = {
      '': { InstanceInformationList: [info(1)], NextToken: 's2' },
      s2: { InstanceInformationList: [info(2), info(3)], NextToken: 's3' },
      s3: { InstanceInformationList: [info(4)] },
    };
    const ec2Tokens: string[] = [];
    const ssmTokens: string[] = [];
    ec2.on(DescribeInstancesCommand).callsFake((input: { NextToken?: string }) => {
      ec2Tokens.push(input.NextToken ?? '');
      return ec2Pages[input.NextToken ?? ''];
    });
    ssm.on(DescribeInstanceInformationCommand).callsFake((input: { NextToken?: string }) => {
      ssmTokens.push(input.NextToken ?? '');
      return ssmPages[input.NextToken ?? ''];
    });

    const out = await discover(event(), deps());

    expect(out).toMatchObject({ matched: 4, targets: 4, skipped: 0 });
    expect(ec2Tokens).toEqual(['', 'p2', 'p3']);
    expect(ssmTokens).toEqual(['', 's2', 's3']);
    expect(bucket.json<RunDocument>('runs/run-1/run.json').targets.map((t) => t.ssm.pingStatus)).toEqual(['Online', 'Online', 'Online', 'Online']);
  });

  test('splits 120 targets into batches of 50, 50 and 20; asks SSM about 50 ids at a time', async () => {
    const all = Array.from({ length: 120 }, (_, i) => instance(i + 1));
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: all }] });
    ssmAnswers(all.map((_, i) => info(i + 1)));

    const out = await discover(event(), deps());

    expect(out).toEqual({ matched: 120, targets: 120, skipped: 0, batches: ['b000', 'b001', 'b002'] });
    expect(ssm).toHaveReceivedCommandTimes(DescribeInstanceInformationCommand, 3);
    for (const call of ssm.commandCalls(DescribeInstanceInformationCommand)) {
      expect(call.args[0].input.Filters?.[0].Values?.length).toBeLessThanOrEqual(50);
    }
    const sizes = ['b000', 'b001', 'b002'].map((b) => bucket.json<BatchDocument>(`runs/run-1/batches/${b}.json`).instanceIds.length);
    expect(sizes).toEqual([50, 50, 20]);
    const run = bucket.json<RunDocument>('runs/run-1/run.json');
    expect(run.batches.map((b) => b.instanceIds.length)).toEqual([50, 50, 20]);
    expect(run.targets[119].batchId).toBe('b002');
  });

  test('honours config.batchSize', async () => {
    const all = Array.from({ length: 7 }, (_, i) => instance(i + 1));
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: all }] });
    ssmAnswers(all.map((_, i) => info(i + 1)));
    expect((await discover(event({ batchSize: 3 }), deps())).batches).toEqual(['b000', 'b001', 'b002']);
  });

  test('skips terminated, shutting-down, stopping, unmanaged, offline and volume-less instances, with the reason', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            instance(1),
            instance(2, { state: 'terminated' }),
            instance(3, { state: 'shutting-down' }),
            instance(4, { state: 'stopping' }),
            instance(5),
            instance(6),
            instance(7, { BlockDeviceMappings: [] }),
            instance(8, { state: 'stopped' }),
          ],
        },
      ],
    });
    ssmAnswers([info(1), info(6, { PingStatus: 'ConnectionLost' }), info(7), info(4)]);

    const out = await discover(event(), deps());

    expect(out).toEqual({ matched: 8, targets: 1, skipped: 7, batches: ['b000'] });
    const run = bucket.json<RunDocument>('runs/run-1/run.json');
    expect(run.targets.map((t) => t.instanceId)).toEqual([id(1)]);
    const reasons = Object.fromEntries(run.skipped.map((s) => [s.instanceId, s.reason]));
    expect(reasons).toEqual({
      [id(2)]: 'instance is terminated',
      [id(3)]: 'instance is shutting-down',
      [id(4)]: expect.stringMatching(/^instance is stopping/),
      [id(5)]: 'not managed by SSM: no agent registration (check the instance profile and the agent)',
      [id(6)]: 'SSM agent not online (PingStatus ConnectionLost)',
      [id(7)]: 'no EBS volume to snapshot',
      [id(8)]: 'not managed by SSM: no agent registration (check the instance profile and the agent)',
    });
    expect(run.skipped.find((s) => s.instanceId === id(2))).toEqual({ instanceId: id(2), name: 'web-2', state: 'terminated', reason: 'instance is terminated' });
    // Terminated instances are not even asked about.
    const asked = ssm.commandCalls(DescribeInstanceInformationCommand).flatMap((c) => c.args[0].input.Filters?.[0].Values ?? []);
    expect(asked).not.toContain(id(2));
  });

  test('zero matching instances: no batches, run.json still written, no error', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    ssmAnswers([]);

    const out = await discover(event(), deps());

    expect(out).toEqual({ matched: 0, targets: 0, skipped: 0, batches: [] });
    expect(ssm).toHaveReceivedCommandTimes(DescribeInstanceInformationCommand, 0);
    expect(ec2).toHaveReceivedCommandTimes(DescribeVolumesCommand, 0);
    expect(bucket.json<RunDocument>('runs/run-1/run.json')).toMatchObject({ runId: 'run-1', targets: [], skipped: [], batches: [] });
    expect(bucket.list('runs/run-1/batches/')).toEqual([]);
  });

  test('asks DescribeVolumes about the candidates\' volumes through a volume-id filter, 200 ids per call', async () => {
    const all = Array.from({ length: 250 }, (_, i) => instance(i + 1));
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [...all, instance(999, { state: 'terminated' })] }] });
    ssmAnswers(all.map((_, i) => info(i + 1)));

    const out = await discover(event(), deps());

    expect(out).toMatchObject({ matched: 251, targets: 250, skipped: 1 });
    const calls = ec2.commandCalls(DescribeVolumesCommand).map((c) => c.args[0].input as VolumeFilterInput);
    expect(calls.map((c) => filteredVolumeIds(c).length)).toEqual([200, 50]);
    for (const c of calls) {
      // A filter, never VolumeIds: one stale id would fail the whole VolumeIds call with InvalidVolume.NotFound.
      expect(c.VolumeIds).toBeUndefined();
      expect(c.Filters).toEqual([{ Name: 'volume-id', Values: expect.any(Array) }]);
    }
    const asked = calls.flatMap(filteredVolumeIds);
    expect(new Set(asked).size).toBe(250);
    expect(asked).not.toContain('vol-999');
  });

  test('follows NextToken across pages of DescribeVolumes', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance(1), instance(2)] }] });
    ssmAnswers([info(1), info(2)]);
    const tokens: string[] = [];
    ec2.on(DescribeVolumesCommand).callsFake((input: VolumeFilterInput) => {
      tokens.push(input.NextToken ?? '');
      return input.NextToken
        ? { Volumes: [{ VolumeId: 'vol-2', State: 'in-use' }] }
        : { Volumes: [{ VolumeId: 'vol-1', State: 'in-use' }], NextToken: 'v2' };
    });

    const out = await discover(event(), deps());

    expect(tokens).toEqual(['', 'v2']);
    expect(out).toMatchObject({ targets: 2, skipped: 0 });
  });

  test('a normal run skips an instance whose volume is in state error or gone, with the reason', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [{ Instances: [instance(1), instance(2), instance(3, { BlockDeviceMappings: [{ Ebs: { VolumeId: 'vol-3a' } }, { Ebs: { VolumeId: 'vol-3b' } }] })] }],
    });
    ssmAnswers([info(1), info(2), info(3)]);
    volumeAnswers({ 'vol-2': { State: 'error' }, 'vol-3b': null });

    const out = await discover(event(), deps());

    expect(out).toEqual({ matched: 3, targets: 1, skipped: 2, batches: ['b000'] });
    const run = bucket.json<RunDocument>('runs/run-1/run.json');
    expect(run.targets.map((t) => t.instanceId)).toEqual([id(1)]);
    expect(run.skipped).toEqual([
      { instanceId: id(2), name: 'web-2', state: 'running', reason: 'EBS volume cannot be snapshotted: volume vol-2 is in state error' },
      { instanceId: id(3), name: 'web-3', state: 'running', reason: 'EBS volume cannot be snapshotted: volume vol-3b not found' },
    ]);
    expect(bucket.json<BatchDocument>('runs/run-1/batches/b000.json').instanceIds).toEqual([id(1)]);
  });

  test('a dry run keeps a target whose volume is in error as not ready, and writes no batch document', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance(1), instance(2), instance(3, { state: 'terminated' })] }] });
    ssmAnswers([info(1, { AgentVersion: '3.3.2746.0' }), info(2, { AgentVersion: '3.3.2746.0' })]);
    volumeAnswers({ 'vol-2': { State: 'error' } });

    const out = await discover(event({ dryRun: true }), deps());

    expect(out).toEqual({ matched: 3, targets: 2, skipped: 1, batches: [] });
    const run = bucket.json<RunDocument>('runs/run-1/run.json');
    expect(run.batches).toEqual([]);
    expect(run.skipped.map((s) => s.instanceId)).toEqual([id(3)]);
    const [one, two] = run.targets;
    expect(one.batchId).toBeUndefined();
    expect(one.readiness).toMatchObject({ ready: true, summary: 'ready', blockers: [], agentOutdated: false, volumesReady: 1 });
    expect(two.readiness).toMatchObject({
      ready: false,
      summary: 'not ready: volume vol-2 is in state error',
      blockers: ['volume vol-2 is in state error'],
      volumesReady: 0,
    });
    expect(bucket.list('runs/run-1/batches/')).toEqual([]);
  });

  test('readiness: a stopped instance would be started, an old agent is flagged (not a blocker), encrypted volumes are noted', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            instance(1, { state: 'stopped' }),
            instance(2, { BlockDeviceMappings: [{ Ebs: { VolumeId: 'vol-2a' } }, { Ebs: { VolumeId: 'vol-2b' } }] }),
            instance(3),
          ],
        },
      ],
    });
    ssmAnswers([
      info(1, { PingStatus: 'ConnectionLost', AgentVersion: '3.2.1' }),
      info(2, { AgentVersion: '3.3.2746.1' }),
      info(3, { AgentVersion: undefined }),
    ]);
    volumeAnswers({ 'vol-2b': { Encrypted: true } });

    await discover(event(), deps());

    const readiness = Object.fromEntries(bucket.json<RunDocument>('runs/run-1/run.json').targets.map((t) => [t.instanceId, t.readiness]));
    expect(readiness[id(1)]).toEqual({
      ready: true,
      summary: 'stopped: would be started; SSM online state is checked after start; agent 3.2.1 < 3.3.2746.0: agent-update updates it first',
      blockers: [],
      notes: ['stopped: would be started; SSM online state is checked after start', 'agent 3.2.1 < 3.3.2746.0: agent-update updates it first'],
      agentVersion: '3.2.1',
      agentOutdated: true,
      volumesReady: 1,
      encryptedVolumes: 0,
    });
    expect(readiness[id(2)]).toMatchObject({ ready: true, summary: 'encrypted volumes: vol-2b', agentOutdated: false, agentVersion: '3.3.2746.1', volumesReady: 2, encryptedVolumes: 1 });
    expect(readiness[id(3)]).toMatchObject({ ready: true, summary: 'agent version unknown', agentOutdated: false });
    expect(readiness[id(3)]).not.toHaveProperty('agentVersion');
  });

  test('compareVersions compares dotted numbers, not strings', () => {
    expect(compareVersions('3.2.1', MIN_AGENT_VERSION)).toBe(-1);
    expect(compareVersions('3.3.2746.0', MIN_AGENT_VERSION)).toBe(0);
    expect(compareVersions('3.3.10000.0', MIN_AGENT_VERSION)).toBe(1);
    expect(compareVersions('3.10.0.0', MIN_AGENT_VERSION)).toBe(1);
    expect(compareVersions('3.3', '3.3.0.0')).toBe(0);
  });

  test('an AWS error fails the task (the workflow catches it and restores)', async () => {
    ec2.on(DescribeInstancesCommand).rejects(new Error('UnauthorizedOperation'));
    await expect(discover(event(), deps())).rejects.toThrow('UnauthorizedOperation');
    expect(bucket.has('runs/run-1/run.json')).toBe(false);
  });
});
