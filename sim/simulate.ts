import { EC2Client } from '@aws-sdk/client-ec2';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, CreateBucketCommand as S3CreateBucket } from '@aws-sdk/client-s3';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { prepareInstanceDir, prepareSandbox, readPackageState, runLinuxScript, startImds } from './agents';
import { Activity, ApprovalDesk, ApprovalOutcome, Answer, ApproveMode, describeMode, functionUrlEvent, FunctionUrlEventV2, FunctionUrlResponse, linkOf, parseApproveMode, PendingApproval, serveFunctionUrl, SfnCallbackService } from './approvals';
import { RealDate, SimClock } from './clock';
import { buildFleet, createFleetInMoto, ec2States, faultsOf, runWindowsModel, SimInstance, stageDuration, terminate } from './fleet';
import { CountingProxy, MotoServer, rewriteSnapshotItems, startCountingProxy, startMoto } from './local-aws';
import { Scenario } from './scenario';
import { SsmService } from './ssm-service';
import { ensureTemplate, resolveTemplate, walkStates } from './template';
import { quietNodeVersionSupportWarning } from './warnings';

export interface SimOptions {
  /** Repository root (cdk.out, cdk.json). */
  readonly root?: string;
  readonly scenario?: Scenario;
  /** Execution input; default {} (the deployed defaults). */
  readonly input?: Record<string, unknown>;
  readonly template?: string;
  /** Where report.json, report.csv and the S3 mirror go. Default ./sim-out/<runId>/ */
  readonly outDir?: string;
  readonly runId?: string;
  readonly region?: string;
  /** Progress lines (stage by stage). */
  readonly onProgress?: (line: string) => void;
  readonly log?: (line: string) => void;
  /**
   * Executions run before the main one on the same moto, SSM service and fleet (for example many
   * bad inputs, without a moto per input). Their outcomes are in SimResult.executions.
   */
  readonly executions?: readonly { readonly input: Record<string, unknown>; readonly runId: string }[];
  /**
   * How approval requests are answered: all (default), none, timeout, a list of applications to
   * approve (the others are rejected), prompt (askApproval) or external (the served endpoint only).
   */
  readonly approve?: ApproveMode | string;
  /** --approve prompt: asked when the run waits for nothing but decisions; one answer per group id. */
  readonly askApproval?: (pending: PendingApproval[]) => Promise<Record<string, Answer>>;
  /** external / prompt: real seconds an unanswered request stays open before its simulated timeout may fire (default 600). */
  readonly approvalWaitSeconds?: number;
  /** Called when an approval request waits for a decision (its link opens in a browser while the run lasts). */
  readonly onApprovalRequest?: (p: PendingApproval) => void;
  /** Called with the counts each gate task (a step's action or check) returned for its batch or approval chunk. */
  readonly onGate?: (g: GateReport) => void;
}

/** One gate task's result: the step (the state name before its colon), the batch or chunk, the counts. */
export interface GateReport {
  readonly step: string;
  readonly state: string;
  readonly batch: string;
  readonly done: number;
  readonly failed: number;
  readonly pending: number;
  readonly complete: boolean;
  /** Simulated milliseconds since the start (fmtSim formats them). */
  readonly simulatedMs: number;
}

export interface ExecutionOutcome {
  readonly runId: string;
  readonly input: Record<string, unknown>;
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly error?: { Error?: string; Cause?: string };
}

export interface InstanceOutcome {
  readonly instanceId: string;
  readonly name: string;
  readonly platform: string;
  readonly initialState: string;
  readonly finalState: string;
  readonly status: string;
  readonly failedAt?: string;
  readonly reason?: string;
  readonly stages: Record<string, string>;
}

export interface SimResult {
  readonly runId: string;
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly error?: { Error?: string; Cause?: string };
  readonly outDir: string;
  readonly report: Record<string, unknown> | undefined;
  readonly instances: InstanceOutcome[];
  readonly fleet: SimInstance[];
  readonly metrics: SimMetrics;
  readonly ssmLog: SsmService['log'];
  /** Snapshot id, volume, state, start (simulated ms) per instance id, as moto holds them at the end. */
  readonly snapshots: Map<string, { snapshotId: string; state: string; createdAt: number }[]>;
  readonly notes: string[];
  /** runs/<runId>/run.json as discover wrote it (config, targets), if it did. */
  readonly run?: Record<string, unknown>;
  readonly executions: ExecutionOutcome[];
  /** What sns:publish tasks published (approval requests), with the signed link of the message. */
  readonly notifications: Notification[];
  /** Every approval request of the executions: who answered, how, and how the wait ended. */
  readonly approvals: ApprovalOutcome[];
  /** The approval endpoint's local "function URL" (served while the simulation ran). */
  readonly approvalEndpointUrl?: string;
}

export interface Notification {
  readonly state: string;
  readonly topicArn: string;
  readonly subject: string;
  readonly message: string;
  readonly link?: string;
}

export interface SimMetrics {
  stateTransitions: number;
  historyEvents: number;
  lambdaInvocations: Record<string, number>;
  awsApiCalls: Record<string, number>;
  ssmThrottled: number;
  simulatedSeconds: number;
  wallSeconds: number;
}

const DEFAULT_SCENARIO: Scenario = { instances: 6, stopped: 0.34, windows: 0.5, seed: 1, snapshotSeconds: 120 };
const WAIT_MS = 5;
/** $$.Task.Token in the engine's context; each callback invocation replaces it with a fresh token. */
const TOKEN_PLACEHOLDER = '__PP_SIM_TASK_TOKEN__';
const DEFAULT_REBOOT_SECONDS = 60;

