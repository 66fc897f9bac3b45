import { ListStateMachinesCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildInput, defaultRunId } from '../../../tools/cli/start';
import { cli, execArn, SM_ARN } from './cli-harness';

const sfn = mockClient(SFNClient);

beforeEach(() => {
  sfn.reset();
  sfn.on(StartExecutionCommand).callsFake(async (input: { name: string }) => ({ executionArn: execArn(input.name), startDate: new Date() }));
});

const sentInput = (): Record<string, unknown> => JSON.parse(sfn.commandCalls(StartExecutionCommand)[0].args[0].input.input ?? '{}');

describe('start', () => {
  test('starts the execution named after the run id with the built input, and prints ARN and console link', async () => {
    const r = await cli(['start', '--name', 'nightly-1', '--tags', 'PatchGroup=web,db', '--tags', 'Env=prod', '--instance-ids', 'i-0123456789abcdef0,i-89abcdef', '--batch-size', '10', '--state-machine-arn', SM_ARN]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
    expect(sfn).toHaveReceivedCommandWith(StartExecutionCommand, { stateMachineArn: SM_ARN, name: 'nightly-1' });
    expect(sentInput()).toEqual({
      targets: { tags: { PatchGroup: ['web', 'db'], Env: ['prod'] }, instanceIds: ['i-0123456789abcdef0', 'i-89abcdef'] },
      batchSize: 10,
    });
    expect(sfn).not.toHaveReceivedCommand(ListStateMachinesCommand);
    expect(r.stdout).toContain('run id:     nightly-1');
    expect(r.stdout).toContain(`execution:  ${execArn('nightly-1')}`);
    expect(r.stdout).toContain(`https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/${execArn('nightly-1')}`);
  });

  test('defaults the run id to manual-<UTC timestamp>, sends {} and takes the ARN from the environment', async () => {
    const now = new Date('2026-11-28T22:05:09.123Z');
    const r = await cli(['start'], { env: { PATCH_PIPELINE_STATE_MACHINE_ARN: SM_ARN }, now: () => now });
    expect(r.code).toBe(0);
    expect(defaultRunId(now)).toBe('manual-20261128T220509Z');
    expect(sfn).toHaveReceivedCommandWith(StartExecutionCommand, { stateMachineArn: SM_ARN, name: 'manual-20261128T220509Z', input: '{}' });
  });

  test('--dry-run passes "dryRun": true', async () => {
    const r = await cli(['start', '--dry-run', '--state-machine-arn', SM_ARN, '--json']);
    expect(r.code).toBe(0);
    expect(sentInput()).toEqual({ dryRun: true });
    expect(JSON.parse(r.stdout)).toMatchObject({ executionArn: expect.stringContaining(':execution:'), input: { dryRun: true } });
  });

  test('--input from a file or as JSON text; flags replace its fields', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pp-cli-'));
    const file = path.join(dir, 'input.json');
    fs.writeFileSync(file, JSON.stringify({ targets: { tags: { PatchGroup: 'old' }, instanceIds: ['i-0123456789abcdef0'] }, batchSize: 5, pollIntervalSeconds: 60 }));
    const r = await cli(['start', '--input', file, '--tags', 'PatchGroup=new', '--batch-size', '20', '--state-machine-arn', SM_ARN]);
    expect(r.code).toBe(0);
    expect(sentInput()).toEqual({ targets: { tags: { PatchGroup: ['new'] }, instanceIds: ['i-0123456789abcdef0'] }, batchSize: 20, pollIntervalSeconds: 60 });
    expect(buildInput({ input: '{"maxErrors": "0"}' })).toEqual({ maxErrors: '0' });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('finds the one PatchPipelineStateMachine* across ListStateMachines pages', async () => {
    sfn
      .on(ListStateMachinesCommand)
      .resolvesOnce({ stateMachines: [{ name: 'Other', stateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:Other', type: 'STANDARD', creationDate: new Date() }], nextToken: 'page-2' })
      .resolvesOnce({ stateMachines: [{ name: 'PatchPipelineStateMachineE9F1A2B3-AbCdEf', stateMachineArn: SM_ARN, type: 'STANDARD', creationDate: new Date() }] });
    const r = await cli(['start', '--name', 'r-1']);
    expect(r.code).toBe(0);
    expect(sfn).toHaveReceivedCommandTimes(ListStateMachinesCommand, 2);
    expect(sfn.commandCalls(ListStateMachinesCommand).map((c) => c.args[0].input.nextToken)).toEqual([undefined, 'page-2']);
    expect(sfn).toHaveReceivedCommandWith(StartExecutionCommand, { stateMachineArn: SM_ARN, name: 'r-1' });
  });

  test('several candidates: exit 1, one line naming them and the fix, nothing started', async () => {
    const other = SM_ARN.replace('E9F1A2B3', 'FFFF0000');
    sfn
      .on(ListStateMachinesCommand)
      .resolvesOnce({ stateMachines: [{ name: 'PatchPipelineStateMachineE9F1A2B3-AbCdEf', stateMachineArn: SM_ARN, type: 'STANDARD', creationDate: new Date() }], nextToken: 't' })
      .resolvesOnce({ stateMachines: [{ name: 'PatchPipelineStateMachineFFFF0000-AbCdEf', stateMachineArn: other, type: 'STANDARD', creationDate: new Date() }] });
    const r = await cli(['start']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(SM_ARN);
    expect(r.stderr).toContain(other);
    expect(r.stderr).toMatch(/--state-machine-arn .*PATCH_PIPELINE_STATE_MACHINE_ARN/);
    expect(sfn).not.toHaveReceivedCommand(StartExecutionCommand);
  });

  test('no candidate: exit 1 saying how to fix it', async () => {
    sfn.on(ListStateMachinesCommand).resolves({ stateMachines: [] });
    const r = await cli(['start']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no state machine named PatchPipelineStateMachine\* .*deploy the stack/);
  });

  test.each([
    [['--batch-size', '80'], /input\.batchSize must be <= 50.*got number 80/],
    [['--batch-size', 'ten'], /input\.batchSize must be an integer, got string "ten"/],
    [['--instance-ids', 'i-nothex'], /input\.targets\.instanceIds\[0\] must match/],
    [['--input', '{"batchSize": 5, "colour": "blue"}'], /input\.colour is an unknown field/],
    [['--input', '{"stageTimeouts": {"pach": 600}}'], /input\.stageTimeouts\.pach is an unknown stage id/],
    [['--name', 'has spaces'], /executionName "has spaces" must match/],
    [['--tags', 'PatchGroup'], /--tags "PatchGroup": expected Key=value/],
    [['--input', '{not json'], /--input "\{not json" is neither a JSON object nor an existing file|is not valid JSON/],
  ])('bad override %j: usage error (exit 2) naming the field, nothing sent', async (args, message) => {
    const r = await cli(['start', ...args, '--state-machine-arn', SM_ARN]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(sfn.calls()).toHaveLength(0);
  });

  test('an existing run id: exit 1, asks for another --name', async () => {
    sfn.on(StartExecutionCommand).rejects(Object.assign(new Error('Execution Already Exists'), { name: 'ExecutionAlreadyExists' }));
    const r = await cli(['start', '--name', 'dup', '--state-machine-arn', SM_ARN]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/a run named dup already exists .*pick another --name/);
  });

  test('an invalid --state-machine-arn is a usage error', async () => {
    const r = await cli(['start', '--state-machine-arn', 'PatchPipeline']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--state-machine-arn "PatchPipeline" is not a state machine ARN/);
  });
});

describe('command line', () => {
  test('simulate hands every argument to the simulation and returns its exit code', async () => {
    const seen: string[][] = [];
    const r = await cli(['simulate', '--instances', '20', '--fault', 'stage-fails:0:patch'], {
      simulate: async (args) => {
        seen.push(args);
        return 3;
      },
    });
    expect(seen).toEqual([['--instances', '20', '--fault', 'stage-fails:0:patch']]);
    expect(r.code).toBe(3);
  });

  test('an unknown command or option is a usage error (exit 2); --help is not', async () => {
    expect((await cli(['frobnicate'])).code).toBe(2);
    expect((await cli(['start', '--batchsize', '3'])).code).toBe(2);
    expect((await cli(['report'])).code).toBe(2);
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/start.*\n[\s\S]*status[\s\S]*report[\s\S]*simulate/);
  });
});
