import { MultiBar, Presets, SingleBar } from 'cli-progress';
import { Io, println } from './io';
import { RunStatus, StepCounts } from './status';

const when = (d: Date | undefined): string => (d ? d.toISOString().replace(/\.\d+Z$/, 'Z') : '');

/** The lines above the steps: execution state, dates, bucket, fleet size. */
export function headerLines(s: RunStatus): string[] {
  const lines = [
    `run:        ${s.runId}`,
    `execution:  ${s.status}${s.startDate ? `  started ${when(s.startDate)}` : ''}${s.stopDate ? `  stopped ${when(s.stopDate)}` : ''}`,
    `arn:        ${s.executionArn}`,
  ];
  if (s.error) lines.push(`error:      ${s.error.length > 300 ? `${s.error.slice(0, 297)}...` : s.error}`);
  if (!s.bucket) {
    lines.push(`bucket:     unknown (the execution has not passed "Normalize input"): pass --bucket or set PATCH_PIPELINE_BUCKET`);
    return lines;
  }
  lines.push(`bucket:     ${s.bucket}`);
  const p = s.progress;
  if (!p) lines.push(`targets:    not discovered yet (no runs/${s.runId}/run.json)`);
  else {
    lines.push(`targets:    ${p.targets} in ${p.batches} batch${p.batches === 1 ? '' : 'es'}, ${p.skipped} skipped at discovery`);
    if (p.missingBatches.length) lines.push(`            batch documents not written yet: ${p.missingBatches.join(', ')}`);
  }
  return lines;
}

const stepWidth = (steps: StepCounts[]): number => Math.max(8, ...steps.map((c) => c.step.length));

export function stepLine(c: StepCounts, width: number): string {
  return `${c.step.padEnd(width)}  done ${c.done}  failed ${c.failed}  pending ${c.pending}  (of ${c.total})`;
}

/** Plain text, for pipes, files and CI logs. */
export function plainStatus(s: RunStatus): string[] {
  const steps = s.progress?.steps ?? [];
  const w = stepWidth(steps);
  return [...headerLines(s), ...steps.map((c) => stepLine(c, w))];
}

/** One bar per step; shared with the simulation's live view. */
export const BAR_FORMAT = '{step} {bar} {value}/{total}  done {done}  failed {failed}  pending {pending}';

const barPayload = (c: StepCounts, width: number) => ({ step: c.step.padEnd(width), done: c.done, failed: c.failed, pending: c.pending });

/** One-shot on a terminal: the header, then one bar per step. */
export function printStatus(io: Io, s: RunStatus): void {
  if (!io.stdout.isTTY) {
    for (const l of plainStatus(s)) println(io, l);
    return;
  }
  for (const l of headerLines(s)) println(io, l);
  const steps = s.progress?.steps ?? [];
  const w = stepWidth(steps);
  for (const c of steps) {
    const bar = new SingleBar({ format: BAR_FORMAT, stream: io.stdout, barsize: 30, hideCursor: false, clearOnComplete: false, noTTYOutput: false }, Presets.shades_classic);
    bar.start(Math.max(c.total, 1), c.done + c.failed, barPayload(c, w));
    bar.stop();
  }
}

/** Brings one bar per step up to date: the step's bar in `byStep`, created in `bars` on its first count. */
export function updateBars(bars: MultiBar, byStep: Map<string, ReturnType<MultiBar['create']>>, steps: readonly StepCounts[], width: number): void {
  for (const c of steps) {
    const bar = byStep.get(c.step);
    if (bar) {
      bar.setTotal(Math.max(c.total, 1));
      bar.update(c.done + c.failed, barPayload(c, width));
    } else byStep.set(c.step, bars.create(Math.max(c.total, 1), c.done + c.failed, barPayload(c, width)));
  }
}

/**
 * --watch: plain mode prints the step lines again whenever they change; terminal mode keeps one
 * bar per step up to date in place and logs header changes above them.
 */
export class StatusWatcher {
  private bars?: MultiBar;
  private readonly byStep = new Map<string, ReturnType<MultiBar['create']>>();
  private lastPlain = '';
  private lastHeader = '';

  constructor(private readonly io: Io) {}

  update(s: RunStatus): void {
    if (!this.io.stdout.isTTY) {
      const text = plainStatus(s).join('\n');
      if (text !== this.lastPlain) {
        println(this.io, `[${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}]`);
        println(this.io, text);
        this.lastPlain = text;
      }
      return;
    }
    const header = headerLines(s).join('\n');
    const steps = s.progress?.steps ?? [];
    const w = stepWidth(steps);
    if (!this.bars) {
      // forceRedraw: a logged line above the bars moves them; without it stale bar lines stay behind.
      this.bars = new MultiBar({ format: BAR_FORMAT, stream: this.io.stdout, barsize: 30, hideCursor: true, clearOnComplete: false, noTTYOutput: false, gracefulExit: true, forceRedraw: true }, Presets.shades_classic);
    }
    if (header !== this.lastHeader) {
      this.bars.log(`${header}\n`);
      this.lastHeader = header;
    }
    updateBars(this.bars, this.byStep, steps, w);
    this.bars.update();
  }

  stop(): void {
    this.bars?.stop();
  }
}
