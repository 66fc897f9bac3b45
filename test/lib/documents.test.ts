import { DOCUMENT_NAMES, documentScript, interpolateParameters, loadDocumentContent } from '../../lib/documents';
import { STAGES, VERIFY_STAGE } from '../../lib/stages';
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

/** Every stage that runs a document: the six batch stages, then verify after an approved reboot. */
const ALL_STAGES = [...STAGES, VERIFY_STAGE];

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
  Stage: ALL_STAGES.map((s) => s.id),
  Bucket: ['patch-pipeline-123456789012-eu-west-1', 'my.bucket.name', 'abc'],
  Region: ['eu-west-1', 'us-east-1', 'us-gov-west-1', 'ap-southeast-2', 'il-central-1'],
  MarkerPrefix: ALL_STAGES.map((s) => markerPrefix(RUN_ID, s.id)),
  ApplicationTagKey: ['Application', 'app:name', 'cost-center.app'],
  OwnerTagKey: ['Owner', 'owner_email'],
  ExecutionTimeout: ['1', '600', '3600', '7200', '99999', '172800'],
  Phase: ['pre', 'post'],
  OutputPrefix: ['inventory/pre', 'inventory/post', 'compare', 'failed'].map((a) => areaPrefix(RUN_ID, a)),
  PrePrefix: [areaPrefix(RUN_ID, 'inventory/pre')],
  PostPrefix: [areaPrefix(RUN_ID, 'inventory/post')],
  RebootedAfter: ['2026-11-28T22:09:50.123Z', '2026-11-28T22:09:50Z', '2027-02-28T00:00:00.5Z'],
  ServiceNames: ['', 'W3SVC', 'W3SVC,MSSQLSERVER,AmazonSSMAgent', 'my_svc.1-a@x'],
  SystemdUnits: ['', 'nginx', 'nginx.service,php-fpm.service', 'app-worker@1.service', 'sys-devices-x:y.device'],
  HealthUrl: ['', 'http://localhost', 'http://localhost/health', 'http://127.0.0.1:8080/api/v1/health', 'http://localhost:80/a%20b/~x'],
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


/** Parameters known only at run time (StageTaskInput.extraParameters), by document. */
const RUNTIME_PARAMETERS: Record<string, Record<string, string>> = {
  verify: { RebootedAfter: '2026-11-28T22:09:50.123Z', ServiceNames: 'W3SVC,MSSQLSERVER', SystemdUnits: 'nginx.service', HealthUrl: 'http://localhost:8080/health' },
};

describe('documents', () => {
  test('one document per distinct stage document, in stage order', () => {
    expect(DOCUMENT_NAMES).toEqual(['agent-update', 'inventory', 'patch', 'compare', 'failed-check', 'verify']);
  });

  test('verify is deployed but not a batch stage', () => {
    expect(STAGES.map((s) => s.id)).not.toContain('verify');
    expect(VERIFY_STAGE).toEqual({ id: 'verify', title: 'Verify health after reboot', document: 'verify', parameters: {}, prefixes: {}, timeoutSeconds: 900, outputs: [] });
  });

  describe.each(DOCUMENT_NAMES)('%s', (name) => {
    const doc = content(name);
    const stages = ALL_STAGES.filter((s) => s.document === name);
    const runtime = RUNTIME_PARAMETERS[name] ?? {};

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
      for (const p of Object.keys(runtime)) expected.add(p);
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
        const sent = documentParameters(RUN_ID, 'patch-pipeline-123456789012-eu-west-1', config, spec, runtime);
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
          // An optional parameter ('' default) accepts '', which means "none".
          if (value === '' && spec.default === '') continue;
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

  describe('verify parameters', () => {
    const params = content('verify').parameters;

    test('RebootedAfter is a UTC ISO 8601 time, required (no default)', () => {
      expect(params.RebootedAfter.default).toBeUndefined();
      for (const bad of ['2026-11-28T22:09:50+01:00', '2026-11-28 22:09:50Z', '2026-11-28T22:09:50', '2026-13-01T00:00:00Z', '2026-11-28T24:00:00Z', '2026-11-28T22:09:50.1234Z', '1764367790']) {
        expect([bad, matches(params.RebootedAfter.allowedPattern!, bad)]).toEqual([bad, false]);
      }
    });

    test('the health checks default to none', () => {
      for (const name of ['ServiceNames', 'SystemdUnits', 'HealthUrl']) expect([name, params[name].default]).toEqual([name, '']);
    });

    test('HealthUrl only reaches the instance itself, over plain http, without a query', () => {
      for (const bad of ['http://example.com/health', 'https://localhost/health', 'http://localhost.evil.com/', 'http://127.0.0.2/', 'http://localhost/health?x=1&y=2', 'http://user@localhost/', 'file:///etc/passwd', 'http://localhost/a b']) {
        expect([bad, matches(params.HealthUrl.allowedPattern!, bad)]).toEqual([bad, false]);
      }
    });

    test('service and unit lists refuse option-like and separator-laden names', () => {
      for (const name of ['ServiceNames', 'SystemdUnits']) {
        for (const bad of ['-h', 'nginx,--now', 'a,,b', 'a,', ',a', 'a, b', 'MSSQL$SQLEXPRESS', 'a/b', 'a\\b', 'a*']) {
          expect([name, bad, matches(params[name].allowedPattern!, bad)]).toEqual([name, bad, false]);
        }
      }
    });
  });

  test('interpolateParameters pastes values the way the agent does', () => {
    expect(interpolateParameters("RUN_ID='{{ RunId }}' X='{{Other}}'", { RunId: RUN_ID })).toBe(`RUN_ID='${RUN_ID}' X='{{Other}}'`);
  });
});
