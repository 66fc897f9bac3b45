import { Command } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline/promises';
import { Answer, parseApproveMode, PendingApproval } from './approvals';
import { MotoMissingError } from './local-aws';
import { Fault, loadScenario, Scenario } from './scenario';
import { ProgressView } from './progress-view';
import { fmtSim, simulate } from './simulate';

/** `npm run simulate -- [flags]`: the synthesized workflow against a simulated fleet. */
const program = new Command()
  .name('simulate')
  .description('Run the synthesized patch-pipeline state machine with the bundled Lambdas against a simulated fleet (moto + local SSM).')
  .option('--scenario <file>', 'fleet scenario JSON (see sim/README-section.md)')
  .option('--instances <n>', 'fleet size', (v) => Number(v))
  .option('--stopped <share>', 'share of instances stopped at the start (0..1)', (v) => Number(v))
  .option('--windows <share>', 'share of Windows instances (0..1)', (v) => Number(v))
  .option('--apps <list>', 'comma-separated Application tag values', (v) => v.split(',').filter(Boolean))
  .option('--tag <key=value...>', 'extra tag on every instance (repeatable)')
  .option('--duration <stage=seconds...>', 'simulated seconds a stage takes per instance (repeatable; * for the rest)')
  .option(
    '--fault <spec...>',
    'fault: stage-fails:<inst>:<stage> | marker-missing:<inst>:<stage> | agent-offline:<inst> | snapshot-fails:<inst> | terminated:<inst>:<stage> | throttle:<Operation>:<count> | no-reboot-return:<inst> | health-fails:<inst>[:<unit>] | did-not-reboot:<inst>',
  )
  .option('--approve <mode>', 'answers to reboot approvals: all | none | timeout | <app,app,...> (approve those, reject the rest) | prompt (ask, needs a terminal) | external (answer in a browser through the served links)', 'all')
  .option('--approval-wait <seconds>', 'prompt / external: real seconds a request stays open before its simulated timeout may fire', (v) => Number(v))
  .option('--reboot-seconds <n>', 'simulated seconds an instance is offline after RebootInstances', (v) => Number(v))
  .option('--calendar <name=OPEN|CLOSED>', 'the change calendar GetCalendarState answers for, and its state')
  .option('--seed <n>', 'seed of the fleet, durations and package lists', (v) => Number(v))
  .option('--input <json|file>', 'execution input (default {} = the deployed defaults)')
  .option('--out <dir>', 'output folder (default ./sim-out/<runId>/)')
  .option('--template <path>', 'synthesized template (default: cdk.out, synthesized when stale)')
  .option('--run-id <id>', 'execution name (run id)');

function parseFault(spec: string): Fault {
  const [type, a, b] = spec.split(':');
  const inst = (x: string): number | string => (/^\d+$/.test(x) ? Number(x) : x);
  switch (type) {
    case 'stage-fails':
    case 'marker-missing':
    case 'terminated':
      if (!a || !b) throw new Error(`--fault ${spec}: expected ${type}:<instance>:<stage>`);
      return { type, instance: inst(a), stage: b };
    case 'health-fails':
      if (!a) throw new Error(`--fault ${spec}: expected health-fails:<instance>[:<unit>]`);
      return { type, instance: inst(a), ...(b ? { unit: b } : {}) };
    case 'agent-offline':
    case 'snapshot-fails':
    case 'no-reboot-return':
    case 'did-not-reboot':
      if (!a) throw new Error(`--fault ${spec}: expected ${type}:<instance>`);
      return { type, instance: inst(a) };
    case 'throttle':
      return { type, operation: a || 'SendCommand', count: Number(b || 3) };
    default:
      throw new Error(`--fault ${spec}: unknown fault type ${type}`);
  }
}

function parseCalendar(spec: string, nextTransitionTime?: string): NonNullable<Scenario['calendar']> {
  const m = /^([^=]+)=(OPEN|CLOSED)$/.exec(spec);
  if (!m) throw new Error(`--calendar ${spec}: expected <name>=OPEN or <name>=CLOSED`);
  return { name: m[1], state: m[2] as 'OPEN' | 'CLOSED', ...(nextTransitionTime ? { nextTransitionTime } : {}) };
}

const pairs = (list: string[] | undefined, what: string): Record<string, string> =>
  Object.fromEntries(
    (list ?? []).map((p) => {
      const i = p.indexOf('=');
      if (i < 1) throw new Error(`${what} ${p}: expected key=value`);
      return [p.slice(0, i), p.slice(i + 1)];
    }),
  );

