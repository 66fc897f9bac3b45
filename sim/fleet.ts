import { CreateTagsCommand, DescribeInstancesCommand, EC2Client, RunInstancesCommand, StopInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { LinuxPackage, PackageState } from './agents';
import { DEFAULT_DURATIONS, Fault, InstanceSpec, prng, Scenario } from './scenario';

export interface SimInstance {
  readonly index: number;
  readonly name: string;
  readonly platform: 'Linux' | 'Windows';
  readonly family: 'dpkg' | 'rpm' | 'windows';
  readonly initialState: 'running' | 'stopped';
  readonly tags: Record<string, string>;
  readonly packages: PackageState;
  instanceId: string;
  volumeIds: string[];
  instanceDir?: string;
}

const AMI = { windows: 'ami-b7e93bce', rpm: 'ami-04681a1dbd79675a5', dpkg: 'ami-785db401' } as const;
const RPM_BASE = ['bash', 'glibc', 'openssl-libs', 'openssh-server', 'curl', 'systemd', 'python3', 'sudo', 'tzdata', 'vim-minimal', 'kernel', 'amazon-ssm-agent'];
const DEB_BASE = ['bash', 'libc6', 'libssl3', 'openssh-server', 'curl', 'systemd', 'python3', 'sudo', 'tzdata', 'vim', 'linux-image-aws', 'amazon-ssm-agent'];

/** Builds the fleet model from the scenario: same seed, same fleet. */
export function buildFleet(s: Scenario, defaultTags: Record<string, string>): SimInstance[] {
  const rnd = prng(s.seed ?? 1);
  const specs: InstanceSpec[] = [...(s.fleet ?? [])];
  const n = Math.max(s.instances ?? specs.length ?? 0, specs.length);
  const apps = s.apps?.length ? s.apps : ['billing', 'web', 'reporting'];
  const owners = s.owners?.length ? s.owners : ['team-a@example.com', 'team-b@example.com'];
  const windowsCount = Math.round(n * (s.windows ?? 0.5));
  const stoppedCount = Math.round(n * (s.stopped ?? 0.33));
  const out: SimInstance[] = [];
  for (let i = 0; i < n; i++) {
    const spec = specs[i] ?? {};
    // Spread Windows and stopped instances over the fleet deterministically.
    const platform = spec.platform ?? ((i * 5 + 1) % n < windowsCount ? 'Windows' : 'Linux');
    const family: SimInstance['family'] = platform === 'Windows' ? 'windows' : spec.family ?? (rnd() < 0.5 ? 'rpm' : 'dpkg');
    const state = spec.state ?? ((i * 7 + 3) % n < stoppedCount ? 'stopped' : 'running');
    const application = spec.application ?? apps[i % apps.length];
    const owner = spec.owner ?? owners[i % owners.length];
    const name = spec.name ?? `sim-${platform === 'Windows' ? 'win' : family}-${String(i + 1).padStart(3, '0')}`;
    const tags = { ...defaultTags, ...(s.tags ?? {}), Name: name, Application: application, Owner: owner, ...(spec.tags ?? {}) };
    out.push({ index: i, name, platform, family, initialState: state, tags, packages: packageState(family, rnd, spec.updates), instanceId: '', volumeIds: [] });
  }
  return out;
}

function packageState(family: SimInstance['family'], rnd: () => number, updates?: number): PackageState {
  const base = family === 'dpkg' ? DEB_BASE : family === 'rpm' ? RPM_BASE : [];
  const installed = Math.floor(Date.UTC(2024, 0, 1) / 1000);
  const packages: LinuxPackage[] =
    family === 'windows'
      ? Array.from({ length: 6 }, (_, k) => ({ name: `KB50${String(30000 + k * 17).padStart(5, '0')}`, version: `KB50${String(30000 + k * 17).padStart(5, '0')}`, release: 'Security Update', arch: 'x64', installTime: installed + k * 86400 }))
      : base.map((name, k) => ({ name, version: `${1 + (k % 4)}.${k}.${Math.floor(rnd() * 10)}`, release: family === 'rpm' ? `1.amzn2023` : `1ubuntu0.${k}`, arch: 'x86_64', installTime: installed + k * 3600 }));
  const count = updates ?? 1 + Math.floor(rnd() * 3);
  const upd: PackageState['updates'] = {};
  if (family === 'windows') {
    for (let k = 0; k < count; k++) upd[`KB50${String(41000 + k * 13).padStart(5, '0')}`] = { version: `KB50${String(41000 + k * 13).padStart(5, '0')}`, release: 'Security Update' };
  } else {
    const pool = packages.filter((p) => p.name !== 'amazon-ssm-agent');
    for (let k = 0; k < count && pool.length; k++) {
      const p = pool.splice(Math.floor(rnd() * pool.length), 1)[0];
      upd[p.name] = { version: p.version.replace(/\d+$/, (d) => String(Number(d) + 1)), release: p.release };
    }
  }
  return { family: family === 'windows' ? 'rpm' : family, packages, updates: upd, rebootRequired: false, latestAgent: '3.3.9999.0' };
}

/**
 * Creates the fleet in moto (direct client: fleet set-up is not pipeline traffic): one RunInstances
 * per image with MinCount = MaxCount, then one CreateTags per distinct tag (only Name is per
 * instance). One call per instance took minutes for a few hundred instances.
 */
export async function createFleetInMoto(ec2: EC2Client, fleet: SimInstance[]): Promise<void> {
  const byFamily = new Map<SimInstance['family'], SimInstance[]>();
  for (const inst of fleet) byFamily.set(inst.family, [...(byFamily.get(inst.family) ?? []), inst]);
  for (const [family, members] of byFamily) {
    const res = await ec2.send(new RunInstancesCommand({ ImageId: AMI[family], MinCount: members.length, MaxCount: members.length, InstanceType: 't3.medium' }));
    const ids = (res.Instances ?? []).map((i) => i.InstanceId!);
    if (ids.length !== members.length) throw new Error(`RunInstances for ${family} created ${ids.length} instances, ${members.length} asked`);
    members.forEach((inst, k) => (inst.instanceId = ids[k]));
  }
  const byTag = new Map<string, { Key: string; Value: string; ids: string[] }>();
  for (const inst of fleet) {
    for (const [Key, Value] of Object.entries(inst.tags)) {
      const k = JSON.stringify([Key, Value]);
      const entry = byTag.get(k) ?? { Key, Value, ids: [] };
      entry.ids.push(inst.instanceId);
      byTag.set(k, entry);
    }
  }
  const queue = [...byTag.values()];
  const worker = async (): Promise<void> => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      for (let i = 0; i < t.ids.length; i += 500) {
        await ec2.send(new CreateTagsCommand({ Resources: t.ids.slice(i, i + 500), Tags: [{ Key: t.Key, Value: t.Value }] }));
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  const stopped = fleet.filter((i) => i.initialState === 'stopped').map((i) => i.instanceId);
  if (stopped.length) await ec2.send(new StopInstancesCommand({ InstanceIds: stopped }));
  const desc = await ec2.send(new DescribeInstancesCommand({ InstanceIds: fleet.map((i) => i.instanceId) }));
  const byId = new Map(fleet.map((f) => [f.instanceId, f]));
  for (const r of desc.Reservations ?? []) {
    for (const i of r.Instances ?? []) {
      const inst = byId.get(i.InstanceId ?? '');
      if (inst) inst.volumeIds = (i.BlockDeviceMappings ?? []).map((b) => b.Ebs?.VolumeId ?? '').filter(Boolean);
    }
  }
}

export async function ec2States(ec2: EC2Client, ids: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!ids.length) return out;
  const desc = await ec2.send(new DescribeInstancesCommand({ InstanceIds: ids }));
  for (const r of desc.Reservations ?? []) for (const i of r.Instances ?? []) out.set(i.InstanceId!, i.State?.Name ?? 'unknown');
  return out;
}

export const terminate = (ec2: EC2Client, id: string) => ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));

