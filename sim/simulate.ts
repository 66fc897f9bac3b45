import { EC2Client } from '@aws-sdk/client-ec2';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, CreateBucketCommand as S3CreateBucket } from '@aws-sdk/client-s3';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { prepareInstanceDir, prepareSandbox, readPackageState, runLinuxScript, startImds } from './agents';
import { SimClock } from './clock';
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
  /** What sns:publish tasks published (approval requests). */
  readonly notifications: { state: string; topicArn: string; subject: string; message: string }[];
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

    const fleet = buildFleet(scenario, targetTags);
    await createFleetInMoto(ec2, fleet);
    const byId = new Map(fleet.map((i) => [i.instanceId, i]));
    const faultsFor = (i: SimInstance) => faultsOf(fleet, faults, i);
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
    const proxy: CountingProxy = await startCountingProxy(moto.url, (action, params, body) => {
      if (/^(Start|Stop|Reboot|Terminate)Instances$/.test(action)) stateCache = undefined;
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
    const workRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'pp-sim-'));
    cleanups.push(async () => fs.rmSync(workRoot, { recursive: true, force: true }));
    const realDate = fs.existsSync('/usr/bin/date') ? '/usr/bin/date' : '/bin/date';
    const sandbox = prepareSandbox(workRoot, realDate);
    for (const inst of fleet) if (inst.platform === 'Linux') inst.instanceDir = prepareInstanceDir(sandbox, inst.instanceId, inst.packages);
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
    const hasFault = (inst: SimInstance, type: string, stage?: string) => faultsFor(inst).some((f) => f.type === type && (stage === undefined || (f as { stage?: string }).stage === stage));

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
          return st === 'running' ? 'Online' : 'ConnectionLost';
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
              ? await runWindowsModel(s3agent, i, cmd.parameters, { fail, dropMarker, domain: 'corp.example.com' })
              : await runLinuxScript(
                  { sandbox, instanceDir: i.instanceDir!, instanceId: id, region, hostname: i.name, domain: 'corp.example.com', imdsEndpoint: `${imds.base}/${id}`, s3Endpoint: proxy.url, clockOffsetSeconds: clock.offsetSeconds(), fail, dropMarker },
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

    // Lambda environment: set BEFORE the bundles are required (their clients are module-level).
    Object.assign(process.env, {
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_SESSION_TOKEN: 'testing',
      AWS_ENDPOINT_URL: proxy.url,
      AWS_ENDPOINT_URL_SSM: ssm.url,
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
    for (const [stateName, fnId] of tpl.taskFunctions) {
      handlers[stateName] = async (input: unknown) => {
        const key = (input as { batchId?: string })?.batchId ?? 'root';
        const target = pendingWait.get(key);
        if (target !== undefined) {
          pendingWait.delete(key);
          await ssm.advance(target, (ms) => clock.advanceTo(ms));
          stateCache = undefined;
        }
        const fn = tpl.functions.get(fnId)!;
        lambdaCounts[fn.name] = (lambdaCounts[fn.name] ?? 0) + 1;
        for (const [k, v] of Object.entries(fn.environment)) process.env[k] = v;
        const h = load(fnId);
        const out = await h(input, { functionName: fn.name, awsRequestId: `sim-${fn.name}-${lambdaCounts[fn.name]}`, getRemainingTimeInMillis: () => 900000 });
        if (process.env.PP_SIM_DEBUG) console.error(`[sim] ${stateName} <- ${JSON.stringify(input).slice(0, 300)}\n[sim] ${stateName} -> ${JSON.stringify(out).slice(0, 300)}`);
        if (tpl.callbackTasks.has(stateName)) {
          // Nobody answers in the simulation: the request times out, as an unanswered one does in AWS.
          const err = new Error(`${stateName}: no answer in the simulation (callback tasks time out)`);
          err.name = 'States.Timeout';
          throw err;
        }
        return out;
      };
    }
    const notifications: { state: string; topicArn: string; subject: string; message: string }[] = [];
    for (const [stateName, resource] of tpl.serviceTasks) {
      handlers[stateName] = async (input: unknown) => {
        const service = /^arn:[^:]+:states:::([^:]+:[^.]+)/.exec(resource)?.[1] ?? resource;
        if (service === 'sns:publish') {
          const p = input as { TopicArn?: string; Subject?: string; Message?: unknown };
          notifications.push({ state: stateName, topicArn: String(p.TopicArn ?? ''), subject: String(p.Subject ?? ''), message: typeof p.Message === 'string' ? p.Message : JSON.stringify(p.Message) });
          proxy.counts.set('sns:Publish', (proxy.counts.get('sns:Publish') ?? 0) + 1);
          return { MessageId: `sim-${notifications.length}` };
        }
        const err = new Error(`task state "${stateName}" calls ${resource}, which the simulation does not serve`);
        err.name = 'Sim.UnsupportedResource';
        throw err;
      };
    }
    if (tpl.callbackTasks.size) tpl.notes.push(`callback tasks (${[...tpl.callbackTasks].join(', ')}) get no answer: they end in States.Timeout`);
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
        context: { Execution: { Id: `arn:aws:states:${region}:123456789012:execution:PatchPipeline:${name}`, Name: name, Input: input as never, StartTime: startedAt, RoleArn: 'arn:aws:iam::123456789012:role/sim' }, StateMachine: { Id: `arn:aws:states:${region}:123456789012:stateMachine:PatchPipeline`, Name: 'PatchPipeline' } },
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
              const key = (st.input as { batchId?: string })?.batchId ?? 'root';
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
    return { runId, status, error, outDir, report, instances, fleet, metrics, ssmLog: ssm.log, snapshots, notes: tpl.notes, run, executions, notifications };
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

async function readBatches(s3: S3Client, bucket: string, runId: string): Promise<Map<string, Progress>> {
  const out = new Map<string, Progress>();
  const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `runs/${runId}/batches/` }));
  for (const o of res.Contents ?? []) {
    const doc = JSON.parse((await getText(s3, bucket, o.Key!)) ?? '{}') as { instances?: Record<string, Progress> };
    for (const [id, p] of Object.entries(doc.instances ?? {})) out.set(id, p);
  }
  return out;
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
