import Ajv, { ErrorObject, ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { RUN_ID_PATTERN } from '../shared/keys';
import { logger } from '../shared/logger';
import { ApprovalConfig, DEFAULT_APPROVAL } from '../shared/approvals';
import { NormalizeOutput, RunConfig } from '../shared/types';
import INPUT_SCHEMA from './input-schema.json';

/** The Lambda event the workflow builds around the execution input. */
export interface NormalizeInputEvent {
  readonly input?: unknown;
  readonly executionName: string;
  /** Stage ids of the deployed workflow, in order: the keys stageTimeouts may use. */
  readonly stages: string[];
}

/** What the core reads from the environment (the handler passes process.env). */
export interface NormalizeEnv {
  readonly PIPELINE_DEFAULTS?: string;
  readonly AWS_REGION?: string;
  readonly BUCKET_NAME?: string;
}

/** The deploy-time defaults: a RunConfig without the region (it comes from AWS_REGION). */
export type PipelineDefaults = Omit<RunConfig, 'region' | 'dryRun' | 'window'>;

/** The execution input, after schema validation. */
interface ExecutionInput {
  targets?: { tags?: Record<string, string | string[]>; instanceIds?: string[] };
  batchSize?: number;
  batchConcurrency?: number;
  maxConcurrency?: number | string;
  maxErrors?: number | string;
  stageTimeouts?: Record<string, number>;
  pollIntervalSeconds?: number;
  powerOnTimeoutSeconds?: number;
  snapshotTimeoutSeconds?: number;
  snapshotRetentionDays?: number;
  applicationTagKey?: string;
  ownerTagKey?: string;
  dryRun?: boolean;
  changeCalendarName?: string;
  window?: string;
  approval?: Partial<ApprovalConfig>;
}

/** A deployment bug (PIPELINE_DEFAULTS, AWS_REGION or BUCKET_NAME unusable): the task fails, it is not an input error. */
export class PipelineDefaultsError extends Error {
  public readonly name = 'PipelineDefaultsError';
}

export const INVALID_INPUT = 'InvalidInput';


/** Step Functions caps a Fail state's Cause at 32,768 characters. */
const MAX_CAUSE = 32_000;

/** How to fix each field, appended to every message about it. */
const FIX: Record<string, string> = {
  '': 'pass a JSON object, e.g. {} for the deployed defaults or {"batchSize": 10}',
  targets: 'set "targets" to {"tags": {"<key>": "<value>" | ["<value>", ...]}, "instanceIds": ["i-..."]}',
  'targets.tags': 'set "targets.tags" to a map of tag key to a string or a non-empty array of strings, e.g. {"PatchGroup": "web"}',
  'targets.instanceIds': 'set "targets.instanceIds" to an array of distinct instance ids such as "i-0123456789abcdef0" (at most 1000)',
  batchSize: 'set "batchSize" to an integer 1..50',
  batchConcurrency: 'set "batchConcurrency" to an integer 1..100',
  maxConcurrency: 'set "maxConcurrency" to a number of instances (e.g. 10 or "10") or a percentage 1%..100% (e.g. "10%")',
  maxErrors: 'set "maxErrors" to a number of errors (e.g. 0 or "1") or a percentage 0%..100% (e.g. "10%")',
  stageTimeouts: 'set "stageTimeouts" to a map of stage id to seconds 60..172800, e.g. {"patch": 7200}',
  pollIntervalSeconds: 'set "pollIntervalSeconds" to an integer 5..3600',
  powerOnTimeoutSeconds: 'set "powerOnTimeoutSeconds" to an integer 60..7200',
  snapshotTimeoutSeconds: 'set "snapshotTimeoutSeconds" to an integer 60..172800',
  snapshotRetentionDays: 'set "snapshotRetentionDays" to an integer 1..3650',
  applicationTagKey: 'set "applicationTagKey" to a tag key of 1-128 letters, digits or _ . : + = @ -',
  ownerTagKey: 'set "ownerTagKey" to a tag key of 1-128 letters, digits or _ . : + = @ -',
  dryRun: 'set "dryRun" to true (report only, change nothing) or false',
  changeCalendarName: 'set "changeCalendarName" to an SSM Change Calendar name or ARN, or "" for none',
 approval:
    'set "approval" to {"mode": "approval"|"skip", "timeoutSeconds": 300..604800, "approvers": {"<app>": "<approver>"}, ' +
    '"defaultApprover", "approverTagKey", "rebootOrderTagKey", "rebootTimeoutSeconds": 60..7200, "healthChecks": {"<app>": {"services", "units", "url"}}}',
  window: 'leave "window" to the patch-window schedules, or set 1-40 letters, digits, \'-\' or \'_\'',
};

/** Why a limit exists, where it is an AWS limit rather than a choice. */
const WHY: Record<string, string> = {
  batchSize: ' (SendCommand accepts at most 50 instance ids)',
};

/** What a value with alternatives (anyOf) may be. */
const ONE_OF: Record<string, string> = {
  'targets.tags': 'must be a string or a non-empty array of strings (at most 200 values of at most 256 characters)',
  maxConcurrency: 'must be an integer >= 1, or a string "N" (N >= 1) or "N%" (1..100)',
  maxErrors: 'must be an integer >= 0, or a string "N" (N >= 0) or "N%" (0..100)',
};

const DEFAULTS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: [
    'batchSize',
    'batchConcurrency',
    'maxConcurrency',
    'maxErrors',
    'stageTimeouts',
    'pollIntervalSeconds',
    'powerOnTimeoutSeconds',
    'snapshotTimeoutSeconds',
    'snapshotRetentionDays',
    'applicationTagKey',
    'ownerTagKey',
  ],
  properties: {
    targetTags: {
      type: 'object',
      propertyNames: { minLength: 1, maxLength: 128 },
      additionalProperties: { type: 'array', minItems: 1, items: { $ref: `${INPUT_SCHEMA.$id}#/$defs/tagValue` } },
    },
    instanceIds: { $ref: `${INPUT_SCHEMA.$id}#/$defs/instanceIds` },
    batchSize: { $ref: `${INPUT_SCHEMA.$id}#/$defs/batchSize` },
    batchConcurrency: { $ref: `${INPUT_SCHEMA.$id}#/$defs/batchConcurrency` },
    maxConcurrency: { type: 'string', pattern: INPUT_SCHEMA.$defs.maxConcurrency.anyOf[1].pattern },
    maxErrors: { type: 'string', pattern: INPUT_SCHEMA.$defs.maxErrors.anyOf[1].pattern },
    stageTimeouts: { $ref: `${INPUT_SCHEMA.$id}#/$defs/stageTimeouts` },
    pollIntervalSeconds: { $ref: `${INPUT_SCHEMA.$id}#/$defs/pollIntervalSeconds` },
    powerOnTimeoutSeconds: { $ref: `${INPUT_SCHEMA.$id}#/$defs/powerOnTimeoutSeconds` },
    snapshotTimeoutSeconds: { $ref: `${INPUT_SCHEMA.$id}#/$defs/snapshotTimeoutSeconds` },
    snapshotRetentionDays: { $ref: `${INPUT_SCHEMA.$id}#/$defs/snapshotRetentionDays` },
    applicationTagKey: { $ref: `${INPUT_SCHEMA.$id}#/$defs/tagKey` },
    ownerTagKey: { $ref: `${INPUT_SCHEMA.$id}#/$defs/tagKey` },
    changeCalendarName: { $ref: `${INPUT_SCHEMA.$id}#/$defs/changeCalendarName` },
    approval: { $ref: `${INPUT_SCHEMA.$id}#/$defs/approval` },
    // Tolerated so a construct may pass a whole RunConfig; AWS_REGION always wins.
    region: { type: 'string' },
  },
} as const;

