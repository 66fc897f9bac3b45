/**
 * ssm-documents/* -> the final content of each SSM Command document (schema 2.2), scripts inlined.
 * No CDK resources here: the construct passes loadDocumentContent(name) to CfnDocument.
 *
 * Source format (ssm-documents/<name>.yaml) = a schema 2.2 document plus two build-time keys:
 * - a step's `inputs.scriptFile: <name>.sh | <name>.ps1` names its script beside the YAML; it is
 *   replaced by `inputs.runCommand`, an array of lines: lib/common.sh (aws:runShellScript) or
 *   lib/common.ps1 (aws:runPowerShellScript) first, then the script itself;
 * - top-level `x-patch-pipeline.parameterInterpolation: ENV_VAR | TEXT`: with ENV_VAR every
 *   parameter the scripts read gets `interpolationType: ENV_VAR` (the agent sets SSM_<Name>);
 *   TEXT (agent-update, which must run on agents older than 3.3.2746.0) leaves the agent to paste
 *   `{{ Name }}` into the script, which the strict allowedPatterns make safe.
 * The common parameters (ssm-documents/lib/parameters.yaml) are merged into every document.
 * ExecutionTimeout only feeds `timeoutSeconds`, so it is never ENV_VAR.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { DOCUMENTS } from './stages';

/** Where the document sources live. */
export const DOCUMENTS_DIR = path.join(__dirname, '..', 'ssm-documents');

/** The documents the stages use, in first-use order (lib/stages.ts). */
export const DOCUMENT_NAMES: readonly string[] = DOCUMENTS;

export type ScriptPlatform = 'linux' | 'windows';

/** Parameters that never reach a script. */
const STEP_ONLY_PARAMETERS = new Set(['ExecutionTimeout']);

const PLATFORMS: Record<ScriptPlatform, { action: string; platformType: string; common: string; ext: string }> = {
  linux: { action: 'aws:runShellScript', platformType: 'Linux', common: 'lib/common.sh', ext: '.sh' },
  windows: { action: 'aws:runPowerShellScript', platformType: 'Windows', common: 'lib/common.ps1', ext: '.ps1' },
};

type Json = Record<string, unknown>;

interface Step extends Json {
  action: string;
  name: string;
  inputs: Json;
}

function readText(file: string): string {
  return readFileSync(file, 'utf8').replace(/\r\n/g, '\n');
}

function readYaml(file: string): Json {
  const value: unknown = parse(readText(file));
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${file}: expected a YAML mapping`);
  }
  return value as Json;
}

function documentSource(name: string, dir: string): { file: string; doc: Json; steps: Step[] } {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`Document name '${name}' must be kebab-case`);
  const file = path.join(dir, `${name}.yaml`);
  const doc = readYaml(file);
  const steps = doc.mainSteps;
  if (!Array.isArray(steps) || steps.length === 0) throw new Error(`${file}: mainSteps must be a non-empty list`);
  return { file, doc, steps: steps as Step[] };
}

function platformOf(step: Step, file: string): ScriptPlatform {
  const found = (Object.keys(PLATFORMS) as ScriptPlatform[]).find((p) => PLATFORMS[p].action === step.action);
  if (!found) throw new Error(`${file}: step ${step.name} has unsupported action ${step.action}`);
  return found;
}

function inlineScript(scriptFile: string, platform: ScriptPlatform, dir: string, file: string): string {
  const { common, ext } = PLATFORMS[platform];
  if (!scriptFile.endsWith(ext) || scriptFile.includes('/') || scriptFile.includes('\\')) {
    throw new Error(`${file}: scriptFile '${scriptFile}' must be a ${ext} file beside the document`);
  }
  const prelude = readText(path.join(dir, common)).replace(/\n*$/, '\n');
  const own = readText(path.join(dir, scriptFile)).replace(/\n*$/, '\n');
  return `${prelude}\n${own}`;
}

/**
 * The final script of a document for one platform (common prelude + own script), exactly as
 * inlined into runCommand. The local simulation runs this text under bash.
 */
export function documentScript(name: string, platform: ScriptPlatform, dir: string = DOCUMENTS_DIR): string {
  const { file, steps } = documentSource(name, dir);
  const step = steps.find((s) => s.action === PLATFORMS[platform].action);
  if (!step || typeof step.inputs?.scriptFile !== 'string') {
    throw new Error(`${file}: no ${PLATFORMS[platform].action} step with a scriptFile`);
  }
  return inlineScript(step.inputs.scriptFile, platform, dir, file);
}

/** Splits a script into runCommand lines (no trailing empty line). */
export function scriptLines(script: string): string[] {
  return script.replace(/\n$/, '').split('\n');
}

/** The final content of a document (schema 2.2), ready for AWS::SSM::Document Content. */
export function loadDocumentContent(name: string, dir: string = DOCUMENTS_DIR): Record<string, unknown> {
  const { file, doc, steps } = documentSource(name, dir);
  const { ['x-patch-pipeline']: build, ...content } = doc;
  const interpolation = (build as Json | undefined)?.parameterInterpolation ?? 'ENV_VAR';
  if (interpolation !== 'ENV_VAR' && interpolation !== 'TEXT') {
    throw new Error(`${file}: x-patch-pipeline.parameterInterpolation must be ENV_VAR or TEXT`);
  }

  const common = readYaml(path.join(dir, 'lib', 'parameters.yaml'));
  const own = (doc.parameters ?? {}) as Json;
  const parameters: Json = {};
  for (const [paramName, spec] of Object.entries({ ...common, ...own })) {
    const withInterpolation =
      interpolation === 'ENV_VAR' && !STEP_ONLY_PARAMETERS.has(paramName) ? { ...(spec as Json), interpolationType: 'ENV_VAR' } : spec;
    parameters[paramName] = withInterpolation;
  }

  const mainSteps = steps.map((step) => {
    const { scriptFile, ...inputs } = step.inputs ?? {};
    if (typeof scriptFile !== 'string') throw new Error(`${file}: step ${step.name} needs inputs.scriptFile`);
    if ('runCommand' in inputs) throw new Error(`${file}: step ${step.name} has both scriptFile and runCommand`);
    const script = inlineScript(scriptFile, platformOf(step, file), dir, file);
    // The agent would treat any other {{ ... }} as a parameter reference and reject the command.
    for (const match of script.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)) {
      if (!(match[1] in parameters)) throw new Error(`${file}: ${scriptFile} references unknown parameter {{ ${match[1]} }}`);
    }
    return { ...step, inputs: { ...inputs, runCommand: scriptLines(script) } };
  });

  return { ...content, parameters, mainSteps };
}

/**
 * What the agent does with `{{ Name }}` in a TEXT-interpolated document: paste the value. For the
 * local simulation, which runs the scripts without an agent.
 */
export function interpolateParameters(script: string, values: Readonly<Record<string, string>>): string {
  return script.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (whole, paramName: string) => values[paramName] ?? whole);
}
