/**
 * Contracts between the workflow (lib/workflow) and the Lambda functions.
 * The execution state carries only these small references and counts; the fleet lives in S3.
 */

import type { ApprovalConfig } from './approvals';

/** The stage ids, in pipeline order. Reboot and verify come later (approval issue). */
export type StageId = 'agent-update' | 'pre-inventory' | 'patch' | 'post-inventory' | 'compare' | 'failed-check';

/**
 * A document stage as the workflow passes it to run-stage / check-stage / report.
 * Serialized from lib/stages.ts: Lambdas never import lib/.
 */
export interface StageSpec {
  readonly id: string;
  /** Title used in state names and the report, e.g. "Install patches". */
  readonly title: string;
  /** Deployed SSM document name (the physical name, resolved by CloudFormation). */
  readonly documentName: string;
  /** Static document parameters, e.g. { Phase: 'pre' }. */
  readonly parameters: Record<string, string>;
  /**
   * Document parameters that are S3 key prefixes under runs/<runId>/, e.g. { OutputPrefix: 'inventory/pre' }.
   * run-stage turns each into 'runs/<runId>/inventory/pre/'.
   */
  readonly prefixes: Record<string, string>;
}

/** Execution-wide settings after normalize-input merged the input over the deployed defaults. */
export interface RunConfig {
  /** Tag filters: every key must match one of its values. */
  readonly targetTags: Record<string, string[]>;
  /** Optional explicit instance ids (intersected with the tag filters when both are given). */
  readonly instanceIds: string[];
  /** Instances per SendCommand batch, 1..50. */
  readonly batchSize: number;
  /** Batches processed at the same time by the batch Map. */
  readonly batchConcurrency: number;
  /** SendCommand MaxConcurrency, "10" or "10%". */
  readonly maxConcurrency: string;
  /** SendCommand MaxErrors, "0", "1" or "10%". */
  readonly maxErrors: string;
  /** Per-stage timeout in seconds, keyed by stage id. */
  readonly stageTimeouts: Record<string, number>;
  /** Seconds between two checks of a gate. */
  readonly pollIntervalSeconds: number;
  /** Seconds to wait for stopped instances to be running and online in SSM. */
  readonly powerOnTimeoutSeconds: number;
  /** Seconds to wait for snapshots to complete. */
  readonly snapshotTimeoutSeconds: number;
  /** Days after which the run's snapshots may be deleted (tag ExpiresOn). */
  readonly snapshotRetentionDays: number;
  /** Tag keys read for the report and the documents. */
  readonly applicationTagKey: string;
  readonly ownerTagKey: string;
  /** Region of the bucket, passed to the documents. */
  readonly region: string;
  /** SSM Change Calendar checked at the start ('' = none). */
  readonly changeCalendarName: string;
  /** Discover and report readiness only; change nothing. */
  readonly dryRun: boolean;
  /** Patch window that started the run ('' when started by hand). */
  readonly window: string;
  /** The reboot-approval phase. */
  readonly approval: ApprovalConfig;
}

/** Every task's input carries the run reference. */
export interface RunRef {
  readonly runId: string;
  readonly bucket: string;
}

export interface RunTaskInput extends RunRef {
  readonly config: RunConfig;
}

export interface BatchTaskInput extends RunTaskInput {
  readonly batchId: string;
}

/**
 * The state of a gate (an action, then Wait -> Check until complete). Returned by every action
 * and check task of a gate; the workflow only reads `complete` and `waitSeconds`.
 */
export interface GateState {
  /** True when every instance of the gate is done or failed, or the deadline passed. */
  readonly complete: boolean;
  /** Seconds the workflow waits before the next check. */
  readonly waitSeconds: number;
  /** ISO time after which pending instances are failed as timed out. */
  readonly deadline: string;
  readonly startedAt: string;
  /** SSM command id, for document stages. */
  readonly commandId?: string;
  readonly done: number;
  readonly failed: number;
  readonly pending: number;
  /** Number of checks made so far. */
  readonly checks: number;
}

export interface StageTaskInput extends BatchTaskInput {
  readonly stage: StageSpec;
  readonly gate?: GateState;
  /** Parameters known only at run time (e.g. the verify document's health checks of one application). */
  readonly extraParameters?: Record<string, string>;
}

export interface GateTaskInput extends BatchTaskInput {
  readonly gate?: GateState;
}