/** Runs the synthesized state machine with the bundled Lambdas against a simulated fleet. */
export async function simulate(options: SimOptions = {}): Promise<SimResult> {
  quietNodeVersionSupportWarning();
  const root = options.root ?? path.resolve(__dirname, '..');
  const scenario = { ...DEFAULT_SCENARIO, ...(options.scenario ?? {}) };
  const region = options.region ?? 'eu-west-1';
  const log = options.log ?? (() => undefined);
  const progress = options.onProgress ?? (() => undefined);
  const runId = options.runId ?? `sim-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${scenario.seed ?? 1}`;
  const outDir = path.resolve(options.outDir ?? path.join(root, 'sim-out', runId));
  const seed = scenario.seed ?? 1;
  const faults = scenario.faults ?? [];
  const mode: ApproveMode = typeof options.approve === 'object' ? options.approve : parseApproveMode(options.approve);
  if (mode.kind === 'prompt' && !options.askApproval) throw new Error('--approve prompt needs an interactive prompt (askApproval)');

  const templateFile = ensureTemplate(root, options.template, log);
  const bucketName = `patch-pipeline-sim-${seed}`;
  const tpl = resolveTemplate(templateFile, region, bucketName);
  const defaults = JSON.parse(fs.readFileSync(path.join(root, 'cdk.json'), 'utf-8')).context?.['patch-pipeline']?.defaults ?? {};
  const targetTags: Record<string, string> = {};
  // The fleet carries the run's target tags (the input's targets.tags, else the deployed defaults), first value of each.
  const inputTags = (options.input?.targets as { tags?: unknown } | undefined)?.tags;
  const runTags = inputTags && typeof inputTags === 'object' && !Array.isArray(inputTags) ? inputTags : defaults.targetTags ?? { PatchGroup: ['default'] };
  for (const [k, v] of Object.entries(runTags as Record<string, unknown>)) {
    const first = Array.isArray(v) ? v[0] : v;
    if (typeof first === 'string') targetTags[k] = first;
  }

  const cleanups: (() => Promise<void>)[] = [];
  const clock = new SimClock();
  let moto: MotoServer | undefined;
  try {
    moto = await startMoto();
    cleanups.push(() => moto!.stop());
    const creds = { accessKeyId: 'testing', secretAccessKey: 'testing' };
    const direct = { region, endpoint: moto.url, credentials: creds };
    const ec2 = new EC2Client(direct);
    const s3direct = new S3Client({ ...direct, forcePathStyle: true });
    await s3direct.send(new S3CreateBucket({ Bucket: bucketName, CreateBucketConfiguration: { LocationConstraint: region as never } }));

    const workRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'pp-sim-'));
    cleanups.push(async () => fs.rmSync(workRoot, { recursive: true, force: true }));
    const fleet = buildFleet(scenario, targetTags);
    await createFleetInMoto(ec2, fleet);
    const byId = new Map(fleet.map((i) => [i.instanceId, i]));
    const faultsFor = (i: SimInstance) => faultsOf(fleet, faults, i);
    const hasFault = (inst: SimInstance, type: string, stage?: string) => faultsFor(inst).some((f) => f.type === type && (stage === undefined || (f as { stage?: string }).stage === stage));
    log(`fleet: ${fleet.length} instances (${fleet.filter((i) => i.platform === 'Windows').length} Windows, ${fleet.filter((i) => i.initialState === 'stopped').length} stopped)`);

    // Snapshots: moto completes them at once; the proxy reports them pending for the simulated
    // snapshot time, and in state error for an instance with the snapshot-fails fault.
    const snapshotMeta = new Map<string, { instanceId: string; createdAt: number }>();
    const volumeOwner = new Map(fleet.flatMap((i) => i.volumeIds.map((v) => [v, i.instanceId] as const)));
    const snapshotMs = (scenario.snapshotSeconds ?? 120) * 1000;
    const snapshotState = (meta: { instanceId: string; createdAt: number }): { status: string; progress: number } => {
      const inst = byId.get(meta.instanceId);
      if (inst && faultsFor(inst).some((f) => f.type === 'snapshot-fails')) return { status: 'error', progress: 0 };
      const elapsed = clock.now() - meta.createdAt;
      return elapsed >= snapshotMs ? { status: 'completed', progress: 100 } : { status: 'pending', progress: Math.floor((elapsed / snapshotMs) * 100) };
    };
    let stateCache: Promise<Map<string, string>> | undefined;
    // Reboots: the agent is offline for rebootSeconds (simulated), then pings again from a new boot.
    const rebootMs = (scenario.rebootSeconds ?? DEFAULT_REBOOT_SECONDS) * 1000;
    const reboots = new Map<string, { requestedAt: number; backAt: number }>();
    const procStatOf = (id: string): string => path.join(workRoot, 'instances', id, 'proc-stat');
    const writeBootTime = (id: string, epochSeconds: number): void => {
      fs.mkdirSync(path.dirname(procStatOf(id)), { recursive: true });
      fs.writeFileSync(procStatOf(id), `cpu  4705 356 584 3699 23 23 0 0 0 0\nintr 0\nctxt 0\nbtime ${epochSeconds}\nprocesses 1\n`);
    };
    const offline = (inst: SimInstance): boolean => {
      const r = reboots.get(inst.instanceId);
      return !!r && (hasFault(inst, 'no-reboot-return') || clock.now() < r.backAt);
    };
    const proxy: CountingProxy = await startCountingProxy(moto.url, (action, params, body) => {
      if (/^(Start|Stop|Reboot|Terminate)Instances$/.test(action)) stateCache = undefined;
      if (action === 'RebootInstances' && !body.includes('<Errors>')) {
        const now = clock.now();
        for (const [k, id] of params) {
          const inst = /^InstanceId\.\d+$/.test(k) ? byId.get(id) : undefined;
          if (!inst) continue;
          reboots.set(id, { requestedAt: now, backAt: now + rebootMs });
          if (!hasFault(inst, 'did-not-reboot')) writeBootTime(id, Math.floor((now + Math.min(rebootMs / 2, 15000)) / 1000));
        }
      }
      if (action === 'CreateSnapshots' || action === 'CreateSnapshot') {
        return rewriteSnapshotItems(body, (item) => {
          const meta = { instanceId: (item.volumeId && volumeOwner.get(item.volumeId)) ?? params.get('InstanceSpecification.InstanceId') ?? '', createdAt: clock.now() };
          snapshotMeta.set(item.snapshotId, meta);
          return snapshotState(meta);
        });
      }
      if (action === 'DescribeSnapshots') {
        return rewriteSnapshotItems(body, (item) => {
          const meta = snapshotMeta.get(item.snapshotId);
          return meta ? snapshotState(meta) : undefined;
        });
      }
      return body;
    });
    cleanups.push(() => proxy.stop());

    const imds = await startImds((id) => byId.get(id)?.tags);
    cleanups.push(() => imds.stop());
    const realDate = fs.existsSync('/usr/bin/date') ? '/usr/bin/date' : '/bin/date';
    const sandbox = prepareSandbox(workRoot, realDate);
    for (const inst of fleet) if (inst.platform === 'Linux') inst.instanceDir = prepareInstanceDir(sandbox, inst.instanceId, inst.packages);
    // Up for twelve days when the run starts; a reboot writes a new btime (verify reads it).
    for (const inst of fleet) writeBootTime(inst.instanceId, Math.floor(clock.now() / 1000) - 12 * 86400);
    const healthEnv = (inst: SimInstance): Record<string, string> => {
      const h = faultsFor(inst).filter((f): f is Extract<typeof f, { type: 'health-fails' }> => f.type === 'health-fails');
      const units = h.map((f) => f.unit).filter((u): u is string => !!u);
      return {
        PP_PROC_STAT: procStatOf(inst.instanceId),
        PP_SIM_OWN_ENDPOINTS: `${imds.base} ${proxy.url}`,
        ...(units.length ? { PP_SIM_FAILED_UNITS: units.join(',') } : {}),
        ...(h.some((f) => !f.unit) ? { PP_SIM_HEALTH_URL_FAILS: '1' } : {}),
      };
    };
    const s3agent = new S3Client({ region, endpoint: proxy.url, credentials: creds, forcePathStyle: true });

    // Power states for the agents' ping, from one DescribeInstances of the whole fleet. moto takes
    // long to describe hundreds of instances, so the answer is kept until a call that changes power
    // states passes the proxy (or the simulation terminates one), and concurrent askers share a call.
    const stateOf = async (id: string): Promise<string | undefined> => {
      if (!stateCache) {
        const pending = ec2States(ec2, fleet.map((i) => i.instanceId));
        stateCache = pending;
        pending.catch(() => {
          if (stateCache === pending) stateCache = undefined;
        });
      }
      return (await stateCache).get(id);
    };
    const stageOf = (p: Record<string, string[]>): string => p.Stage?.[0] ?? '';

    const ssm = new SsmService(
      tpl.documents,
      {
        allInstanceIds: () => fleet.map((i) => i.instanceId),
        describe: (id) => {
          const i = byId.get(id);
          if (!i) return undefined;
          return { platform: i.platform, platformName: i.platform === 'Windows' ? 'Microsoft Windows Server 2022 Datacenter' : i.family === 'rpm' ? 'Amazon Linux' : 'Ubuntu', platformVersion: i.platform === 'Windows' ? '10.0.20348' : i.family === 'rpm' ? '2023' : '22.04', agentVersion: '3.3.2746.0', name: i.name };
        },
        pingStatus: async (id) => {
          const i = byId.get(id);
          const st = await stateOf(id);
          if (!i || !st || st === 'terminated' || st === 'shutting-down') return undefined;
          if (hasFault(i, 'agent-offline')) return 'ConnectionLost';
          if (st === 'running' && offline(i)) return 'ConnectionLost';
          return st === 'running' ? 'Online' : 'ConnectionLost';
        },
        lastPing: (id) => {
          const i = byId.get(id);
          const r = reboots.get(id);
          return i && r && offline(i) ? r.requestedAt : clock.now();
        },
        durationSeconds: (id, cmd) => stageDuration(seed, scenario.durations, stageOf(cmd.parameters), byId.get(id)?.name ?? id),
        onSendCommand: async (cmd) => {
          for (const id of cmd.instanceIds) {
            const i = byId.get(id);
            if (i && hasFault(i, 'terminated', stageOf(cmd.parameters))) {
              await terminate(ec2, id);
              stateCache = undefined;
            }
          }
        },
        execute: async (id, cmd, doc) => {
          const i = byId.get(id)!;
          const stage = stageOf(cmd.parameters);
          const fail = hasFault(i, 'stage-fails', stage);
          const dropMarker = hasFault(i, 'marker-missing', stage);
          const result =
            i.platform === 'Windows'
              ? await runWindowsModel(s3agent, i, cmd.parameters, {
                  fail,
                  dropMarker,
                  domain: 'corp.example.com',
                  procStat: procStatOf(id),
                  failedUnits: faultsFor(i).flatMap((f) => (f.type === 'health-fails' && f.unit ? [f.unit] : [])),
                  urlFails: faultsFor(i).some((f) => f.type === 'health-fails' && !f.unit),
                })
              : await runLinuxScript(
                  { sandbox, instanceDir: i.instanceDir!, instanceId: id, region, hostname: i.name, domain: 'corp.example.com', imdsEndpoint: `${imds.base}/${id}`, s3Endpoint: proxy.url, clockOffsetSeconds: clock.offsetSeconds(), fail, dropMarker, env: healthEnv(i) },
                  cmd,
                  doc,
                  120000,
                );
          if (cmd.outputBucket) {
            const plugin = i.platform === 'Windows' ? 'awsrunPowerShellScript' : 'awsrunShellScript';
            const base = `${cmd.outputPrefix ?? ''}${cmd.outputPrefix && !cmd.outputPrefix.endsWith('/') ? '/' : ''}${cmd.commandId}/${id}/${plugin}/0.${plugin}/`;
            await s3agent.send(new PutObjectCommand({ Bucket: cmd.outputBucket, Key: `${base}stdout`, Body: result.stdout || ' ' }));
            if (result.stderr) await s3agent.send(new PutObjectCommand({ Bucket: cmd.outputBucket, Key: `${base}stderr`, Body: result.stderr }));
          }
          return result;
        },
      },
      () => clock.now(),
      faults.filter((f) => f.type === 'throttle').map((f) => ({ operation: (f as { operation: string }).operation, count: (f as { count: number }).count })),
      Math.max(1, Math.min(os.cpus().length, 4)),
    );
    if (scenario.calendar) {
      const { name, state, nextTransitionTime } = scenario.calendar;
      if (state !== 'OPEN' && state !== 'CLOSED') throw new Error(`scenario calendar ${name}: state must be OPEN or CLOSED, not ${String(state)}`);
      ssm.calendars.set(name, { state, ...(nextTransitionTime ? { nextTransitionTime } : {}) });
    }
    await ssm.start();
    cleanups.push(() => ssm.stop());

    // The approval signing secret (Secrets Manager through SSM's reference path), new every run.
    const secret = randomBytes(32).toString('base64url');
    for (const fn of tpl.functions.values()) {
      const id = fn.environment.APPROVAL_SECRET_ID;
      if (id) ssm.parameters.set(`/aws/reference/secretsmanager/${id}`, { value: secret, type: 'SecureString' });
    }
    const sfnService = new SfnCallbackService();
    await sfnService.start();
    cleanups.push(() => sfnService.stop());
    const activity = new Activity(() => RealDate.now());
    const endpointFn = [...tpl.functions.values()].find((f) => f.name === 'approval-endpoint');
    let desk: ApprovalDesk | undefined;
    let endpointUrl = '';
    if (endpointFn) {
      const served = await serveFunctionUrl((event) =>
        activity.run(async () => {
          const out = (await invokeFn(endpointFn.logicalId, event)) as FunctionUrlResponse;
          if (event.requestContext.http.method === 'POST' && out.statusCode === 200 && event.body && !event.isBase64Encoded) {
            const form = new URLSearchParams(event.body);
            desk?.answeredExternally(form.get('group') ?? '', form.get('run') ?? '', /^approve/.test(form.get('decision') ?? '') ? 'approve' : 'reject');
          }
          return out;
        }),
      );
      cleanups.push(() => served.stop());
      endpointUrl = served.url;
      // The links in the messages point at the served endpoint, so they open in a browser.
      for (const fn of tpl.functions.values()) if ('APPROVAL_ENDPOINT_URL' in fn.environment) fn.environment.APPROVAL_ENDPOINT_URL = endpointUrl;
    }

    // Lambda environment: set BEFORE the bundles are required (their clients are module-level).
    Object.assign(process.env, {
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_SESSION_TOKEN: 'testing',
      AWS_ENDPOINT_URL: proxy.url,
      AWS_ENDPOINT_URL_SSM: ssm.url,
      AWS_ENDPOINT_URL_SFN: sfnService.url,
      AWS_S3_FORCE_PATH_STYLE: 'true',
      AWS_EC2_METADATA_DISABLED: 'true',
      POWERTOOLS_LOG_LEVEL: process.env.PP_SIM_LAMBDA_LOG_LEVEL ?? 'SILENT',
    });
    const lambdaCounts: Record<string, number> = {};
    const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
    const loaded = new Map<string, (event: unknown, ctx: unknown) => Promise<unknown>>();
    const pendingWait = new Map<string, number>();
    const load = (fnId: string) => {
      const cached = loaded.get(fnId);
      if (cached) return cached;
      const fn = tpl.functions.get(fnId)!;
      const [file, exportName] = fn.handler.split('.');
      for (const [k, v] of Object.entries(fn.environment)) process.env[k] = v;
      // A fresh copy per run: a bundle's module-level SDK clients fix their endpoint at the first
      // call, so a bundle cached by an earlier run in this process (jest) would call that run's
      // stopped moto. The bundles require only Node built-ins, so they run from any folder.
      const runCopy = path.join(workRoot, 'lambda', fn.name);
      fs.mkdirSync(runCopy, { recursive: true });
      fs.copyFileSync(path.join(fn.assetDir, `${file}.js`), path.join(runCopy, `${file}.js`));
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require(path.join(runCopy, `${file}.js`)) as Record<string, (e: unknown, c: unknown) => Promise<unknown>>;
      const h = mod[exportName];
      if (typeof h !== 'function') throw new Error(`${fn.assetDir}/${file}.js exports no ${exportName}`);
      loaded.set(fnId, h);
      return h;
    };
    /** One invocation of a bundled function, in-process, with its environment. */
    async function invokeFn(fnId: string, event: unknown, stateName = ''): Promise<unknown> {
      const fn = tpl.functions.get(fnId)!;
      lambdaCounts[fn.name] = (lambdaCounts[fn.name] ?? 0) + 1;
      for (const [k, v] of Object.entries(fn.environment)) process.env[k] = v;
      const h = load(fnId);
      const out = await h(event, { functionName: fn.name, awsRequestId: `sim-${fn.name}-${lambdaCounts[fn.name]}`, getRemainingTimeInMillis: () => 900000 });
      if (process.env.PP_SIM_DEBUG) console.error(`[sim] ${stateName || fn.name} <- ${JSON.stringify(event).slice(0, 300)}\n[sim] ${stateName || fn.name} -> ${JSON.stringify(out).slice(0, 300)}`);
      return out;
    }
    // Each branch (batch, approval group, verify chunk) has its own Wait timeline.
    const waitKey = (input: unknown): string => {
      const o = input as { batchId?: string; groupId?: string } | undefined;
      return o?.batchId ?? o?.groupId ?? 'root';
    };
    const catchUp = async (input: unknown): Promise<void> => {
      const key = waitKey(input);
      const target = pendingWait.get(key);
      if (target !== undefined) {
        pendingWait.delete(key);
        await ssm.advance(target, (ms) => clock.advanceTo(ms));
        stateCache = undefined;
      }
    };
    // A task whose output is a GateState (power-on, snapshot, the stages, reboot, verify, restore).
    const reportGate = (stateName: string, input: unknown, out: unknown): void => {
      if (!options.onGate || !out || typeof out !== 'object') return;
      const g = out as { complete?: unknown; done?: unknown; failed?: unknown; pending?: unknown };
      if (typeof g.complete !== 'boolean' || typeof g.done !== 'number' || typeof g.failed !== 'number' || typeof g.pending !== 'number') return;
      const colon = stateName.indexOf(':');
      const step = colon > 0 ? stateName.slice(0, colon).trim() : stateName;
      options.onGate({ step, state: stateName, batch: waitKey(input), done: g.done, failed: g.failed, pending: g.pending, complete: g.complete, simulatedMs: clock.simulatedMs() });
    };
    const notifications: Notification[] = [];
    desk = new ApprovalDesk({
      mode,
      sfn: sfnService,
      activity,
      simNow: () => clock.now(),
      realNow: () => RealDate.now(),
      advanceTo: async (ms) => {
        await ssm.advance(ms, (t) => clock.advanceTo(t));
        stateCache = undefined;
      },
      decide: async (p, answer, via) => {
        if (!endpointFn) throw new Error('the template has no approval-endpoint function to answer through');
        if (!p.link) throw new Error(`approval ${p.groupId} (${p.application}): the published message carries no link`);
        const u = new URL(p.link);
        const form = new URLSearchParams();
        for (const k of ['id', 'run', 'group', 'exp', 'sig']) form.set(k, u.searchParams.get(k) ?? '');
        form.set('decision', answer);
        for (let attempt = 0; ; attempt++) {
          // What the page's button posts: the signed fields back to the link's own URL.
          const event: FunctionUrlEventV2 = functionUrlEvent(
            {
              method: 'POST',
              url: `${u.pathname}${u.search}`,
              headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': `patch-pipeline-sim (${via}, --approve ${describeMode(mode)})`, origin: u.origin, referer: p.link },
              body: Buffer.from(form.toString(), 'utf-8'),
              sourceIp: '127.0.0.1',
            },
            u.host,
          );
          const out = (await invokeFn(endpointFn.logicalId, event)) as FunctionUrlResponse;
          const title = /<h1>([\s\S]*?)<\/h1>/.exec(out.body ?? '')?.[1] ?? '';
          // "Not ready yet": the wait task has not stored its token yet.
          if (out.statusCode === 409 && /not ready/i.test(title) && attempt < 10) {
            await new Promise((r) => setTimeout(r, 20));
            continue;
          }
          if (out.statusCode !== 200) throw new Error(`the approval endpoint answered ${out.statusCode} (${title}) to ${answer} ${p.application}`);
          return { status: out.statusCode, title };
        }
      },
      ask: options.askApproval,
      externalWaitMs: (options.approvalWaitSeconds ?? 600) * 1000,
      onPending: (p) => {
        progress(`[${fmtSim(clock.simulatedMs())}] approval pending: ${p.application} (${p.instanceIds.length} instance${p.instanceIds.length === 1 ? '' : 's'}, approver ${p.approver || '-'}) ${p.link ?? '(no link)'}`);
        options.onApprovalRequest?.(p);
      },
      onOutcome: (o) => progress(`[${fmtSim(clock.simulatedMs())}] approval ${o.outcome}: ${o.application}${o.via && o.via !== 'timeout' ? ` (${o.answer} via ${o.via})` : ''}`),
    });
    cleanups.unshift(async () => desk?.stopTimer());
    for (const [stateName, fnId] of tpl.taskFunctions) {
      if (tpl.callbackTasks.has(stateName)) {
        // lambda:invoke.waitForTaskToken: the function gets a fresh token, then the task waits for
        // SendTaskSuccess / SendTaskFailure on the local Step Functions service, or times out.
        handlers[stateName] = async (input: unknown) => {
          const { token, result } = sfnService.open();
          const wrapped = input as { FunctionName?: unknown; Payload?: unknown };
          const payload = replaceDeep(wrapped && typeof wrapped === 'object' && 'Payload' in wrapped ? wrapped.Payload : input, TOKEN_PLACEHOLDER, token) as { runId?: string; groupId?: string };
          const pending = await activity.run(async (): Promise<PendingApproval> => {
            await catchUp(payload);
            await invokeFn(fnId, payload, stateName);
            const runOf = String(payload.runId ?? '');
            const group = String(payload.groupId ?? '');
            const rec = JSON.parse((await getText(s3direct, bucketName, `runs/${runOf}/approvals/${group}.json`)) ?? '{}') as { application?: string; approver?: string; instanceIds?: string[]; expiresAt?: string; requestedAt?: string };
            // TimeoutSecondsPath is $.config.approval.timeoutSeconds, which the request used for expiresAt.
            const timeoutSeconds = Math.max(1, Math.round((Date.parse(rec.expiresAt ?? '') - Date.parse(rec.requestedAt ?? '')) / 1000)) || 86400;
            const note = [...notifications].reverse().find((n) => linkOf(n.message, endpointUrl, runOf, group));
            const ids = rec.instanceIds ?? [];
            return {
              runId: runOf,
              groupId: group,
              application: rec.application ?? '',
              approver: rec.approver ?? '',
              instanceIds: ids,
              instanceNames: ids.map((id) => byId.get(id)?.name ?? id),
              link: note ? linkOf(note.message, endpointUrl, runOf, group) : undefined,
              subject: note?.subject,
              deadline: clock.now() + timeoutSeconds * 1000,
              timeoutSeconds,
            };
          });
          return desk!.wait(token, result, pending);
        };
        continue;
      }
      handlers[stateName] = (input: unknown) =>
        activity.run(async () => {
          await catchUp(input);
          const out = await invokeFn(fnId, input, stateName);
          reportGate(stateName, input, out);
          return out;
        });
    }
    for (const [stateName, resource] of tpl.serviceTasks) {
      handlers[stateName] = async (input: unknown) => {
        activity.touch();
        const service = /^arn:[^:]+:states:::([^:]+:[^.]+)/.exec(resource)?.[1] ?? resource;
        if (service === 'sns:publish') {
          const p = input as { TopicArn?: string; Subject?: string; Message?: unknown };
          const message = typeof p.Message === 'string' ? p.Message : JSON.stringify(p.Message);
          const link = endpointUrl ? new RegExp(`${endpointUrl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\?\\S+`).exec(message)?.[0] : undefined;
          notifications.push({ state: stateName, topicArn: String(p.TopicArn ?? ''), subject: String(p.Subject ?? ''), message, ...(link ? { link } : {}) });
          proxy.counts.set('sns:Publish', (proxy.counts.get('sns:Publish') ?? 0) + 1);
          return { MessageId: `sim-${notifications.length}` };
        }
        const err = new Error(`task state "${stateName}" calls ${resource}, which the simulation does not serve`);
        err.name = 'Sim.UnsupportedResource';
        throw err;
      };
    }
    const waits: Record<string, number> = {};
    const waitSeconds = new Map<string, (input: unknown) => number>();
    walkStates(tpl.definition, (name, state) => {
      if (state.Type !== 'Wait') return;
      waits[name] = WAIT_MS;
      waitSeconds.set(name, (input) => {
        if (typeof state.Seconds === 'number') return state.Seconds;
        if (typeof state.SecondsPath === 'string') return Number(jsonPath(input, state.SecondsPath)) || 0;
        return 0;
      });
    });

    // Node 20 lacks Promise.withResolvers, which aws-local-stepfunctions 3.0.0 uses.
    const P = Promise as unknown as { withResolvers?: () => unknown };
    if (!P.withResolvers) {
      P.withResolvers = () => {
        let resolve!: (v: unknown) => void;
        let reject!: (e: unknown) => void;
        const promise = new Promise((res, rej) => {
          resolve = res;
          reject = rej;
        });
        return { promise, resolve, reject };
      };
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { StateMachine } = require('aws-local-stepfunctions') as typeof import('aws-local-stepfunctions');
    const machine = new StateMachine(tpl.definition as never, { validationOptions: { checkArn: false, checkPaths: false } });
    const execute = async (input: Record<string, unknown>, name: string): Promise<{ status: SimResult['status']; error?: SimResult['error']; transitions: number; history: number }> => {
      clock.install();
      const startedAt = new Date().toISOString();
      const execution = machine.run(input as never, {
        overrides: { taskResourceLocalHandlers: handlers as never, waitTimeOverrides: waits, retryIntervalOverrides: retryOverrides(tpl.definition) },
        context: { Task: { Token: TOKEN_PLACEHOLDER }, Execution: { Id: `arn:aws:states:${region}:123456789012:execution:PatchPipeline:${name}`, Name: name, Input: input as never, StartTime: startedAt, RoleArn: 'arn:aws:iam::123456789012:role/sim' }, StateMachine: { Id: `arn:aws:states:${region}:123456789012:stateMachine:PatchPipeline`, Name: 'PatchPipeline' } },
      });
      let transitions = 0;
      let history = 0;
      const stageSeen = new Set<string>();
      const events = (async () => {
        for await (const ev of execution.eventLogs) {
          history += historyWeight(ev.type);
          // A Task adds TaskScheduled, TaskStarted and TaskSucceeded/Failed to its entered/exited pair.
          if (ev.type === 'StateEntered' && (ev as { state: { type: string } }).state.type === 'Task') history += 3;
          if (ev.type === 'StateEntered') {
            transitions++;
            const st = (ev as { state: { name: string; type: string; input: unknown } }).state;
            if (st.type === 'Wait') {
              const key = waitKey(st.input);
              pendingWait.set(key, clock.now() + (waitSeconds.get(st.name)?.(st.input) ?? 0) * 1000);
            } else if (!stageSeen.has(st.name) && st.type === 'Task') {
              stageSeen.add(st.name);
              progress(`[${fmtSim(clock.simulatedMs())}] ${st.name}`);
            }
          }
        }
      })();
      let status: SimResult['status'] = 'SUCCEEDED';
      let error: SimResult['error'];
      try {
        await execution.result;
      } catch (err) {
        status = 'FAILED';
        // ExecutionError wraps what ended the run: a Fail state's error (its name and message are the
        // state's Error and Cause) or a task's uncaught error.
        const e = err as { name?: string; message?: string; cause?: { name?: string; errorOutput?: { Error?: string; Cause?: string }; message?: string } };
        error = { Error: e.cause?.errorOutput?.Error ?? e.cause?.name ?? e.name, Cause: e.cause?.errorOutput?.Cause ?? e.cause?.message ?? e.message };
      } finally {
        await events;
        clock.uninstall();
        pendingWait.clear();
      }
      return { status, error, transitions, history };
    };
    cleanups.unshift(async () => clock.uninstall());

    // Extra executions first, on the same moto, SSM service and fleet; the main run's metrics count only itself.
    const executions: ExecutionOutcome[] = [];
    for (const x of options.executions ?? []) {
      const r = await execute(x.input, x.runId);
      executions.push({ runId: x.runId, input: x.input, status: r.status, ...(r.error ? { error: r.error } : {}) });
    }
    proxy.counts.clear();
    ssm.counts.clear();
    sfnService.counts.clear();
    ssm.log.length = 0;
    ssm.throttled = 0;

    const { status, error, transitions, history } = await execute(options.input ?? {}, runId);

    // Report: read back from moto, add metrics, write locally and back to S3.
    const reportKey = `runs/${runId}/report/report.json`;
    const reportText = await getText(s3direct, bucketName, reportKey);
    const report = reportText ? (JSON.parse(reportText) as Record<string, unknown>) : undefined;
    const awsApiCalls: Record<string, number> = {};
    for (const [k, v] of [...proxy.counts].sort()) awsApiCalls[k] = v;
    for (const [k, v] of [...ssm.counts].sort()) awsApiCalls[`ssm:${k}`] = v;
    for (const [k, v] of [...sfnService.counts].sort()) awsApiCalls[`states:${k}`] = v;
    const metrics: SimMetrics = {
      stateTransitions: transitions,
      historyEvents: history,
      lambdaInvocations: lambdaCounts,
      awsApiCalls,
      ssmThrottled: ssm.throttled,
      simulatedSeconds: Math.round(clock.simulatedMs() / 1000),
      wallSeconds: Math.round(clock.wallMs() / 100) / 10,
    };
    fs.mkdirSync(outDir, { recursive: true });
    await mirrorBucket(s3direct, bucketName, path.join(outDir, 's3'));
    if (report) {
      report.metrics = metrics;
      const text = JSON.stringify(report, null, 2);
      fs.writeFileSync(path.join(outDir, 'report.json'), text);
      await s3direct.send(new PutObjectCommand({ Bucket: bucketName, Key: reportKey, Body: text, ContentType: 'application/json' }));
      const csv = await getText(s3direct, bucketName, `runs/${runId}/report/report.csv`);
      if (csv !== undefined) fs.writeFileSync(path.join(outDir, 'report.csv'), csv);
    }
    fs.writeFileSync(path.join(outDir, 'metrics.json'), JSON.stringify(metrics, null, 2));

    const finalStates = await ec2States(ec2, fleet.map((i) => i.instanceId));
    const batches = await readBatches(s3direct, bucketName, runId);
    // The report's row when there is one (dry runs have WouldPatch / NotReady rows and no batches).
    const reportRows = new Map<string, { instanceId: string; status: string; failedAt?: string; reason?: string }>(((report?.instances ?? []) as { instanceId: string; status: string; failedAt?: string; reason?: string }[]).map((r) => [r.instanceId, r]));
    // Discovery leaves some out with a reason (running but SSM agent offline, ...): report.skipped.
    const skippedRows = new Map(((report?.skipped ?? []) as { instanceId: string; reason?: string }[]).map((r) => [r.instanceId, { instanceId: r.instanceId, status: 'Skipped', reason: r.reason }]));
    const instances: InstanceOutcome[] = fleet.map((i) => {
      const p = batches.get(i.instanceId);
      const row: { status: string; failedAt?: string; reason?: string } | undefined = reportRows.get(i.instanceId) ?? skippedRows.get(i.instanceId);
      return {
        instanceId: i.instanceId,
        name: i.name,
        platform: i.platform,
        initialState: i.initialState,
        finalState: finalStates.get(i.instanceId) ?? 'unknown',
        status: row?.status ?? (p ? (p.status === 'failed' ? 'Failed' : 'Patched') : 'NotTargeted'),
        failedAt: p?.failedAt ?? (row?.failedAt || undefined),
        reason: p?.reason ?? (row?.reason || undefined),
        stages: Object.fromEntries(Object.entries(p?.stages ?? {}).map(([k, v]) => [k, v.status])),
      };
    });
    for (const i of fleet) if (i.instanceDir) i.packages.packages = readPackageState(i.instanceDir).packages;
    const snapshots = new Map<string, { snapshotId: string; state: string; createdAt: number }[]>();
    for (const [id, m] of snapshotMeta) {
      const list = snapshots.get(m.instanceId) ?? [];
      list.push({ snapshotId: id, state: snapshotState(m).status, createdAt: m.createdAt });
      snapshots.set(m.instanceId, list);
    }
    const runText = await getText(s3direct, bucketName, `runs/${runId}/run.json`);
    const run = runText ? (JSON.parse(runText) as Record<string, unknown>) : undefined;
    if (desk.error) tpl.notes.push(`an approval answer failed: ${desk.error.message}`);
    return { runId, status, error, outDir, report, instances, fleet, metrics, ssmLog: ssm.log, snapshots, notes: tpl.notes, run, executions, notifications, approvals: desk.outcomes, approvalEndpointUrl: endpointUrl || undefined };
  } finally {
    for (const c of cleanups) await c().catch(() => undefined);
  }
}

