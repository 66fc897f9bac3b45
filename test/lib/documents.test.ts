import { DOCUMENT_NAMES, documentScript, interpolateParameters, loadDocumentContent } from '../../lib/documents';
import { STAGES } from '../../lib/stages';
import { COMMON_DOCUMENT_PARAMETERS, documentParameters } from '../../lambda/shared/document-parameters';
import { areaPrefix, markerPrefix } from '../../lambda/shared/keys';
import { StageSpec } from '../../lambda/shared/types';
import { testConfig } from '../helpers/fixtures';

interface ParameterSpec {
  type: string;
  allowedPattern?: string;
  interpolationType?: string;
  default?: string;
}
interface StepSpec {
  action: string;
  name: string;
  precondition?: { StringEquals: [string, string] };
  inputs: { runCommand: string[]; timeoutSeconds: string; scriptFile?: string };
}
interface Content {
  schemaVersion: string;
  description: string;
  parameters: Record<string, ParameterSpec>;
  mainSteps: StepSpec[];
}

const content = (name: string): Content => loadDocumentContent(name) as unknown as Content;
const RUN_ID = 'run-2026-11-28T21-00';

const config = testConfig({
  targetTags: { PatchGroup: ['prod'] },
  batchConcurrency: 2,
  maxConcurrency: '10',
  maxErrors: '0',
  stageTimeouts: { patch: 7200 },
  snapshotRetentionDays: 7,
});

/** Realistic values per parameter: what documentParameters sends for every stage, and more. */
const REALISTIC: Record<string, string[]> = {
  RunId: [RUN_ID, 'a', 'nightly_2026_11_28', 'x'.repeat(80)],
  Stage: STAGES.map((s) => s.id),
  Bucket: ['patch-pipeline-123456789012-eu-west-1', 'my.bucket.name', 'abc'],
  Region: ['eu-west-1', 'us-east-1', 'us-gov-west-1', 'ap-southeast-2', 'il-central-1'],
  MarkerPrefix: STAGES.map((s) => markerPrefix(RUN_ID, s.id)),
  ApplicationTagKey: ['Application', 'app:name', 'cost-center.app'],
  OwnerTagKey: ['Owner', 'owner_email'],
  ExecutionTimeout: ['1', '600', '3600', '7200', '99999', '172800'],
  Phase: ['pre', 'post'],
  OutputPrefix: ['inventory/pre', 'inventory/post', 'compare', 'failed'].map((a) => areaPrefix(RUN_ID, a)),
  PrePrefix: [areaPrefix(RUN_ID, 'inventory/pre')],
  PostPrefix: [areaPrefix(RUN_ID, 'inventory/post')],
};

const INJECTIONS = [
  'x; rm -rf /',
  '$(id)',
  '`id`',
  'a\nb',
  'line\n',
  "it's",
  'say "hi"',
  'a b',
  'a|b',
  'a&&b',
  '${IFS}',
  '',
  '../../etc/passwd',
  'runs/x/markers/patch/$(id)/',
];

const matches = (pattern: string, value: string): boolean => new RegExp(pattern).test(value);

