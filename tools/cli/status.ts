import { S3Client } from '@aws-sdk/client-s3';
import { DescribeExecutionCommand, ExecutionStatus, GetExecutionHistoryCommand, SFNClient } from '@aws-sdk/client-sfn';
import { batchKey, runDocumentKey, RUN_ID_PATTERN } from '../../lambda/shared/keys';
import { getJson } from '../../lambda/shared/s3-json';
import { BatchDocument, InstanceProgress, RunDocument } from '../../lambda/shared/types';
import { CliError, UsageError } from './errors';
import { executionArnOf, parseExecutionArn, resolveStateMachineArn } from './state-machine';

export const BUCKET_ENV = 'PATCH_PIPELINE_BUCKET';
/** The state whose output carries the run's bucket (lib/workflow/patch-workflow.ts). */
export const NORMALIZE_STATE = 'Normalize input';
export const POWER_ON = 'power-on';
export const SNAPSHOT = 'snapshot';

export interface RunTarget {
  readonly runId: string;
  readonly executionArn: string;
}

export interface StepCounts {
  readonly step: string;
  /** Instances that can still reach or have reached this step (targets minus those that failed before it). */
  readonly total: number;
  readonly done: number;
  readonly failed: number;
  readonly pending: number;
}

export interface RunProgress {
  readonly targets: number;
  readonly skipped: number;
  readonly batches: number;
  /** Batches listed in run.json whose document is not (yet) in S3. */
  readonly missingBatches: string[];
  readonly steps: StepCounts[];
}

export interface RunStatus {
  readonly runId: string;
  readonly executionArn: string;
  readonly status: ExecutionStatus | string;
  readonly startDate?: Date;
  readonly stopDate?: Date;
  readonly error?: string;
  readonly bucket?: string;
  /** Undefined until discovery wrote run.json. */
  readonly progress?: RunProgress;
}

export interface StatusDeps {
  readonly sfn: SFNClient;
  readonly s3: S3Client;
  readonly env?: NodeJS.ProcessEnv;
}

/** A run id, or an execution ARN (whose last segment is the run id). */
export async function resolveRun(sfn: SFNClient, run: string, stateMachineFlag: string | undefined, env: NodeJS.ProcessEnv): Promise<RunTarget> {
  if (run.startsWith('arn:')) {
    const parsed = parseExecutionArn(run);
    if (!parsed) throw new UsageError(`${run} is not an execution ARN (arn:aws:states:<region>:<account>:execution:<state machine>:<run id>)`);
    return { runId: parsed.runId, executionArn: run };
  }
  if (!RUN_ID_PATTERN.test(run)) throw new UsageError(`run id ${JSON.stringify(run)} must be 1-80 letters, digits, '-' or '_' (the execution name)`);
  const stateMachineArn = await resolveStateMachineArn(sfn, stateMachineFlag, env);
  return { runId: run, executionArn: executionArnOf(stateMachineArn, run) };
}

/**
 * The run's bucket: the flag, else PATCH_PIPELINE_BUCKET, else what normalize-input returned in
 * the execution (the deployed bucket, whatever the stack called it).
 */
export async function resolveBucket(sfn: SFNClient, executionArn: string, flag: string | undefined, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const given = flag ?? env[BUCKET_ENV];
  if (given) return given;
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new GetExecutionHistoryCommand({ executionArn, nextToken, includeExecutionData: true, maxResults: 200 }));
    for (const ev of page.events ?? []) {
      const exited = ev.stateExitedEventDetails;
      if (ev.type === 'TaskStateExited' && exited?.name === NORMALIZE_STATE) {
        const bucket = bucketIn(exited.output);
        if (bucket) return bucket;
      }
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return undefined;
}

function bucketIn(output: string | undefined): string | undefined {
  if (!output) return undefined;
  try {
    const o = JSON.parse(output) as { bucket?: unknown; Payload?: { bucket?: unknown } };
    const b = o.bucket ?? o.Payload?.bucket;
    return typeof b === 'string' && b ? b : undefined;
  } catch {
    return undefined;
  }
}