/** Resolves a fault's instance reference (index or name) to the fleet instance. */
export function faultTarget(fleet: SimInstance[], ref: number | string): SimInstance {
  const inst = typeof ref === 'number' ? fleet[ref] : fleet.find((i) => i.name === ref || i.instanceId === ref);
  if (!inst) throw new Error(`fault refers to instance ${JSON.stringify(ref)}, which is not in the fleet of ${fleet.length}`);
  return inst;
}

export function faultsOf(fleet: SimInstance[], faults: readonly Fault[], inst: SimInstance): Fault[] {
  return faults.filter((f) => f.type !== 'throttle' && faultTarget(fleet, (f as { instance: number | string }).instance) === inst);
}

/** Seeded stage duration of one instance, +-25 %: independent of the order the work is run in. */
export function stageDuration(seed: number, durations: Record<string, number> | undefined, stage: string, instanceName: string): number {
  const table = { ...DEFAULT_DURATIONS, ...(durations ?? {}) };
  const base = table[stage] ?? table['*'] ?? 30;
  const h = createHash('sha256').update(`${seed}:${stage}:${instanceName}`).digest().readUInt32BE(0) / 2 ** 32;
  return Math.max(1, Math.round(base * (0.75 + h * 0.5)));
}

const q = (s: string): string => `"${s.replace(/\r|\n/g, ' ').replace(/"/g, '""')}"`;
const row = (fields: string[]): string => `${fields.map(q).join(',')}\n`;
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * The Windows documents modelled: what each .ps1 leaves in S3 (the same CSV headers, the same
 * marker), from the instance's simulated hotfix list. PowerShell does not run here.
 */
