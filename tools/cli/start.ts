import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import fs from 'node:fs';
import { normalizeInput, PipelineDefaults } from '../../lambda/normalize-input/normalize-input';
import { STAGES } from '../../lib/stages';
import { CliError, UsageError } from './errors';
import { consoleLink, resolveStateMachineArn } from './state-machine';

export interface StartOptions {
  readonly name?: string;
  /** Key=v1,v2 (repeatable). */
  readonly tags?: string[];
  /** i-1,i-2 (repeatable). */
  readonly instanceIds?: string[];
  readonly batchSize?: string;
  readonly dryRun?: boolean;
  /** JSON text or a file holding it. */
  readonly input?: string;
  readonly stateMachineArn?: string;
}

export interface StartDeps {
  readonly sfn: SFNClient;
  readonly env?: NodeJS.ProcessEnv;
  readonly now?: () => Date;
}

export interface StartResult {
  readonly runId: string;
  readonly executionArn: string;
  readonly consoleUrl: string;
  readonly stateMachineArn: string;
  readonly input: Record<string, unknown>;
}

/** manual-20261128T220000Z: sorts by time and matches the run id pattern. */
export const defaultRunId = (now: Date): string => `manual-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;

/** The execution input: --input first, then each flag replaces its field. */
export function buildInput(o: StartOptions): Record<string, unknown> {
  const input: Record<string, unknown> = o.input !== undefined ? readInput(o.input) : {};
  if (o.tags?.length || o.instanceIds?.length) {
    const targets: Record<string, unknown> = isObject(input.targets) ? { ...input.targets } : {};
    if (o.tags?.length) targets.tags = parseTags(o.tags);
    if (o.instanceIds?.length) targets.instanceIds = o.instanceIds.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
    input.targets = targets;
  }
  // A non-integer stays a string so the schema names the field and what it must be.
  if (o.batchSize !== undefined) input.batchSize = /^-?\d+$/.test(o.batchSize.trim()) ? Number(o.batchSize) : o.batchSize;
  if (o.dryRun) input.dryRun = true;
  return input;
}

function readInput(raw: string): Record<string, unknown> {
  const fromFile = !raw.trim().startsWith('{') && fs.existsSync(raw);
  let text = raw;
  if (fromFile) text = fs.readFileSync(raw, 'utf-8');
  else if (!raw.trim().startsWith('{')) throw new UsageError(`--input ${JSON.stringify(raw)} is neither a JSON object nor an existing file`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--input${fromFile ? ` ${raw}` : ''} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(parsed)) throw new UsageError(`--input must be a JSON object, e.g. {"batchSize": 10}`);
  return parsed;
}

function parseTags(specs: string[]): Record<string, string[]> {
  const tags: Record<string, string[]> = {};
  for (const spec of specs) {
    const i = spec.indexOf('=');
    const values = i > 0 ? spec.slice(i + 1).split(',').map((s) => s.trim()).filter(Boolean) : [];
    if (i < 1 || values.length === 0) throw new UsageError(`--tags ${JSON.stringify(spec)}: expected Key=value or Key=v1,v2, e.g. --tags PatchGroup=web`);
    tags[spec.slice(0, i)] = [...(tags[spec.slice(0, i)] ?? []), ...values];
  }
  return tags;
}

/**
 * Validation stand-in for the deployed defaults: any valid RunConfig works, since only the input's
 * own errors are wanted. Its tag filter keeps "selects no instance" for inputs that clear the tags
 * without giving ids, which the deployed function refuses too.
 */
const VALIDATION_DEFAULTS: Partial<PipelineDefaults> = {
  targetTags: { PatchGroup: ['default'] },
  instanceIds: [],
  batchSize: 50,
  batchConcurrency: 10,
  maxConcurrency: '25%',
  maxErrors: '100%',
  stageTimeouts: Object.fromEntries(STAGES.map((s) => [s.id, s.timeoutSeconds])),
  pollIntervalSeconds: 30,
  powerOnTimeoutSeconds: 900,
  snapshotTimeoutSeconds: 3600,
  snapshotRetentionDays: 14,
  applicationTagKey: 'Application',
  ownerTagKey: 'Owner',
};

/**
 * Checks the input and run id with the deployed normalize-input code and schema, so the messages
 * are the ones an execution would fail with (naming the field and the fix).
 */
export function validateStart(runId: string, input: Record<string, unknown>): void {
  const res = normalizeInput(
    { input, executionName: runId, stages: STAGES.map((s) => s.id) },
    { PIPELINE_DEFAULTS: JSON.stringify(VALIDATION_DEFAULTS), AWS_REGION: 'us-east-1', BUCKET_NAME: 'validation' },
  );
  if (!res.valid) throw new UsageError(`invalid run: ${res.cause}`);
}

export async function startRun(o: StartOptions, deps: StartDeps): Promise<StartResult> {
  const now = (deps.now ?? (() => new Date()))();
  const runId = o.name ?? defaultRunId(now);
  const input = buildInput(o);
  validateStart(runId, input);
  const stateMachineArn = await resolveStateMachineArn(deps.sfn, o.stateMachineArn, deps.env ?? process.env);
  try {
    const res = await deps.sfn.send(new StartExecutionCommand({ stateMachineArn, name: runId, input: JSON.stringify(input) }));
    if (!res.executionArn) throw new CliError('StartExecution returned no executionArn');
    return { runId, executionArn: res.executionArn, consoleUrl: consoleLink(res.executionArn), stateMachineArn, input };
  } catch (err) {
    const name = (err as { name?: string }).name;
    if (name === 'ExecutionAlreadyExists') throw new CliError(`a run named ${runId} already exists in ${stateMachineArn}: pick another --name`);
    if (name === 'StateMachineDoesNotExist') throw new CliError(`state machine ${stateMachineArn} does not exist: check --state-machine-arn / PATCH_PIPELINE_STATE_MACHINE_ARN and AWS_REGION`);
    throw err;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
