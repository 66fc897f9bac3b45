import { STAGES } from '../../../lib/stages';
import { allStates, resolvedDefinition, synthStack } from '../../helpers/stack';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const aslValidator = require('asl-validator') as (d: unknown) => { isValid: boolean; errorsText: (sep?: string) => string };

const { template } = synthStack();
const definition = resolvedDefinition(template);
const states = allStates(definition);
const batchProcessor = definition.States['Patch batches'].ItemProcessor;

/** Names of the states reachable from `start` (Next, Default, Choices, Catch), within one States scope. */
function reachable(start: string, scope: Record<string, any>): Set<string> {
  const seen = new Set<string>();
  const todo = [start];
  while (todo.length) {
    const name = todo.pop()!;
    if (seen.has(name) || !scope[name]) continue;
    seen.add(name);
    const s = scope[name];
    for (const n of [s.Next, s.Default, ...(s.Choices ?? []).map((c: any) => c.Next), ...(s.Catch ?? []).map((c: any) => c.Next)]) {
      if (n) todo.push(n);
    }
  }
  return seen;
}

/** The path of states from `start` following Next / Default only (the main line, no retries or catches). */
function mainLine(start: string, scope: Record<string, any>): string[] {
  const out: string[] = [];
  let name: string | undefined = start;
  while (name && !out.includes(name)) {
    out.push(name);
    const s: any = scope[name];
    name = s.Type === 'Choice' ? s.Choices.find((c: any) => c.BooleanEquals === true)?.Next ?? s.Default : s.Next;
  }
  return out;
}

describe('patch workflow', () => {
  test('is a valid Amazon States Language definition', () => {
    const result = aslValidator(definition);
    expect(result.errorsText('\n')).toBe('');
    expect(result.isValid).toBe(true);
  });

  test('uses JSONPath only: no JSONata, no Assign (the local engine cannot run them)', () => {
    const json = JSON.stringify(definition);
    expect(json).not.toMatch(/"QueryLanguage":"JSONata"|"Assign"|\{%/);
  });

  test('gives every Lambda task a timeout and a retry on throttling', () => {
    for (const [name, s] of states) {
      if (s.Type !== 'Task') continue;
      expect({ name, timeout: s.TimeoutSeconds > 0 }).toEqual({ name, timeout: true });
      const retried = (s.Retry ?? []).flatMap((r: any) => r.ErrorEquals);
      expect(retried).toEqual(expect.arrayContaining(['ThrottlingException', 'Lambda.ServiceException']));
    }
  });

  test('runs power-on, snapshot, then the six stages in order, each followed by its marker check loop', () => {
    const line = mainLine(batchProcessor.StartAt, batchProcessor.States);
    const order = ['power-on', 'snapshot', ...STAGES.map((s) => s.id)];
    const starts = order.map((id) => line.findIndex((n) => n.startsWith(`${id}: `)));
    expect(starts.every((i) => i >= 0)).toBe(true);
    expect([...starts].sort((a, b) => a - b)).toEqual(starts);
    expect(STAGES.map((s) => s.id)).toEqual(['agent-update', 'pre-inventory', 'patch', 'post-inventory', 'compare', 'failed-check']);
    for (const stage of STAGES) {
      const send = batchProcessor.States[`${stage.id}: send command`];
      expect(send.Next).toBe(`${stage.id}: complete?`);
      const choice = batchProcessor.States[`${stage.id}: complete?`];
      expect(choice.Default).toBe(`${stage.id}: wait`);
      expect(batchProcessor.States[`${stage.id}: wait`]).toMatchObject({ Type: 'Wait', SecondsPath: '$.gate.waitSeconds', Next: `${stage.id}: check markers` });
      expect(batchProcessor.States[`${stage.id}: check markers`].Next).toBe(`${stage.id}: complete?`);
      expect(send.Parameters.stage).toMatchObject({ id: stage.id, documentName: expect.any(String) });
    }
  });

  test('sends the documents in batches through a Distributed Map of Standard child executions', () => {
    expect(definition.States['Patch batches']).toMatchObject({
      Type: 'Map',
      ItemsPath: '$.discovery.batches',
      MaxConcurrencyPath: '$.config.batchConcurrency',
      ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' } },
    });
  });

  test('leads every Catch to restore and report', () => {
    const top = definition.States;
    for (const [name, s] of Object.entries<any>(top)) {
      for (const c of s.Catch ?? []) {
        const after = reachable(c.Next, top);
        if (name === 'Write report') continue;
        expect({ name, restore: after.has('restore: stop instances that were stopped') || name.startsWith('restore'), report: after.has('Write report') }).toEqual({
          name,
          restore: true,
          report: true,
        });
      }
    }
    // Inside a batch, a caught error ends the batch; the run then restores and reports.
    for (const s of Object.values<any>(batchProcessor.States)) {
      for (const c of s.Catch ?? []) expect(c.Next).toBe('Batch failed');
    }
    expect(reachable('Patch batches', top).has('Write report')).toBe(true);
  });

  test('fails at once on invalid input, with the cause from normalize-input', () => {
    expect(definition.StartAt).toBe('Normalize input');
    expect(definition.States['Input valid?'].Choices[0]).toMatchObject({ Variable: '$.valid', BooleanEquals: false, Next: 'Invalid input' });
    expect(definition.States['Invalid input']).toMatchObject({ Type: 'Fail', ErrorPath: '$.error', CausePath: '$.cause' });
  });

  test('carries references and counts, never the fleet, in the execution state', () => {
    for (const s of states.values()) {
      if (s.Type !== 'Task') continue;
      const keys = Object.keys(s.Parameters ?? {});
      expect(keys.some((k) => /instances|targets/i.test(k))).toBe(false);
    }
  });
});
