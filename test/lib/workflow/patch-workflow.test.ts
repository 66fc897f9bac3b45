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
    // Choices: the default branch is the main line, except in a gate, whose default is the wait loop.
    name = s.Type === 'Choice' ? (scope[s.Default]?.Type === 'Wait' ? s.Choices.find((c: any) => c.BooleanEquals === true)?.Next : s.Default) : s.Next;
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

  test('gives every task a timeout and a retry on throttling, and Lambda tasks a retry on Lambda service errors', () => {
    for (const [name, s] of states) {
      if (s.Type !== 'Task') continue;
      const timeout = s.TimeoutSeconds > 0 || typeof s.TimeoutSecondsPath === 'string';
      expect({ name, timeout }).toEqual({ name, timeout: true });
      const retried = (s.Retry ?? []).flatMap((r: any) => r.ErrorEquals);
      const lambdaTask = /lambda/.test(JSON.stringify(s.Resource));
      expect(retried).toEqual(expect.arrayContaining(lambdaTask ? ['ThrottlingException', 'Lambda.ServiceException'] : ['ThrottlingException']));
    }
  });

  test('waits for each application owner with a task token and a timeout, and defers on rejection or timeout', () => {
    const wait = states.get('approval: wait for decision')!;
    expect(wait.Resource).toBe('arn:aws:states:::lambda:invoke.waitForTaskToken');
    expect(wait.TimeoutSecondsPath).toBe('$.config.approval.timeoutSeconds');
    expect(wait.Parameters.Payload['taskToken.$']).toBe('$$.Task.Token');
    expect(wait.Catch[0]).toMatchObject({ ErrorEquals: ['ApprovalRejected', 'States.Timeout'], Next: 'approval: record deferral' });
    // The token goes only to the approval function's wait action, never into a message.
    expect(JSON.stringify(states.get('approval: notify owner'))).not.toMatch(/Task\.Token/);
    const group = definition.States['Reboot approvals'].ItemProcessor.States;
    expect(mainLine('approval: prepare request', group)).toEqual(
      expect.arrayContaining(['approval: notify owner', 'approval: wait for decision', 'reboot: reboot in order', 'verify: chunks']),
    );
  });

  test('asks for approvals after every batch and before restoring power states', () => {
    const line = mainLine(definition.StartAt, definition.States);
    const at = (name: string): number => line.indexOf(name);
    expect(at('Patch batches')).toBeGreaterThan(0);
    expect(at('Plan approvals')).toBeGreaterThan(at('Patch batches'));
    expect(at('Reboot approvals')).toBeGreaterThan(at('Plan approvals'));
    expect(at('restore: stop instances that were stopped')).toBeGreaterThan(at('Reboot approvals'));
    expect(at('Write report')).toBeGreaterThan(at('restore: stop instances that were stopped'));
  });

  test('checks the change calendar before discovery, and reports at once on a freeze or a dry run', () => {
    expect(definition.States['Start run'].Next).toBe('Check change calendar');
    expect(definition.States['Change freeze?'].Choices[0]).toMatchObject({ Variable: '$.freeze.frozen', BooleanEquals: true, Next: 'Write report' });
    expect(definition.States['Dry run?'].Choices[0]).toMatchObject({ Variable: '$.config.dryRun', BooleanEquals: true, Next: 'Write report' });
    expect(definition.States['Change freeze']).toMatchObject({ Type: 'Fail', Error: 'ChangeFreeze', CausePath: '$.freeze.message' });
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
        // After the report, only the outcome is left to decide.
        if (name === 'Write report' || name === 'Notify run result') continue;
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

  test('announces every run after the report, and a notification that fails never changes the outcome', () => {
    expect(definition.States['Write report'].Next).toBe('Notify run result');
    const notify = definition.States['Notify run result'];
    expect(notify).toMatchObject({ Resource: 'arn:aws:states:::sns:publish', Next: 'Pipeline error?', ResultPath: null });
    expect(notify.Parameters).toMatchObject({ 'Subject.$': '$.report.subject', 'Message.$': '$.report.message' });
    expect(notify.Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.notifyError', Next: 'Pipeline error?' }]);
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