async function getText(s3: S3Client, bucket: string, key: string): Promise<string | undefined> {
  try {
    return await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();
  } catch {
    return undefined;
  }
}

async function mirrorBucket(s3: S3Client, bucket: string, dir: string): Promise<void> {
  let token: string | undefined;
  do {
    const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of res.Contents ?? []) {
      const file = path.join(dir, o.Key!);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, (await getText(s3, bucket, o.Key!)) ?? '');
    }
    token = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (token);
}

interface Progress {
  status: string;
  failedAt?: string;
  reason?: string;
  stages: Record<string, { status: string }>;
}

/**
 * Every instance's progress over the patch batches and the approval chunks (a000-0, ...: reboot and
 * verify): stages merged, and a failure in either document wins.
 */
async function readBatches(s3: S3Client, bucket: string, runId: string): Promise<Map<string, Progress>> {
  const out = new Map<string, Progress>();
  let token: string | undefined;
  do {
    const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `runs/${runId}/batches/`, ContinuationToken: token }));
    // Approval chunks (a000-0, ...) after the patch batches, so stages keep the pipeline's order.
    const isChunk = (key: string): number => (/\/a\d+-\d+\.json$/.test(key) ? 1 : 0);
    for (const o of [...(res.Contents ?? [])].sort((x, y) => isChunk(x.Key!) - isChunk(y.Key!))) {
      const doc = JSON.parse((await getText(s3, bucket, o.Key!)) ?? '{}') as { instances?: Record<string, Progress> };
      for (const [id, p] of Object.entries(doc.instances ?? {})) {
        const seen = out.get(id);
        if (!seen) {
          out.set(id, { ...p, stages: { ...p.stages } });
          continue;
        }
        const stages = { ...seen.stages, ...p.stages };
        out.set(id, seen.status === 'failed' ? { ...seen, stages } : p.status === 'failed' ? { ...p, stages } : { ...seen, stages });
      }
    }
    token = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/** A copy of `value` with every string equal to `from` replaced by `to`. */