export async function runWindowsModel(
  s3: S3Client,
  inst: SimInstance,
  params: Record<string, string[]>,
  opts: { fail: boolean; dropMarker: boolean; domain: string; procStat?: string; failedUnits?: string[]; urlFails?: boolean },
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const p = (n: string): string => params[n]?.[0] ?? '';
  const bucket = p('Bucket');
  const stage = p('Stage');
  const startedAt = iso(Date.now());
  const owner = inst.tags[p('OwnerTagKey')] ?? '';
  const app = inst.tags[p('ApplicationTagKey')] ?? '';
  const put = (key: string, body: string, type: string) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: type }));
  const get = async (key: string): Promise<string> => (await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString());
  let status: 'Success' | 'Failed' = 'Success';
  let detail = '';
  const st = inst.packages;
  try {
    if (opts.fail) throw new Error('simulated failure: Windows Update service returned 0x80240022');
    if (stage === 'verify') {
      const v = verifyWindows(inst, p, opts);
      status = v.ok ? 'Success' : 'Failed';
      detail = v.detail;
    } else if (p('Phase') && p('OutputPrefix')) {
      let csv = row(['instance_id', 'owner', 'domain', 'application', 'name', 'version', 'installed_on']);
      for (const k of st.packages) csv += row([inst.instanceId, owner, opts.domain, app, k.release, k.name, iso(k.installTime * 1000)]);
      await put(`${p('OutputPrefix')}${inst.instanceId}.csv`, csv, 'text/csv');
      detail = `${p('Phase')} inventory: ${st.packages.length} hotfixes from Get-HotFix`;
    } else if (p('PrePrefix')) {
      const pre = new Set((await get(`${p('PrePrefix')}${inst.instanceId}.csv`)).split('\n').slice(1).filter(Boolean).map((l) => l.split(',')[5]));
      const post = (await get(`${p('PostPrefix')}${inst.instanceId}.csv`)).split('\n').slice(1).filter(Boolean);
      let csv = row(['instance_id', 'owner', 'domain', 'application', 'name', 'version', 'previous_version', 'installed_on', 'compared_at']);
      let changed = 0;
      for (const line of post) {
        const f = line.split(',').map((x) => x.replace(/^"|"$/g, ''));
        if (pre.has(`"${f[5]}"`)) continue;
        csv += row([inst.instanceId, owner, opts.domain, app, f[4], f[5], '', f[6], iso(Date.now())]);
        changed++;
      }
      await put(`${p('OutputPrefix')}${inst.instanceId}.csv`, csv, 'text/csv');
      detail = `changed=${changed}`;
    } else if (p('OutputPrefix')) {
      let csv = row(['instance_id', 'name', 'version', 'reason', 'reboot_pending', 'checked_at']);
      for (const kb of Object.keys(st.updates)) csv += row([inst.instanceId, 'Security Update', kb, 'security update not installed (Windows Update)', String(st.rebootRequired), iso(Date.now())]);
      await put(`${p('OutputPrefix')}${inst.instanceId}.csv`, csv, 'text/csv');
      detail = `failed=${Object.keys(st.updates).length} rebootPending=${st.rebootRequired}`;
    } else if (stage === 'patch') {
      const kbs = Object.keys(st.updates);
      for (const kb of kbs) st.packages.push({ name: kb, version: kb, release: 'Security Update', arch: 'x64', installTime: Math.floor(Date.now() / 1000) });
      st.updates = {};
      st.rebootRequired = kbs.length > 0;
      detail = `installed=${kbs.length} failed=0 rebootRequired=${st.rebootRequired} manager=WindowsUpdate`;
    } else {
      detail = 'agent 3.3.9999.0 is current (windows)';
    }
  } catch (err) {
    status = 'Failed';
    detail = (err as Error).message;
  }
  if (!opts.dropMarker) {
    const marker = { runId: p('RunId'), stage, instanceId: inst.instanceId, status, startedAt, finishedAt: iso(Date.now()), detail };
    await put(`${p('MarkerPrefix')}${inst.instanceId}.json`, `${JSON.stringify(marker)}\n`, 'application/json');
  }
  return { exitCode: status === 'Success' ? 0 : 1, stdout: `${detail}\n`, stderr: status === 'Failed' ? `${detail}\n` : '' };
}