/** normalize-input output. */
export type NormalizeOutput =
  | { readonly valid: true; readonly runId: string; readonly bucket: string; readonly config: RunConfig }
  | { readonly valid: false; readonly error: string; readonly cause: string };

/** discover output (ResultPath $.discovery). */
export interface DiscoverOutput {
  readonly matched: number;
  readonly targets: number;
  readonly skipped: number;
  readonly batches: string[];
}

/** What one batch iteration of the Map returns. */
export interface BatchResult {
  readonly batchId: string;
  readonly error?: { readonly Error?: string; readonly Cause?: string };
}

export type Platform = 'Linux' | 'Windows';

/** One discovered instance, as stored in run.json. */
export interface TargetInstance {
  readonly instanceId: string;
  readonly name: string;
  readonly platform: Platform;
  /** EC2 state at discovery: running, stopped, ... */
  readonly initialState: string;
  readonly application: string;
  readonly owner: string;
  readonly ssm: { readonly managed: boolean; readonly pingStatus?: string; readonly agentVersion?: string; readonly platformName?: string };
  readonly volumeIds: string[];
  readonly batchId?: string;
  /** What a real run would depend on, checked at discovery (absent in run.json written before it existed). */
  readonly readiness?: TargetReadiness;
}

/**
 * Dry-run readiness of one target: small on purpose (one per target in run.json). A target that is
 * not ready only stays a target in a dry run; a normal run skips it at discovery with the reason.
 */
export interface TargetReadiness {
  /** False when a real run would not get to patch it (e.g. a volume that cannot be snapshotted). */
  readonly ready: boolean;
  /** One line for the report: blockers first, then notes; 'ready' when there is nothing to say. */
  readonly summary: string;
  /** Why a real run would not patch it; empty when ready. */
  readonly blockers: string[];
  /** What a real run would do first, or should be known (start, agent update, encryption); not blockers. */
  readonly notes: string[];
  /** SSM agent version at discovery, when SSM reported one. */
  readonly agentVersion?: string;
  /** True when the agent is older than MIN_AGENT_VERSION (agent-update updates it first). */
  readonly agentOutdated: boolean;
  /** EBS volumes found in a snapshottable state (in-use or available). */
  readonly volumesReady: number;
  readonly encryptedVolumes: number;
}

export interface SkippedInstance {
  readonly instanceId: string;
  readonly name: string;
  readonly state: string;
  readonly reason: string;
}

/** runs/<runId>/run.json */
export interface RunDocument {
  readonly runId: string;
  readonly createdAt: string;
  readonly config: RunConfig;
  readonly stages: string[];
  readonly targets: TargetInstance[];
  readonly skipped: SkippedInstance[];
  readonly batches: { readonly batchId: string; readonly instanceIds: string[] }[];
}

export type InstanceStatus = 'active' | 'failed';

export interface StageOutcome {
  readonly status: 'Pending' | 'Success' | 'Failed' | 'NotRun';
  readonly reason?: string;
  readonly commandId?: string;
  readonly startedAt?: string;
  readonly finishedAt?: string;
}

/** Per-instance progress inside a batch. */
export interface InstanceProgress {
  status: InstanceStatus;
  /** The step at which it left the pipeline: power-on, snapshot or a stage id. */
  failedAt?: string;
  reason?: string;
  /** power-on: true when this run started the instance. */
  startedByRun?: boolean;
  snapshotIds?: string[];
  snapshotState?: 'pending' | 'completed' | 'error';
  /** reboot: the instance's reboot order tag, read once when the group's reboot starts (null = no or invalid tag: last). */
  rebootOrder?: number | null;
  stages: Record<string, StageOutcome>;
}

/** runs/<runId>/batches/<batchId>.json: the batch's progress, written by power, snapshot and check-stage. */
export interface BatchDocument {
  readonly runId: string;
  readonly batchId: string;
  readonly instanceIds: string[];
  instances: Record<string, InstanceProgress>;
  updatedAt: string;
}

/** A completion marker, written by the documents as the last thing they do. */
export interface Marker {
  readonly runId: string;
  readonly stage: string;
  readonly instanceId: string;
  readonly status: 'Success' | 'Failed';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly detail: string;
}

/** runs/<runId>/restore.json, written by power restore. */
export interface RestoreDocument {
  readonly runId: string;
  readonly instances: Record<string, { readonly initialState: string; readonly finalState: string; readonly action: 'none' | 'stopped'; readonly error?: string }>;
  readonly finishedAt: string;
}