describe('documents', () => {
  test('one document per distinct stage document, in stage order', () => {
    expect(DOCUMENT_NAMES).toEqual(['agent-update', 'inventory', 'patch', 'compare', 'failed-check']);
  });

  describe.each(DOCUMENT_NAMES)('%s', (name) => {
    const doc = content(name);
    const stages = STAGES.filter((s) => s.document === name);

    test('is a schema 2.2 Command document with nothing the service would reject', () => {
      expect(doc.schemaVersion).toBe('2.2');
      expect(typeof doc.description).toBe('string');
      expect(Object.keys(doc).sort()).toEqual(['description', 'mainSteps', 'parameters', 'schemaVersion']);
      expect(JSON.stringify(doc)).not.toContain('scriptFile');
    });

    test('has one Linux shell step and one Windows PowerShell step, each behind a platformType precondition', () => {
      expect(doc.mainSteps).toHaveLength(2);
      const [linux, windows] = doc.mainSteps;
      expect(linux.action).toBe('aws:runShellScript');
      expect(linux.precondition).toEqual({ StringEquals: ['platformType', 'Linux'] });
      expect(windows.action).toBe('aws:runPowerShellScript');
      expect(windows.precondition).toEqual({ StringEquals: ['platformType', 'Windows'] });
      for (const step of doc.mainSteps) {
        expect(step.name).toMatch(/^[A-Za-z0-9_.-]+$/);
        expect(step.inputs.timeoutSeconds).toBe('{{ ExecutionTimeout }}');
        expect(Array.isArray(step.inputs.runCommand)).toBe(true);
        expect(step.inputs.runCommand.every((line) => typeof line === 'string' && !line.includes('\n'))).toBe(true);
      }
      expect(new Set(doc.mainSteps.map((s) => s.name)).size).toBe(2);
    });

    test('inlines the common prelude first, then its own script, exactly as documentScript gives it', () => {
      const [linux, windows] = doc.mainSteps;
      expect(linux.inputs.runCommand.join('\n') + '\n').toBe(documentScript(name, 'linux'));
      expect(windows.inputs.runCommand.join('\n') + '\n').toBe(documentScript(name, 'windows'));
      expect(linux.inputs.runCommand[0]).toBe('#!/usr/bin/env bash');
      expect(linux.inputs.runCommand).toContain('pp_finish() {');
      expect(windows.inputs.runCommand).toContain('function Invoke-PpDocument {');
    });

    test('declares the common parameters and those its stages send, all Strings with an allowedPattern', () => {
      const expected = new Set<string>(COMMON_DOCUMENT_PARAMETERS);
      for (const stage of stages) {
        for (const p of [...Object.keys(stage.parameters), ...Object.keys(stage.prefixes)]) expected.add(p);
      }
      expect(new Set(Object.keys(doc.parameters))).toEqual(expected);
      for (const [pName, spec] of Object.entries(doc.parameters)) {
        expect([pName, spec.type]).toEqual([pName, 'String']);
        expect(typeof spec.allowedPattern).toBe('string');
        expect(spec.allowedPattern).toMatch(/^\^.*\$$/);
      }
    });

    test('accepts every value the pipeline sends for its stages', () => {
      for (const stage of stages) {
        const spec: StageSpec = { id: stage.id, title: stage.title, documentName: `PatchPipeline-${name}`, parameters: { ...stage.parameters }, prefixes: { ...stage.prefixes } };
        const sent = documentParameters(RUN_ID, 'patch-pipeline-123456789012-eu-west-1', config, spec);
        expect(Object.keys(sent).sort()).toEqual(Object.keys(doc.parameters).sort());
        for (const [pName, [value]] of Object.entries(sent)) {
          expect([pName, value, matches(doc.parameters[pName].allowedPattern!, value)]).toEqual([pName, value, true]);
        }
      }
    });

    test('allowedPatterns accept realistic values and reject injection attempts', () => {
      for (const [pName, spec] of Object.entries(doc.parameters)) {
        for (const value of REALISTIC[pName]) {
          expect([pName, value, matches(spec.allowedPattern!, value)]).toEqual([pName, value, true]);
        }
        for (const value of INJECTIONS) {
          expect([pName, value, matches(spec.allowedPattern!, value)]).toEqual([pName, value, false]);
        }
      }
    });

    test('ExecutionTimeout follows AWS-RunShellScript: 1..172800 seconds', () => {
      const pattern = doc.parameters.ExecutionTimeout.allowedPattern!;
      for (const bad of ['0', '172801', '200000', '-1', '1.5', '01']) expect([bad, matches(pattern, bad)]).toEqual([bad, false]);
      expect(doc.parameters.ExecutionTimeout.interpolationType).toBeUndefined();
    });
  });

  test('stages after agent-update read their parameters as SSM_<Name> environment variables only', () => {
    for (const name of DOCUMENT_NAMES.filter((n) => n !== 'agent-update')) {
      const doc = content(name);
      for (const [pName, spec] of Object.entries(doc.parameters)) {
        if (pName !== 'ExecutionTimeout') expect([name, pName, spec.interpolationType]).toEqual([name, pName, 'ENV_VAR']);
      }
      for (const step of doc.mainSteps) expect(step.inputs.runCommand.join('\n')).not.toMatch(/\{\{/);
    }
  });

  test('agent-update works without ENV_VAR: each parameter is pasted once, into a single-quoted assignment', () => {
    const doc = content('agent-update');
    for (const spec of Object.values(doc.parameters)) expect(spec.interpolationType).toBeUndefined();
    for (const step of doc.mainSteps) {
      const refs = step.inputs.runCommand.filter((line) => line.includes('{{'));
      const names = COMMON_DOCUMENT_PARAMETERS.filter((p) => p !== 'ExecutionTimeout');
      expect(refs).toHaveLength(names.length);
      for (const line of refs) expect(line).toMatch(/^(\$script:)?[A-Za-z_]+ = '\{\{ [A-Za-z]+ \}\}'$|^[A-Z_]+='\{\{ [A-Za-z]+ \}\}'$/);
    }
  });

  test('interpolateParameters pastes values the way the agent does', () => {
    expect(interpolateParameters("RUN_ID='{{ RunId }}' X='{{Other}}'", { RunId: RUN_ID })).toBe(`RUN_ID='${RUN_ID}' X='{{Other}}'`);
  });
});