async function main(): Promise<number> {
  const o = program.parse().opts<Record<string, unknown>>();
  const file: Scenario = o.scenario ? loadScenario(String(o.scenario)) : {};
  const scenario: Scenario = {
    ...file,
    ...(o.instances !== undefined ? { instances: o.instances as number } : {}),
    ...(o.stopped !== undefined ? { stopped: o.stopped as number } : {}),
    ...(o.windows !== undefined ? { windows: o.windows as number } : {}),
    ...(o.apps ? { apps: o.apps as string[] } : {}),
    ...(o.seed !== undefined ? { seed: o.seed as number } : {}),
    ...(o.tag ? { tags: { ...(file.tags ?? {}), ...pairs(o.tag as string[], '--tag') } } : {}),
    ...(o.duration ? { durations: { ...(file.durations ?? {}), ...Object.fromEntries(Object.entries(pairs(o.duration as string[], '--duration')).map(([k, v]) => [k, Number(v)])) } } : {}),
    ...(o.rebootSeconds !== undefined ? { rebootSeconds: o.rebootSeconds as number } : {}),
    ...(o.calendar ? { calendar: parseCalendar(String(o.calendar), file.calendar?.nextTransitionTime) } : {}),
    ...(o.fault ? { faults: [...(file.faults ?? []), ...(o.fault as string[]).map(parseFault)] } : {}),
  };
  let input: Record<string, unknown> = {};
  if (o.input) {
    const raw = String(o.input);
    input = JSON.parse(fs.existsSync(raw) ? fs.readFileSync(raw, 'utf-8') : raw) as Record<string, unknown>;
  }
  const tty = process.stdout.isTTY;
  const approve = parseApproveMode(String(o.approve ?? 'all'));
  if (approve.kind === 'prompt' && !process.stdin.isTTY) {
    throw new UsageError('--approve prompt asks at the terminal, but stdin is not a TTY; use --approve all | none | timeout | <app,app,...> | external');
  }
  // Gate counts per step as bars on a terminal (state names and approval links above them), else plain lines.
  const view = new ProgressView(process.stdout);
  activeView = view;
  const result = await simulate({
    approve,
    ...(approve.kind === 'prompt' ? {
          // The prompt writes below the bars: stop them first (the next gate draws them again).
          askApproval: (pending: PendingApproval[]) => {
            view.stop();
            return askAtTerminal(pending);
          },
        } : {}),
    ...(o.approvalWait !== undefined ? { approvalWaitSeconds: o.approvalWait as number } : {}),
    scenario,
    input,
    outDir: o.out as string | undefined,
    template: o.template as string | undefined,
    runId: o.runId as string | undefined,
    log: (l) => view.log(l),
    onProgress: (l) => view.log(tty ? `\x1b[2m${l}\x1b[0m` : l),
    onGate: (g) => view.gate(g, fmtSim(g.simulatedMs)),
  });
  view.stop();
  console.log('');
  // The report's rows carry the reboot phase: approval answer, reboot and verify outcomes.
  const reportRows = new Map(((result.report?.instances ?? []) as { instanceId?: string; approval?: string; rebootStatus?: string; verifyStatus?: string }[]).map((r) => [r.instanceId, r]));
  const rows = result.instances.map((i) => {
    const r = reportRows.get(i.instanceId);
    return [i.name, i.instanceId, i.platform, `${i.initialState}->${i.finalState}`, i.status, i.failedAt ?? '', r?.approval ?? '', r?.rebootStatus ?? '', r?.verifyStatus ?? '', (i.reason ?? '').slice(0, 70)];
  });
  printTable(['instance', 'id', 'platform', 'power', 'status', 'failed at', 'approval', 'reboot', 'verify', 'reason'], rows);
  const m = result.metrics;
  console.log('');
  console.log(`execution: ${result.status}${result.error ? ` (${result.error.Error}: ${result.error.Cause})` : ''}`);
  console.log(`state transitions ${m.stateTransitions}, history events ~${m.historyEvents}, simulated ${m.simulatedSeconds} s, wall ${m.wallSeconds} s`);
  console.log(`lambda invocations: ${Object.entries(m.lambdaInvocations).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  console.log(`aws api calls: ${Object.entries(m.awsApiCalls).map(([k, v]) => `${k}=${v}`).join(' ')}${m.ssmThrottled ? ` (throttled ${m.ssmThrottled})` : ''}`);
  for (const a of result.approvals) console.log(`approval ${a.application}: ${a.outcome ?? 'open'}${a.via ? ` (${a.answer} via ${a.via})` : ''}`);
  for (const n of result.notes) console.log(`note: ${n}`);
  console.log(`report: ${path.join(result.outDir, 'report.json')}`);
  return result.status === 'SUCCEEDED' ? 0 : 1;
}

/** --approve prompt: lists the groups waiting for a decision, then asks y/n per group. */
async function askAtTerminal(pending: PendingApproval[]): Promise<Record<string, Answer>> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  try {
    console.log(`\n${pending.length} reboot approval${pending.length === 1 ? '' : 's'} waiting:`);
    for (const p of pending) console.log(`  ${p.application} (${p.groupId}): ${p.instanceNames.join(', ')}; approver ${p.approver || '-'}\n    ${p.link ?? '(no link)'}`);
    const answers: Record<string, Answer> = {};
    for (const p of pending) {
      for (;;) {
        const a = (await rl.question(`Reboot ${p.application} (${p.instanceIds.length} instance${p.instanceIds.length === 1 ? '' : 's'})? [y]es / [n]o / [t]imeout: `)).trim().toLowerCase();
        if (/^(y|yes)$/.test(a)) answers[p.groupId] = 'approve';
        else if (/^(n|no)$/.test(a)) answers[p.groupId] = 'reject';
        else if (/^(t|timeout)$/.test(a)) answers[p.groupId] = 'timeout';
        else continue;
        break;
      }
    }
    return answers;
  } finally {
    rl.close();
  }
}

/** The running view, stopped before an error is printed (so the bars leave the cursor and the screen in order). */
let activeView: ProgressView | undefined;

/** A wrong flag: its message is the whole story, no stack. */
class UsageError extends Error {}

function printTable(head: string[], rows: string[][]): void {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join('  ');
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) console.log(line(r));
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    activeView?.stop();
    console.error(err instanceof MotoMissingError ? err.message : err instanceof UsageError ? `simulate: ${err.message}` : `simulate: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    process.exit(2);
  },
);
