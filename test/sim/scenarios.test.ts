import fs from 'node:fs';
import path from 'node:path';
import { simulate } from '../../sim/simulate';
import { Scenario } from '../../sim/scenario';
import { changingCalls, expectStatus } from './helpers';

// End-to-end runs of the "patch windows, dry runs, change freezes" features, each with its own moto.
const root = path.resolve(__dirname, '../..');
const defaults = JSON.parse(fs.readFileSync(path.join(root, 'cdk.json'), 'utf-8')).context['patch-pipeline'].defaults as Record<string, unknown>;
const small: Scenario = { instances: 3, windows: 0.34, stopped: 0.34, seed: 3, snapshotSeconds: 30 };
const id = (name: string) => `${name}-${Date.now()}`;

describe('simulate: inputs, dry runs, change freezes', () => {
  test('a run started with {} uses the deployed defaults', async () => {
    // A fourth instance outside the default target tags: discovery must leave it out.
    const scenario: Scenario = { ...small, instances: 3, fleet: [{}, {}, {}, { name: 'dev-box', tags: { PatchGroup: 'dev' } }] };
    const r = await simulate({ scenario, input: {}, runId: id('defaults'), outDir: '/tmp/pp-sim-test/defaults' });
    expectStatus(r, 'SUCCEEDED');
    const config = r.run?.config as Record<string, unknown>;
    for (const [k, v] of Object.entries(defaults)) expect({ [k]: config[k] }).toEqual({ [k]: v });
    expect(config).toMatchObject({ dryRun: false, changeCalendarName: '', instanceIds: [] });
    expect(r.report?.totals).toMatchObject({ matched: 3, targets: 3, patched: 3, failed: 0 });
    expect(r.instances.map((i) => i.status)).toEqual(['Patched', 'Patched', 'Patched', 'NotTargeted']);
    // One batch of at most batchSize: one SendCommand per stage; then verify once per approved group (3 applications).
    expect(r.ssmLog.filter((e) => e.operation === 'SendCommand' && e.stage !== 'verify').length).toBe(6);
    expect(r.metrics.awsApiCalls['ssm:SendCommand']).toBe(9);
  });

  test('a dry run changes nothing and lists what it would patch (calendar OPEN)', async () => {
    const scenario: Scenario = { ...small, calendar: { name: 'year-end-freeze', state: 'OPEN', nextTransitionTime: '2026-12-20T00:00:00Z' } };
    const r = await simulate({ scenario, input: { dryRun: true, changeCalendarName: 'year-end-freeze' }, runId: id('dry-run'), outDir: '/tmp/pp-sim-test/dry-run' });
    expectStatus(r, 'SUCCEEDED');
    expect(changingCalls(r)).toEqual({});
    expect(r.metrics.awsApiCalls['ssm:GetCalendarState']).toBe(1);
    expect(r.report).toMatchObject({ dryRun: true, totals: { targets: 3, wouldPatch: 3, patched: 0 } });
    expect(r.instances.map((i) => i.status)).toEqual(['WouldPatch', 'WouldPatch', 'WouldPatch']);
    // Power states untouched.
    for (const i of r.instances) expect(i.finalState).toBe(i.initialState);
  });

  test('a CLOSED change calendar stops the run before any change', async () => {
    const scenario: Scenario = { ...small, calendar: { name: 'year-end-freeze', state: 'CLOSED', nextTransitionTime: '2027-01-04T08:00:00Z' } };
    const r = await simulate({ scenario, input: { changeCalendarName: 'year-end-freeze' }, runId: id('freeze'), outDir: '/tmp/pp-sim-test/freeze' });
    expectStatus(r, 'FAILED');
    expect(r.error?.Error).toBe('ChangeFreeze');
    expect(r.error?.Cause).toMatch(/year-end-freeze/);
    expect(r.report?.changeFreeze).toMatchObject({ calendar: 'year-end-freeze', state: 'CLOSED', nextTransitionTime: '2027-01-04T08:00:00Z' });
    expect(changingCalls(r)).toEqual({});
    expect(r.metrics.awsApiCalls['ssm:GetCalendarState']).toBe(1);
    for (const i of r.instances) expect(i.finalState).toBe(i.initialState);
  });

  test('bad inputs fail the execution with a cause naming the field', async () => {
    const bad: { what: string; input: Record<string, unknown>; runId?: string; cause: RegExp; error?: string }[] = [
      { what: 'unknown field', input: { batchSise: 10 }, cause: /batchSise/ },
      { what: 'batchSize 51', input: { batchSize: 51 }, cause: /batchSize/ },
      { what: 'maxConcurrency "abc"', input: { maxConcurrency: 'abc' }, cause: /maxConcurrency/ },
      { what: 'stageTimeouts unknown stage', input: { stageTimeouts: { pacth: 600 } }, cause: /pacth/ },
      { what: 'stageTimeouts out of range', input: { stageTimeouts: { patch: 10 } }, cause: /stageTimeouts/ },
      { what: 'tags not a map of strings', input: { targets: { tags: { PatchGroup: 5 } } }, cause: /targets\.tags/ },
      { what: 'dryRun "yes"', input: { dryRun: 'yes' }, cause: /dryRun/ },
      { what: 'changeCalendarName with shell syntax', input: { changeCalendarName: 'cal;rm -rf /' }, cause: /changeCalendarName/ },
      { what: 'bad execution name', input: {}, runId: 'bad name!', cause: /executionName/ },
      { what: 'empty targets', input: { targets: { tags: {} } }, cause: /targets/ },
      { what: 'instanceIds malformed', input: { targets: { instanceIds: ['i-xyz'] } }, cause: /instanceIds/ },
      { what: 'pollIntervalSeconds 1', input: { pollIntervalSeconds: 1 }, cause: /pollIntervalSeconds/ },
      // Valid input, but a calendar SSM does not know: GetCalendarState's InvalidDocument fails the run after restore and report.
      { what: 'unknown change calendar', input: { changeCalendarName: 'no-such-calendar' }, cause: /no-such-calendar/, error: 'InvalidDocument' },
    ];
    const runs = bad.map((b, k) => ({ input: b.input, runId: b.runId ?? `bad-input-${k}-${Date.now()}` }));
    const r = await simulate({ scenario: { ...small, instances: 2 }, input: runs[0].input, runId: runs[0].runId, executions: runs.slice(1), outDir: '/tmp/pp-sim-test/bad-input' });
    const outcomes = [{ runId: r.runId, status: r.status, error: r.error }, ...r.executions];
    const seen = bad.map((b, k) => ({ what: b.what, status: outcomes[k].status, error: outcomes[k].error?.Error, causeNamesField: b.cause.test(outcomes[k].error?.Cause ?? '') }));
    const want = bad.map((b) => ({ what: b.what, status: 'FAILED', error: b.error ?? 'InvalidInput', causeNamesField: true }));
    // On a mismatch, print every cause.
    if (JSON.stringify(seen) !== JSON.stringify(want)) console.error(outcomes.map((o, k) => `${bad[k].what}: ${o.status} ${o.error?.Error}: ${o.error?.Cause}`).join('\n'));
    expect(seen).toEqual(want);
    // The main run (the first bad input) changed nothing.
    expect(changingCalls(r)).toEqual({});
  });
});
