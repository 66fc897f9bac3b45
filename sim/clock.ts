/**
 * The simulated clock. Lambdas (in-process), the SSM service, the EC2 proxy and the agents all read
 * time through the global Date, which is patched so that now = real time + offset. The engine's Wait
 * states sleep a few real milliseconds; the runner then moves the offset so that the nominal wait
 * has passed in simulated time (see engine.ts), so deadlines and durations keep their meaning.
 */
const RealDate = Date;
const realNow = RealDate.now.bind(RealDate);

export class SimClock {
  private offsetMs = 0;
  private installed = false;
  private readonly startReal = realNow();

  /** Simulated epoch milliseconds. */
  now(): number {
    return realNow() + this.offsetMs;
  }

  /** Real milliseconds since the clock was created (wall time). */
  wallMs(): number {
    return realNow() - this.startReal;
  }

  /** Simulated milliseconds since the clock was created. */
  simulatedMs(): number {
    return this.now() - this.startReal;
  }

  /** Moves simulated time forward to `epochMs` (never backwards). */
  advanceTo(epochMs: number): void {
    const delta = epochMs - this.now();
    if (delta > 0) this.offsetMs += delta;
  }

  advanceBy(ms: number): void {
    if (ms > 0) this.offsetMs += ms;
  }

  /** Seconds to add to the shell's real `date` (for the agents' date shim). */
  offsetSeconds(): number {
    return Math.round(this.offsetMs / 1000);
  }

  /** Replaces global Date with one whose now() and `new Date()` follow the simulated clock. */
  install(): void {
    if (this.installed) return;
    this.installed = true;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const clock = this;
    class SimDate extends RealDate {
      constructor(...args: unknown[]) {
        if (args.length === 0) super(clock.now());
        else super(...(args as [string]));
      }
      static now(): number {
        return clock.now();
      }
    }
    (globalThis as { Date: DateConstructor }).Date = SimDate as unknown as DateConstructor;
  }

  uninstall(): void {
    if (!this.installed) return;
    this.installed = false;
    (globalThis as { Date: DateConstructor }).Date = RealDate;
  }
}

export { RealDate };