const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
addFormats(ajv);
ajv.addSchema(INPUT_SCHEMA);
const validateDefaults = ajv.compile(DEFAULTS_SCHEMA);
const inputValidators = new Map<string, ValidateFunction>();

/**
 * The shipped schema keys stageTimeouts by any stage-like id; at run time the deployed stage ids
 * are the only allowed keys (additionalProperties false), so a typo is named, not ignored.
 */
function inputValidator(stages: readonly string[]): ValidateFunction {
  const cacheKey = stages.join('\n');
  let validate = inputValidators.get(cacheKey);
  if (!validate) {
    const schema = JSON.parse(JSON.stringify(INPUT_SCHEMA)) as { $id?: string; $defs: Record<string, unknown> };
    delete schema.$id;
    schema.$defs.stageTimeouts = {
      description: INPUT_SCHEMA.$defs.stageTimeouts.description,
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(stages.map((id) => [id, { $ref: '#/$defs/stageTimeout' }])),
    };
    validate = ajv.compile(schema);
    inputValidators.set(cacheKey, validate);
  }
  return validate;
}

/** Reads and checks PIPELINE_DEFAULTS, AWS_REGION and BUCKET_NAME; throws on a deployment bug. */
export function loadDefaults(env: NormalizeEnv): { defaults: PipelineDefaults; region: string; bucket: string } {
  if (!env.PIPELINE_DEFAULTS) throw new PipelineDefaultsError('PIPELINE_DEFAULTS is not set: the PatchPipeline construct sets it on the function');
  let parsed: unknown;
  try {
    parsed = JSON.parse(env.PIPELINE_DEFAULTS);
  } catch (err) {
    throw new PipelineDefaultsError(`PIPELINE_DEFAULTS is not valid JSON: ${(err as Error).message}`);
  }
  if (!validateDefaults(parsed)) {
    const problems = describeErrors(validateDefaults.errors ?? [], 'PIPELINE_DEFAULTS', false);
    throw new PipelineDefaultsError(`PIPELINE_DEFAULTS is not a valid RunConfig: ${problems.join('; ')}`);
  }
  if (!env.AWS_REGION) throw new PipelineDefaultsError('AWS_REGION is not set');
  if (!env.BUCKET_NAME) throw new PipelineDefaultsError('BUCKET_NAME is not set: the PatchPipeline construct sets it on the function');
  const { region: _ignored, ...rest } = parsed as PipelineDefaults & { region?: string };
  void _ignored;
  return {
    defaults: {
      ...rest,
      targetTags: rest.targetTags ?? {},
      instanceIds: rest.instanceIds ?? [],
      changeCalendarName: rest.changeCalendarName ?? '',
      approval: { ...DEFAULT_APPROVAL, ...(rest.approval ?? {}) },
    },
    region: env.AWS_REGION,
    bucket: env.BUCKET_NAME,
  };
}