/** The execution's state plus the per-step progress the run keeps in S3. */
export async function runStatus(
  run: RunTarget,
  opts: { bucket?: string; knownBucket?: string },
  deps: StatusDeps,
): Promise<RunStatus> {
  const env = deps.env ?? process.env;
  let exec;
  try {
    exec = await deps.sfn.send(new DescribeExecutionCommand({ executionArn: run.executionArn }));
  } catch (err) {
    if ((err as { name?: string }).name === 'ExecutionDoesNotExist') {
      throw new CliError(`no run ${run.runId}: ${run.executionArn} does not exist (check the run id, AWS_REGION and the state machine)`);
    }
    throw err;
  }
  const bucket = opts.knownBucket ?? (await resolveBucket(deps.sfn, run.executionArn, opts.bucket, env));
  const error = exec.error ? `${exec.error}${exec.cause ? `: ${exec.cause}` : ''}` : undefined;
  const base = { runId: run.runId, executionArn: run.executionArn, status: exec.status ?? 'UNKNOWN', startDate: exec.startDate, stopDate: exec.stopDate, error, bucket };
  if (!bucket) return base;
  return { ...base, progress: await readProgress(deps.s3, bucket, run.runId) };
}

/** Per-step counts from run.json and the batch documents; undefined before discovery wrote run.json. */
export async function readProgress(s3: S3Client, bucket: string, runId: string): Promise<RunProgress | undefined> {
  const run = await getJson<RunDocument>(s3, bucket, runDocumentKey(runId));
  if (!run) return undefined;
  const progress = new Map<string, InstanceProgress>();
  const missingBatches: string[] = [];
  await Promise.all(
    run.batches.map(async (b) => {
      const doc = await getJson<BatchDocument>(s3, bucket, batchKey(runId, b.batchId));
      if (!doc) missingBatches.push(b.batchId);
      for (const [id, p] of Object.entries(doc?.instances ?? {})) progress.set(id, p);
    }),
  );
  const steps = [POWER_ON, SNAPSHOT, ...run.stages];
  return {
    targets: run.targets.length,
    skipped: run.skipped.length,
    batches: run.batches.length,
    missingBatches: missingBatches.sort(),
    steps: stepCounts(steps, run.targets.map((t) => ({ initialState: t.initialState, progress: progress.get(t.instanceId) }))),
  };
}

/**
 * For each step: done, failed there, or still to come. An instance that failed at an earlier step
 * left the pipeline and counts in no later step. A step is done once the instance shows its own
 * success or any sign of a later step (the batch document records outcomes, not gate exits).
 */
export function stepCounts(steps: string[], instances: { initialState: string; progress?: InstanceProgress }[]): StepCounts[] {
  const counts = steps.map((step) => ({ step, total: 0, done: 0, failed: 0, pending: 0 }));
  for (const { initialState, progress: p } of instances) {
    const reached = furthestEvidence(steps, initialState, p);
    let failedIndex = p?.status === 'failed' ? steps.indexOf(p.failedAt ?? '') : -1;
    // A failure at a step this CLI does not know is shown at the first step not finished.
    if (p?.status === 'failed' && failedIndex < 0) failedIndex = Math.min(reached + 1, steps.length - 1);
    steps.forEach((_, k) => {
      const c = counts[k];
      if (p?.status === 'failed') {
        if (k < failedIndex) {
          c.total++;
          c.done++;
        } else if (k === failedIndex) {
          c.total++;
          c.failed++;
        }
        return;
      }
      c.total++;
      if (k <= reached) c.done++;
      else c.pending++;
    });
  }
  return counts;
}

/** Index of the last step this instance certainly finished, -1 for none. */
function furthestEvidence(steps: string[], initialState: string, p: InstanceProgress | undefined): number {
  let last = -1;
  // A running instance has nothing to power on.
  if (initialState !== 'stopped') last = 0;
  if (p?.snapshotIds?.length) last = Math.max(last, 0);
  if (p?.snapshotState === 'completed') last = Math.max(last, 1);
  steps.forEach((step, k) => {
    const s = p?.stages[step];
    if (!s) return;
    // A stage was started only after power-on and snapshot finished.
    last = Math.max(last, s.status === 'Success' ? k : k - 1);
  });
  return last;
}

export const isTerminal = (status: string): boolean => status !== 'RUNNING' && status !== 'PENDING_REDRIVE';
