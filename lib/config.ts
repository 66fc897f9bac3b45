import { ApprovalConfig, DEFAULT_APPROVAL } from '../lambda/shared/approvals';
import type { RunConfig } from '../lambda/shared/types';
import { STAGES } from './stages';

/**
 * Deploy-time defaults of a patch run. An execution input overrides any of them
 * (see lambda/normalize-input/input-schema.json); `{}` runs with these values.
 */
export interface PatchRunDefaults {
  /**
   * Tag filters that select the instances: every key must match one of its values.
   * @default { PatchGroup: ['default'] }
   * @see https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html
   */
  readonly targetTags?: Record<string, string[]>;
  /**
   * Instances per SendCommand batch (SendCommand accepts at most 50 instance ids).
   * @default 50
   * @see https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html
   */
  readonly batchSize?: number;
  /**
   * Batches processed at the same time.
   * @default 10
   */
  readonly batchConcurrency?: number;
  /**
   * SendCommand MaxConcurrency: instances of a batch that run a document at the same time ("10" or "10%").
   * @default '25%'
   * @see https://docs.aws.amazon.com/systems-manager/latest/userguide/send-commands-multiple.html
   */
  readonly maxConcurrency?: string;
  /**
   * SendCommand MaxErrors: errors after which SSM stops sending the command to the rest of a batch.
   * @default '100%' (a failing instance never stops the others; the pipeline takes it out itself)
   */
  readonly maxErrors?: string;
  /**
   * Stage timeouts in seconds, by stage id.
   * @default the timeoutSeconds of each stage in lib/stages.ts
   */
  readonly stageTimeouts?: Record<string, number>;
  /**
   * Seconds between two checks of a gate (markers, instance states, snapshots).
   * @default 30
   */
  readonly pollIntervalSeconds?: number;
  /**
   * Seconds to wait for started instances to be running and online in SSM.
   * @default 900
   */
  readonly powerOnTimeoutSeconds?: number;
  /**
   * Seconds to wait for the pre-patch snapshots to complete.
   * @default 3600
   */
  readonly snapshotTimeoutSeconds?: number;
  /**
   * Days the pre-patch snapshots are kept (written as the expiry tag).
   * @default 14
   */
  readonly snapshotRetentionDays?: number;
  /**
   * Tag key holding the application name of an instance.
   * @default 'Application'
   */
  readonly applicationTagKey?: string;
  /**
   * Tag key holding the owner of an instance.
   * @default 'Owner'
   */
  readonly ownerTagKey?: string;
  /**
   * SSM Change Calendar checked at the start of every run: CLOSED = change freeze, the run changes nothing.
   * @default '' (no calendar)
   * @see https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetCalendarState.html
   */
  readonly changeCalendarName?: string;
  /**
   * The reboot-approval phase: who approves each application's reboot, how long a request stays open,
   * reboot order and health checks. Fields not given take the defaults of ApprovalConfig.
   * @default { mode: 'approval', timeoutSeconds: 86400, approverTagKey: 'Approver', approvers: {}, defaultApprover: '',
   *   rebootOrderTagKey: 'RebootOrder', rebootTimeoutSeconds: 1800, healthChecks: {} }
   */
  readonly approval?: Partial<ApprovalConfig>;
}

export const DEFAULT_TARGET_TAGS: Record<string, string[]> = { PatchGroup: ['default'] };

/** The defaults with every field set, as the Lambdas receive them (PIPELINE_DEFAULTS). */
export function resolveDefaults(d: PatchRunDefaults = {}): Omit<RunConfig, 'region' | 'dryRun' | 'window'> {
  const stageTimeouts: Record<string, number> = {};
  for (const s of STAGES) stageTimeouts[s.id] = s.timeoutSeconds;
  // Unknown keys are kept so that validation names them.
  Object.assign(stageTimeouts, d.stageTimeouts);
  const resolved = {
    targetTags: d.targetTags ?? DEFAULT_TARGET_TAGS,
    instanceIds: [],
    batchSize: d.batchSize ?? 50,
    batchConcurrency: d.batchConcurrency ?? 10,
    maxConcurrency: d.maxConcurrency ?? '25%',
    maxErrors: d.maxErrors ?? '100%',
    stageTimeouts,
    pollIntervalSeconds: d.pollIntervalSeconds ?? 30,
    powerOnTimeoutSeconds: d.powerOnTimeoutSeconds ?? 900,
    snapshotTimeoutSeconds: d.snapshotTimeoutSeconds ?? 3600,
    snapshotRetentionDays: d.snapshotRetentionDays ?? 14,
    applicationTagKey: d.applicationTagKey ?? 'Application',
    ownerTagKey: d.ownerTagKey ?? 'Owner',
    changeCalendarName: d.changeCalendarName ?? '',
    approval: { ...DEFAULT_APPROVAL, ...d.approval },
  };
  validateDefaults(resolved);
  return resolved;
}

const RATE = /^([1-9][0-9]*%?|0)$/;

/** Rejects a deploy-time configuration that could never run, with the fix. */
function validateDefaults(d: Omit<RunConfig, 'region' | 'dryRun' | 'window'>): void {
  const fail = (field: string, fix: string): never => {
    throw new Error(`patch-pipeline defaults: ${field} ${fix}`);
  };
  if (Object.keys(d.targetTags).length === 0) fail('targetTags', 'must hold at least one tag key, e.g. { "PatchGroup": ["prod"] }');
  for (const [k, v] of Object.entries(d.targetTags)) {
    if (!Array.isArray(v) || v.length === 0) fail(`targetTags.${k}`, 'must be a non-empty list of tag values');
  }
  if (!Number.isInteger(d.batchSize) || d.batchSize < 1 || d.batchSize > 50) {
    fail('batchSize', `is ${d.batchSize}; set 1..50 (SendCommand accepts at most 50 instance ids)`);
  }
  if (!Number.isInteger(d.batchConcurrency) || d.batchConcurrency < 1 || d.batchConcurrency > 100) fail('batchConcurrency', 'must be 1..100');
  if (!RATE.test(d.maxConcurrency)) fail('maxConcurrency', `is "${d.maxConcurrency}"; use a number like "10" or a percentage like "25%"`);
  if (!RATE.test(d.maxErrors)) fail('maxErrors', `is "${d.maxErrors}"; use a number like "1" or a percentage like "100%"`);
  for (const [id, t] of Object.entries(d.stageTimeouts)) {
    if (!STAGES.some((s) => s.id === id)) fail(`stageTimeouts.${id}`, `is not a stage; stages are ${STAGES.map((s) => s.id).join(', ')}`);
    if (!Number.isInteger(t) || t < 60 || t > 172800) fail(`stageTimeouts.${id}`, 'must be 60..172800 seconds');
  }
  if (d.pollIntervalSeconds < 5 || d.pollIntervalSeconds > 3600) fail('pollIntervalSeconds', 'must be 5..3600');
  if (d.snapshotRetentionDays < 1 || d.snapshotRetentionDays > 3650) fail('snapshotRetentionDays', 'must be 1..3650');
  const a = d.approval;
  if (a.mode !== 'approval' && a.mode !== 'skip') fail('approval.mode', `is "${a.mode}"; use "approval" or "skip"`);
  if (!Number.isInteger(a.timeoutSeconds) || a.timeoutSeconds < 300 || a.timeoutSeconds > 604800) {
    fail('approval.timeoutSeconds', 'must be 300..604800 seconds (an approval task always has a timeout)');
  }
}