/**
 * Validates the execution input and merges it over the deployed defaults. Bad input never throws:
 * it returns valid=false with a cause naming every bad field and its fix (the workflow fails the
 * execution with it). A broken deployment (PIPELINE_DEFAULTS) throws.
 */
export function normalizeInput(event: NormalizeInputEvent, env: NormalizeEnv): NormalizeOutput {
  const { defaults, region, bucket } = loadDefaults(env);
  if (!Array.isArray(event.stages) || event.stages.some((s) => typeof s !== 'string')) {
    throw new PipelineDefaultsError('the workflow must pass "stages" (the stage ids) to normalize-input');
  }
  const problems: string[] = [];

  const runId = event.executionName;
  if (typeof runId !== 'string' || !RUN_ID_PATTERN.test(runId)) {
    problems.push(
      `executionName ${JSON.stringify(runId)} must match ${RUN_ID_PATTERN.source} (it becomes the run id in S3 keys and document parameters): ` +
        "start the execution with a name of 1-80 letters, digits, '-' or '_'",
    );
  }

  const raw = event.input === undefined || event.input === null ? {} : event.input;
  const validate = inputValidator(event.stages);
  if (!validate(raw)) problems.push(...describeErrors(validate.errors ?? [], 'input', true));

  if (problems.length === 0) {
    const config = merge(defaults, raw as ExecutionInput, region);
    if (Object.keys(config.targetTags).length === 0 && config.instanceIds.length === 0) {
      problems.push(
        'input.targets selects no instance (no tag filter and no instance id): ' +
          'set "targets.tags" (e.g. {"PatchGroup": "web"}) or "targets.instanceIds", or deploy with default target tags',
      );
    } else {
      logger.info('input normalized', { runId, config });
      return { valid: true, runId, bucket, config };
    }
  }

  logger.warn('invalid execution input', { executionName: runId, problems });
  const cause = problems.join('; ');
  return { valid: false, error: INVALID_INPUT, cause: cause.length > MAX_CAUSE ? `${cause.slice(0, MAX_CAUSE)}...` : cause };
}

function merge(d: PipelineDefaults, input: ExecutionInput, region: string): RunConfig {
  const tags = input.targets?.tags;
  return {
    targetTags: tags
      ? Object.fromEntries(Object.entries(tags).map(([k, v]) => [k, Array.isArray(v) ? [...v] : [v]]))
      : d.targetTags,
    instanceIds: input.targets?.instanceIds ?? d.instanceIds,
    batchSize: input.batchSize ?? d.batchSize,
    batchConcurrency: input.batchConcurrency ?? d.batchConcurrency,
    maxConcurrency: input.maxConcurrency !== undefined ? String(input.maxConcurrency) : d.maxConcurrency,
    maxErrors: input.maxErrors !== undefined ? String(input.maxErrors) : d.maxErrors,
    stageTimeouts: { ...d.stageTimeouts, ...(input.stageTimeouts ?? {}) },
    pollIntervalSeconds: input.pollIntervalSeconds ?? d.pollIntervalSeconds,
    powerOnTimeoutSeconds: input.powerOnTimeoutSeconds ?? d.powerOnTimeoutSeconds,
    snapshotTimeoutSeconds: input.snapshotTimeoutSeconds ?? d.snapshotTimeoutSeconds,
    snapshotRetentionDays: input.snapshotRetentionDays ?? d.snapshotRetentionDays,
    applicationTagKey: input.applicationTagKey ?? d.applicationTagKey,
    ownerTagKey: input.ownerTagKey ?? d.ownerTagKey,
    region,
    changeCalendarName: input.changeCalendarName ?? d.changeCalendarName,
    dryRun: input.dryRun ?? false,
    window: input.window ?? '',
    // Given approval fields replace the deployed ones one by one (a given map replaces the map).
    approval: { ...d.approval, ...(input.approval ?? {}) },
  };
}