/** verify.ps1 modelled: LastBootUpTime (the instance's fake /proc/stat btime) after RebootedAfter, services Running, health URL. */
function verifyWindows(inst: SimInstance, p: (n: string) => string, opts: { procStat?: string; failedUnits?: string[]; urlFails?: boolean }): { ok: boolean; detail: string } {
  const after = Math.floor(Date.parse(p('RebootedAfter')) / 1000);
  const btime = Number(/^btime (\d+)$/m.exec(opts.procStat ? readIfExists(opts.procStat) : '')?.[1] ?? NaN);
  if (!Number.isFinite(after)) return { ok: false, detail: `cannot read RebootedAfter ${p('RebootedAfter')}` };
  if (!Number.isFinite(btime)) return { ok: false, detail: 'boot time unknown (LastBootUpTime not readable)' };
  const t = (sec: number): string => iso(sec * 1000);
  if (btime < after) return { ok: false, detail: `did not reboot: boot time ${t(btime)} is before ${t(after)}` };
  const list = (...values: (string | undefined)[]): string[] => [...new Set(values.flatMap((v) => (v ?? '').split(',')).map((x) => x.trim()).filter(Boolean))];
  const services = list(p('ServiceNames'), inst.tags.HealthServices);
  const urls = list(p('HealthUrl'), inst.tags.HealthUrl);
  const checks = [`boot ${t(btime)} after ${t(after)}`];
  let failed = 0;
  for (const svc of services) {
    const down = (opts.failedUnits ?? []).includes(svc);
    if (down) failed++;
    checks.push(`service ${svc} ${down ? 'Stopped' : 'Running'}`);
  }
  for (const url of urls) {
    if (opts.urlFails) failed++;
    checks.push(`url ${url} ${opts.urlFails ? 503 : 200}`);
  }
  if (services.length === 0 && urls.length === 0) checks.push('no application checks configured');
  const detail = checks.join('; ');
  return failed ? { ok: false, detail: `${detail}; ${failed} of ${services.length + urls.length + 1} checks failed` } : { ok: true, detail };
}

function readIfExists(file: string): string {
  try {
    return fs.readFileSync(file, 'utf-8');
  } catch {
    return '';
  }
}