function replaceDeep(value: unknown, from: string, to: string): unknown {
  if (value === from) return to;
  if (Array.isArray(value)) return value.map((v) => replaceDeep(v, from, to));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replaceDeep(v, from, to)]));
  return value;
}

/** $.a.b paths only (what SecondsPath uses here). */
function jsonPath(input: unknown, p: string): unknown {
  let v: unknown = input;
  for (const part of p.replace(/^\$\.?/, '').split('.').filter(Boolean)) v = (v as Record<string, unknown> | undefined)?.[part];
  return v;
}

/** Step Functions history events per engine event: entered/exited, plus the task's scheduled/started/succeeded. */
function historyWeight(type: string): number {
  switch (type) {
    case 'StateEntered':
    case 'StateExited':
    case 'ExecutionStarted':
    case 'ExecutionSucceeded':
    case 'ExecutionFailed':
    case 'MapIterationStarted':
    case 'MapIterationSucceeded':
    case 'MapIterationFailed':
      return 1;
    case 'StateRetried':
    case 'StateFailed':
      return 1;
    default:
      return 0;
  }
}

/** Retries wait a few real milliseconds: the simulation has no use for real back-off. */
function retryOverrides(def: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  walkStates(def, (name, state) => {
    if (state.Retry) out[name] = 10;
  });
  return out;
}

export function fmtSim(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${String(Math.floor(s / 3600)).padStart(2, '0')}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}
