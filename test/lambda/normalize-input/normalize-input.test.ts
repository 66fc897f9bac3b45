import { normalizeInput, NormalizeEnv } from '../../../lambda/normalize-input/normalize-input';
import { handler } from '../../../lambda/normalize-input/handler';
import { NormalizeOutput, RunConfig } from '../../../lambda/shared/types';
import { testConfig } from '../../helpers/fixtures';

const STAGES = ['agent-update', 'pre-inventory', 'patch', 'post-inventory', 'compare', 'failed-check'];

/** The deployed defaults: a RunConfig without the fields each run sets (region, dryRun, window). */
const { region: _region, dryRun: _dryRun, window: _window, ...DEFAULTS }: RunConfig = testConfig({ stageTimeouts: { 'agent-update': 900, patch: 7200 } });

const ENV: NormalizeEnv = { PIPELINE_DEFAULTS: JSON.stringify(DEFAULTS), AWS_REGION: 'eu-west-1', BUCKET_NAME: 'patch-bucket' };

/** What a run started by hand gets for the per-run fields. */
const PER_RUN = { region: 'eu-west-1', dryRun: false, window: '' };

const run = (input: unknown, executionName = 'run-2024-06-01', env = ENV): NormalizeOutput =>
  normalizeInput({ input, executionName, stages: STAGES }, env);

function config(out: NormalizeOutput): RunConfig {
  if (!out.valid) throw new Error(`expected valid input, got ${out.cause}`);
  return out.config;
}

function cause(out: NormalizeOutput): string {
  if (out.valid) throw new Error('expected invalid input');
  expect(out.error).toBe('InvalidInput');
  return out.cause;
}

