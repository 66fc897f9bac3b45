import { Duration, TimeZone } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';

/** A recurring patch window: when a patch run starts, and with which execution input. */
export interface PatchWindow {
  /** Window name (letters, digits, '-', '_'), e.g. 'dev-tuesday'. It becomes the schedule name and the input's `window`. */
  readonly name: string;
  /**
   * EventBridge Scheduler cron expression, six fields, e.g. 'cron(0 22 ? * TUE *)'.
   * @see https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based
   */
  readonly schedule: string;
  /**
   * IANA time zone the cron expression is read in, e.g. 'Europe/Paris'.
   * @default 'UTC'
   */
  readonly timeZone?: string;
  /**
   * Minutes within which the run may start after the scheduled time (spreads load); 0 = exactly on time.
   * @default 0
   * @see https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-flexible-time-windows.html
   */
  readonly flexibleWindowMinutes?: number;
  /**
   * Execution input of the runs this window starts (targets and overrides); the deployed defaults fill the rest.
   * @default {} (the deployed defaults)
   */
  readonly input?: Record<string, unknown>;
  /**
   * Whether the schedule is enabled.
   * @default true
   */
  readonly enabled?: boolean;
}

export interface PatchWindowsProps {
  readonly stateMachine: sfn.IStateMachine;
  readonly windows: readonly PatchWindow[];
}

const NAME = /^[A-Za-z0-9_-]{1,40}$/;
const CRON = /^cron\(\S+( \S+){5}\)$/;

/** One EventBridge Scheduler schedule per patch window, all sharing one role that may start this state machine only. */
export class PatchWindows extends Construct {
  public readonly schedules: scheduler.Schedule[] = [];
  /** The role the schedules assume: states:StartExecution on the pipeline's state machine, nothing else. */
  public readonly role?: iam.Role;

  constructor(scope: Construct, id: string, props: PatchWindowsProps) {
    super(scope, id);
    validateWindows(props.windows);
    if (props.windows.length === 0) return;
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com'),
      description: 'patch-pipeline patch windows: start the patch state machine',
    });
    for (const w of props.windows) {
      this.schedules.push(
        new scheduler.Schedule(this, `Window-${w.name}`, {
          description: `patch-pipeline window ${w.name}`,
          schedule: scheduler.ScheduleExpression.expression(w.schedule, TimeZone.of(w.timeZone ?? 'UTC')),
          timeWindow: w.flexibleWindowMinutes ? scheduler.TimeWindow.flexible(Duration.minutes(w.flexibleWindowMinutes)) : scheduler.TimeWindow.off(),
          enabled: w.enabled ?? true,
          target: new targets.StepFunctionsStartExecution(props.stateMachine, {
            role: this.role,
            input: scheduler.ScheduleTargetInput.fromObject({ ...(w.input ?? {}), window: w.name }),
            retryAttempts: 3,
            maxEventAge: Duration.hours(1),
          }),
        }),
      );
    }
  }
}

/** Rejects a window that could never start a run, with the fix. */
export function validateWindows(windows: readonly PatchWindow[]): void {
  const seen = new Set<string>();
  for (const [i, w] of windows.entries()) {
    const at = `patchWindows[${i}]`;
    if (!NAME.test(w.name ?? '')) throw new Error(`${at}.name is "${w.name}": use 1-40 letters, digits, '-' or '_'`);
    if (seen.has(w.name)) throw new Error(`${at}.name "${w.name}" is used twice: window names must be unique`);
    seen.add(w.name);
    if (!CRON.test(w.schedule ?? '')) {
      throw new Error(`${at}.schedule is "${w.schedule}": use a six-field cron expression such as "cron(0 22 ? * TUE *)"`);
    }
    if (w.timeZone !== undefined && !isIanaZone(w.timeZone)) {
      throw new Error(`${at}.timeZone is "${w.timeZone}": use an IANA time zone such as "Europe/Paris"`);
    }
    const flex = w.flexibleWindowMinutes ?? 0;
    if (!Number.isInteger(flex) || flex < 0 || flex > 1440) throw new Error(`${at}.flexibleWindowMinutes is ${flex}: use 0..1440`);
    if (w.input && 'window' in w.input) throw new Error(`${at}.input.window is set by the window itself: remove it`);
  }
}

function isIanaZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return zone.includes('/') || zone === 'UTC';
  } catch {
    return false;
  }
}
