import fs from 'node:fs';

/** A fault injected into the simulated fleet. `instance` is a fleet index (0-based) or an instance name. */
export type Fault =
  /** The stage's work fails on the instance (package manager / tools exit non-zero): the document writes a Failed marker. */
  | { readonly type: 'stage-fails'; readonly instance: number | string; readonly stage: string }
  /** The document runs but its marker never reaches S3 (the upload is lost). */
  | { readonly type: 'marker-missing'; readonly instance: number | string; readonly stage: string }
  /** The SSM agent is offline (ping ConnectionLost) for the whole run: discovery skips a running instance, power-on fails a stopped one. */
  | { readonly type: 'agent-offline'; readonly instance: number | string }
  /** The instance's pre-patch snapshots end in state error. */
  | { readonly type: 'snapshot-fails'; readonly instance: number | string }
  /** The instance is terminated when the stage's command is sent to it. */
  | { readonly type: 'terminated'; readonly instance: number | string; readonly stage: string }
  /** After RebootInstances the instance never comes back: its agent stays ConnectionLost. */
  | { readonly type: 'no-reboot-return'; readonly instance: number | string }
  /** After the reboot a health check fails: the systemd unit (or Windows service) `unit` is inactive; without `unit`, the health URL answers 503. */
  | { readonly type: 'health-fails'; readonly instance: number | string; readonly unit?: string }
  /** The instance goes offline and comes back after RebootInstances, but its boot time does not change. */
  | { readonly type: 'did-not-reboot'; readonly instance: number | string }
  /** The first `count` calls of an SSM operation get ThrottlingException (the SDK retries them). */
  | { readonly type: 'throttle'; readonly operation: string; readonly count: number };

export interface InstanceSpec {
  readonly name?: string;
  readonly platform?: 'Linux' | 'Windows';
  /** Linux package family: dpkg (Ubuntu) or rpm (Amazon Linux). */
  readonly family?: 'dpkg' | 'rpm';
  readonly state?: 'running' | 'stopped';
  readonly application?: string;
  readonly owner?: string;
  readonly tags?: Record<string, string>;
  /** Updates available to the patch stage. */
  readonly updates?: number;
}

/** The fleet scenario file (JSON). Every field is optional; flags override the file. */
export interface Scenario {
  readonly seed?: number;
  readonly instances?: number;
  /** Share (0..1) of instances stopped at the start. */
  readonly stopped?: number;
  /** Share (0..1) of Windows instances. */
  readonly windows?: number;
  readonly apps?: string[];
  readonly owners?: string[];
  /** Tags every instance carries (must match the run's target tags). */
  readonly tags?: Record<string, string>;
  /** Simulated seconds a stage takes on one instance, by stage id ('*' for the rest); +-25 % seeded jitter. */
  readonly durations?: Record<string, number>;
  /** Simulated seconds an instance is offline (SSM ping ConnectionLost) after RebootInstances; default 60. */
  readonly rebootSeconds?: number;
  /** Simulated seconds a snapshot takes to complete. */
  readonly snapshotSeconds?: number;
  /** Explicit instances; when given, `instances`, `stopped`, `windows` only fill what they leave open. */
  readonly fleet?: InstanceSpec[];
  readonly faults?: Fault[];
  /** The SSM Change Calendar GetCalendarState answers for (the run's changeCalendarName must name it). */
  readonly calendar?: { readonly name: string; readonly state: 'OPEN' | 'CLOSED'; readonly nextTransitionTime?: string };
}

export const DEFAULT_DURATIONS: Record<string, number> = {
  'agent-update': 45,
  'pre-inventory': 20,
  patch: 240,
  'post-inventory': 20,
  compare: 10,
  'failed-check': 10,
  '*': 30,
};

export function loadScenario(file: string): Scenario {
  const text = fs.readFileSync(file, 'utf-8');
  try {
    return JSON.parse(text) as Scenario;
  } catch (err) {
    throw new Error(`scenario ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** mulberry32: a small seeded PRNG, so a seed gives the same fleet, durations and package lists. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