describe('normalize-input', () => {
  test('{} gives the deployed defaults, the region from AWS_REGION and the bucket from BUCKET_NAME', () => {
    expect(run({})).toEqual({ valid: true, runId: 'run-2024-06-01', bucket: 'patch-bucket', config: { ...DEFAULTS, ...PER_RUN } });
  });

  test.each([null, undefined])('a missing input (%p) gives the defaults', (input) => {
    expect(config(run(input))).toEqual({ ...DEFAULTS, ...PER_RUN });
  });

  test('merges given fields over the defaults', () => {
    // Fields that come out as they went in; the others are normalized.
    const kept = {
      batchSize: 10,
      batchConcurrency: 2,
      maxErrors: '0',
      pollIntervalSeconds: 30,
      powerOnTimeoutSeconds: 600,
      snapshotTimeoutSeconds: 7200,
      snapshotRetentionDays: 30,
      applicationTagKey: 'App',
      ownerTagKey: 'team:owner',
    };
    const c = config(
      run({
        ...kept,
        targets: { tags: { Env: ['dev', 'test'], Team: 'ops' }, instanceIds: ['i-0123456789abcdef0'] },
        maxConcurrency: 5,
        stageTimeouts: { patch: 3600, compare: 300 },
      }),
    );
    expect(c).toEqual({
      ...kept,
      targetTags: { Env: ['dev', 'test'], Team: ['ops'] },
      instanceIds: ['i-0123456789abcdef0'],
      maxConcurrency: '5',
      stageTimeouts: { 'agent-update': 900, patch: 3600, compare: 300 },
      changeCalendarName: '',
      approval: DEFAULTS.approval,
      ...PER_RUN,
    });
  });

  test('given tags replace the default tags; instance ids alone keep them', () => {
    expect(config(run({ targets: { tags: { Env: 'prod' } } })).targetTags).toEqual({ Env: ['prod'] });
    const idsOnly = config(run({ targets: { instanceIds: ['i-0123abcd'] } }));
    expect(idsOnly.targetTags).toEqual({ PatchGroup: ['web'] });
    expect(idsOnly.instanceIds).toEqual(['i-0123abcd']);
    const byIdOnly = config(run({ targets: { tags: {}, instanceIds: ['i-0123abcd'] } }));
    expect(byIdOnly.targetTags).toEqual({});
  });

  test('takes a dry run, a change calendar and the patch window that started the run', () => {
    expect(config(run({ dryRun: true, changeCalendarName: 'year-end-freeze', window: 'dev-tuesday' }))).toMatchObject({
      dryRun: true,
      changeCalendarName: 'year-end-freeze',
      window: 'dev-tuesday',
    });
    expect(config(run({ changeCalendarName: 'arn:aws:ssm:eu-west-1:123456789012:document/freeze' })).changeCalendarName).toMatch(/^arn:/);
  });

  test('merges given approval fields over the deployed ones', () => {
    const c = config(run({ approval: { timeoutSeconds: 3600, approvers: { billing: 'ops@example.com' } } }));
    expect(c.approval).toEqual({ ...DEFAULTS.approval, timeoutSeconds: 3600, approvers: { billing: 'ops@example.com' } });
  });

  test('accepts percentages and numeric strings for maxConcurrency and maxErrors', () => {
    expect(config(run({ maxConcurrency: '100%', maxErrors: '0%' }))).toMatchObject({ maxConcurrency: '100%', maxErrors: '0%' });
    expect(config(run({ maxConcurrency: '25', maxErrors: 3 }))).toMatchObject({ maxConcurrency: '25', maxErrors: '3' });
  });

  describe('bad input names the field and the fix, and never throws', () => {
    test.each<[string, unknown, RegExp]>([
      ['an unknown field', { foo: 1 }, /input\.foo is an unknown field; allowed fields are targets, batchSize, .*ownerTagKey, dryRun, changeCalendarName, window, approval: remove it/],
      ['dryRun as a string', { dryRun: 'yes' }, /input\.dryRun must be a boolean, got string "yes": set "dryRun" to true/],
      ['a change calendar name with shell syntax', { changeCalendarName: 'x; rm -rf /' }, /input\.changeCalendarName must match .*: set "changeCalendarName" to an SSM Change Calendar name or ARN/],
      ['an approval timeout under 5 minutes', { approval: { timeoutSeconds: 10 } }, /input\.approval\.timeoutSeconds must be >= 300, got number 10: set "approval" to/],
      ['a health URL that is not local', { approval: { healthChecks: { web: { url: 'http://example.com/' } } } }, /input\.approval\.healthChecks\.web\.url must match/],
      ['an unknown nested field', { targets: { tag: { a: 'b' } } }, /input\.targets\.tag is an unknown field; allowed fields are tags, instanceIds/],
      ['a wrong type', { batchSize: '10' }, /input\.batchSize must be an integer, got string "10": set "batchSize" to an integer 1\.\.50/],
      ['a batch size over the SendCommand limit', { batchSize: 51 }, /input\.batchSize must be <= 50 \(SendCommand accepts at most 50 instance ids\), got number 51: set "batchSize" to an integer 1\.\.50/],
      ['a batch size of 0', { batchSize: 0 }, /input\.batchSize must be >= 1/],
      ['a non-integer batch size', { batchSize: 2.5 }, /input\.batchSize must be an integer, got number 2\.5/],
      ['a maxConcurrency that is no number or percentage', { maxConcurrency: 'abc' }, /input\.maxConcurrency must be an integer >= 1, or a string "N" .* got string "abc": set "maxConcurrency"/],
      ['a percentage over 100', { maxErrors: '150%' }, /input\.maxErrors must be .* got string "150%"/],
      ['an unknown stage id', { stageTimeouts: { pach: 600 } }, /input\.stageTimeouts\.pach is an unknown stage id; stage ids are agent-update, pre-inventory, patch, post-inventory, compare, failed-check/],
      ['a stage timeout out of range', { stageTimeouts: { patch: 10 } }, /input\.stageTimeouts\.patch must be >= 60, got number 10: set "stageTimeouts" to a map of stage id to seconds 60\.\.172800/],
      ['a stage timeout too long', { stageTimeouts: { patch: 172801 } }, /input\.stageTimeouts\.patch must be <= 172800/],
      ['tags that are not a map', { targets: { tags: ['PatchGroup'] } }, /input\.targets\.tags must be an object, got array \["PatchGroup"\]/],
      ['a tag value that is not a string', { targets: { tags: { Env: 3 } } }, /input\.targets\.tags\.Env must be a string or a non-empty array of strings.*got number 3: set "targets\.tags"/],
      ['an empty tag value list', { targets: { tags: { Env: [] } } }, /input\.targets\.tags\.Env must be a string or a non-empty array of strings/],
      ['a tag key with a space is quoted in the path', { targets: { tags: { 'Patch Group': [1] } } }, /input\.targets\.tags\["Patch Group"\] must be/],
      ['a malformed instance id', { targets: { instanceIds: ['i-xyz'] } }, /input\.targets\.instanceIds\[0\] must match .* got string "i-xyz": set "targets\.instanceIds"/],
      ['a poll interval too short', { pollIntervalSeconds: 1 }, /input\.pollIntervalSeconds must be >= 5/],
      ['a retention out of range', { snapshotRetentionDays: 4000 }, /input\.snapshotRetentionDays must be <= 3650/],
      ['a batch concurrency out of range', { batchConcurrency: 101 }, /input\.batchConcurrency must be <= 100/],
      ['an empty tag key name', { ownerTagKey: '' }, /input\.ownerTagKey must match/],
      ['an input that is not an object', ['x'], /input must be an object, got array \["x"\]: pass a JSON object/],
      ['empty targets', { targets: { tags: {} } }, /input\.targets selects no instance .*: set "targets\.tags"/],
    ])('%s', (_name, input, expected) => {
      expect(cause(run(input))).toMatch(expected);
    });

    test('a bad execution name', () => {
      expect(cause(run({}, 'my run!'))).toMatch(/executionName "my run!" must match \^\[A-Za-z0-9_-\]\{1,80\}\$.*start the execution with a name/);
    });

    test('names every bad field at once', () => {
      const c = cause(run({ foo: 1, batchSize: 51, maxConcurrency: 'abc', stageTimeouts: { nope: 100 }, targets: { tags: { a: 1 } } }, 'bad name'));
      for (const path of ['executionName', 'input.foo', 'input.batchSize', 'input.maxConcurrency', 'input.stageTimeouts.nope', 'input.targets.tags.a']) {
        expect(c).toContain(path);
      }
      expect(c.split('; ').length).toBeGreaterThanOrEqual(6);
    });

    test('the defaults must select something too', () => {
      const env = { ...ENV, PIPELINE_DEFAULTS: JSON.stringify({ ...DEFAULTS, targetTags: {} }) };
      expect(cause(run({}, 'run-1', env))).toMatch(/input\.targets selects no instance/);
      expect(config(run({ targets: { tags: { Env: 'dev' } } }, 'run-1', env)).targetTags).toEqual({ Env: ['dev'] });
    });
  });

  describe('a broken deployment throws', () => {
    test.each<[string, NormalizeEnv, RegExp]>([
      ['missing defaults', { ...ENV, PIPELINE_DEFAULTS: undefined }, /PIPELINE_DEFAULTS is not set/],
      ['defaults that are not JSON', { ...ENV, PIPELINE_DEFAULTS: '{' }, /PIPELINE_DEFAULTS is not valid JSON/],
      ['defaults out of range', { ...ENV, PIPELINE_DEFAULTS: JSON.stringify({ ...DEFAULTS, batchSize: 80 }) }, /PIPELINE_DEFAULTS is not a valid RunConfig: PIPELINE_DEFAULTS\.batchSize must be <= 50/],
      ['defaults missing a field', { ...ENV, PIPELINE_DEFAULTS: JSON.stringify({ ...DEFAULTS, ownerTagKey: undefined }) }, /ownerTagKey/],
      ['no bucket', { ...ENV, BUCKET_NAME: undefined }, /BUCKET_NAME is not set/],
    ])('%s', (_name, env, expected) => {
      expect(() => run({}, 'run-1', env)).toThrow(expected);
    });
  });

  test('the handler reads the environment', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, ENV);
    try {
      await expect(handler({ input: {}, executionName: 'run-h', stages: STAGES })).resolves.toMatchObject({ valid: true, runId: 'run-h' });
    } finally {
      process.env = saved;
    }
  });
});