/**
 * One message per bad value: '<json path> <what is wrong>: <fix>'. Errors inside an anyOf are
 * folded into the anyOf's own message, which says what the value may be.
 */
function describeErrors(errors: readonly ErrorObject[], root: string, withFix: boolean): string[] {
  const anyOfPaths = errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath);
  const relevant = errors.filter(
    (e) => e.keyword === 'anyOf' || !anyOfPaths.some((p) => e.instancePath === p || e.instancePath.startsWith(`${p}/`)),
  );
  const out: string[] = [];
  for (const e of relevant) {
    const segments = e.instancePath.split('/').slice(1).map(unescapePointer);
    if (e.keyword === 'additionalProperties') segments.push(String((e.params as { additionalProperty: string }).additionalProperty));
    if (e.keyword === 'propertyNames') continue; // reported by its nested error, which names the key
    const path = jsonPath(root, segments);
    const field = fieldOf(segments);
    const fix = !withFix ? '' : e.keyword === 'additionalProperties' && segments.length === 1 ? ': remove it or correct its spelling' : FIX[field] ? `: ${FIX[field]}` : '';
    const message = `${path} ${what(e, field, segments)}${fix}`;
    if (!out.includes(message)) out.push(message);
  }
  return out;
}

function what(e: ErrorObject, field: string, segments: string[]): string {
  const p = e.params as Record<string, unknown>;
  const got = e.keyword === 'additionalProperties' ? '' : `, got ${preview(e.data)}`;
  switch (e.keyword) {
    case 'additionalProperties': {
      const allowed = Object.keys((e.parentSchema as { properties?: object })?.properties ?? {});
      const parent = segments.slice(0, -1).join('.');
      const kind = parent === 'stageTimeouts' ? 'unknown stage id; stage ids are' : 'unknown field; allowed fields are';
      return `is an ${kind} ${allowed.length ? allowed.join(', ') : '(none)'}`;
    }
    case 'type':
      return `must be ${article(String(p.type))}${got}`;
    case 'maximum':
      return `must be <= ${String(p.limit)}${WHY[field] ?? ''}${got}`;
    case 'minimum':
      return `must be >= ${String(p.limit)}${got}`;
    case 'maxItems':
      return `must have at most ${String(p.limit)} items${got.length > 60 ? '' : got}`;
    case 'minItems':
      return `must have at least ${String(p.limit)} item${p.limit === 1 ? '' : 's'}`;
    case 'maxProperties':
      return `must have at most ${String(p.limit)} keys`;
    case 'uniqueItems':
      return `must not repeat a value (items ${String(p.j)} and ${String(p.i)} are equal)`;
    case 'pattern':
      return `must match ${String(p.pattern)}${got}`;
    case 'minLength':
      return `must be at least ${String(p.limit)} characters long${got}`;
    case 'maxLength':
      return `must be at most ${String(p.limit)} characters long`;
    case 'anyOf':
      return `${ONE_OF[field] ?? 'is not valid'}${got}`;
    default:
      return `${e.message ?? 'is not valid'}${got}`;
  }
}

/** The top-level field (or targets.<field>) whose fix applies. */
function fieldOf(segments: string[]): string {
  if (segments[0] === 'targets' && (segments[1] === 'tags' || segments[1] === 'instanceIds')) return `targets.${segments[1]}`;
  return segments[0] ?? '';
}

function jsonPath(root: string, segments: string[]): string {
  return segments.reduce(
    (path, s) => (/^\d+$/.test(s) ? `${path}[${s}]` : /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(s) ? `${path}.${s}` : `${path}[${JSON.stringify(s)}]`),
    root,
  );
}

const unescapePointer = (s: string): string => s.replace(/~1/g, '/').replace(/~0/g, '~');

const article = (type: string): string => (/^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`);

function preview(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  const type = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  return `${type} ${text.length > 60 ? `${text.slice(0, 57)}...` : text}`;
}
