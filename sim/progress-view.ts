import { MultiBar, Presets } from 'cli-progress';
import type { StepCounts } from '../tools/cli/status';
import { BAR_FORMAT, stepLine, updateBars } from '../tools/cli/status-view';

/** What one gate task (action or check) returned for one batch or approval chunk. */
export interface GateCount {
  /** The step: power-on, snapshot, a stage id, reboot, verify, restore. */
  readonly step: string;
  /** The batch or approval chunk the gate belongs to. */
  readonly batch: string;
  readonly done: number;
  readonly failed: number;
  readonly pending: number;
}

/**
 * The latest gate counts per step and batch, summed per step over the batches. Steps keep the order
 * in which they first reported (the pipeline's order).
 */
export class GateTally {
  private readonly steps = new Map<string, Map<string, { done: number; failed: number; pending: number }>>();

  /** Records a gate's counts; true when the step's sums changed. */
  record(g: GateCount): boolean {
    const before = this.step(g.step);
    let batches = this.steps.get(g.step);
    if (!batches) this.steps.set(g.step, (batches = new Map()));
    batches.set(g.batch, { done: g.done, failed: g.failed, pending: g.pending });
    const after = this.step(g.step)!;
    return !before || before.done !== after.done || before.failed !== after.failed || before.pending !== after.pending;
  }

  /** One step's sums over its batches (undefined before its first gate). */
  step(step: string): StepCounts | undefined {
    const batches = this.steps.get(step);
    if (!batches) return undefined;
    let done = 0;
    let failed = 0;
    let pending = 0;
    for (const c of batches.values()) {
      done += c.done;
      failed += c.failed;
      pending += c.pending;
    }
    return { step, total: done + failed + pending, done, failed, pending };
  }

  all(): StepCounts[] {
    return [...this.steps.keys()].map((s) => this.step(s)!);
  }
}

/** Wide enough for the longest stage id (post-inventory), so lines do not shift as steps appear. */
const stepWidth = (steps: StepCounts[]): number => Math.max(14, ...steps.map((c) => c.step.length));

/** The plain line of a step whose counts changed: the status view's step line after the simulated time. */
export const plainGateLine = (at: string, c: StepCounts, width = 14): string => `[${at}] ${stepLine(c, width)}`;

export type ViewStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

/**
 * The simulation's progress. On a terminal: one bar per step (done + failed of the instances the
 * step's gates hold), updated in place, with log lines (state names, approval requests and their
 * links) printed above the bars. Elsewhere: log lines as they come, and a plain line each time a
 * step's counts change.
 */
export class ProgressView {
  private readonly tally = new GateTally();
  private bars?: MultiBar;
  private readonly byStep = new Map<string, ReturnType<MultiBar['create']>>();

  private readonly showCursor = (): void => {
    if (this.bars) this.out.write('\x1b[?25h\n');
  };

  constructor(
    private readonly out: ViewStream,
    private readonly tty = out.isTTY === true,
  ) {}

  /** A line above the bars (or a plain line). */
  log(line: string): void {
    // Over the bars' rows: clear the row first and the rest of its last row after (the bars come back below).
    if (this.bars) this.bars.log(`\x1b[2K${line}\x1b[0K\n`);
    else this.out.write(`${line}\n`);
  }

  /** A gate's counts at simulated time `at` (hh:mm:ss). */
  gate(g: GateCount, at: string): void {
    if (!this.tally.record(g)) return;
    const steps = this.tally.all();
    const w = stepWidth(steps);
    if (!this.tty) {
      this.out.write(`${plainGateLine(at, this.tally.step(g.step)!, w)}\n`);
      return;
    }
    if (!this.bars) {
      // linewrap: long log lines (approval links) wrap instead of being cut at the terminal's width.
      // forceRedraw: a log line moves the bars down a row, so every bar is drawn again, changed or not.
      // No gracefulExit: the simulation's own SIGINT handler stops moto and exits; the exit hook shows the cursor again.
      process.once('exit', this.showCursor);
      this.bars = new MultiBar({ format: BAR_FORMAT, stream: this.out, barsize: 30, hideCursor: true, clearOnComplete: false, noTTYOutput: false, gracefulExit: false, linewrap: true, forceRedraw: true }, Presets.shades_classic);
    }
    // The same bars as `patch-pipeline status --watch` (tools/cli/status-view.ts).
    updateBars(this.bars, this.byStep, steps, w);
  }

  /** The sums per step so far. */
  steps(): StepCounts[] {
    return this.tally.all();
  }

  /** Stops the bars where they are (before a prompt, or at the end); the next gate draws them again below. */
  stop(): void {
    if (!this.bars) return;
    this.bars.update();
    this.bars.stop();
    this.bars = undefined;
    process.removeListener('exit', this.showCursor);
    this.byStep.clear();
  }
}
