import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { SsmDocument } from './ssm-service';

/** The pieces of the synthesized template the simulation runs. */
export interface ResolvedTemplate {
  /** The state machine definition with every intrinsic function replaced by a local value. */
  readonly definition: AslDefinition;
  readonly functions: Map<string, LambdaFunction>;
  /** Task state name -> function logical id (every Lambda task, nested ones included). */
  readonly taskFunctions: Map<string, string>;
  /** Task state name -> resource, for tasks that call another service than Lambda (sns:publish, ...). */
  readonly serviceTasks: Map<string, string>;
  /** Lambda tasks with .waitForTaskToken: the execution waits for a callback (an approver's answer). */
  readonly callbackTasks: Set<string>;
  readonly documents: Map<string, SsmDocument>;
  readonly bucketName: string;
  readonly notes: string[];
}

export interface LambdaFunction {
  readonly logicalId: string;
  /** The function's folder under lambda/ (normalize-input, discover, ...), from its construct path. */
  readonly name: string;
  readonly arn: string;
  /** Folder of the bundled code (cdk.out/asset.<hash>). */
  readonly assetDir: string;
  /** e.g. index.handler */
  readonly handler: string;
  readonly environment: Record<string, string>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AslDefinition = Record<string, any>;
type Json = unknown;

export const ACCOUNT_ID = '123456789012';
export const STACK_FILE = 'PatchPipelineStack.template.json';
/** Real-time bound of a callback task in the local copy (setTimeout's limit is 2^31 - 1 ms). */
export const CALLBACK_REAL_TIMEOUT_SECONDS = 2_000_000;

/** Sources whose change makes cdk.out stale. */
const SOURCES = ['bin', 'lib', 'lambda', 'ssm-documents', 'cdk.json'];

function newestMtime(p: string): number {
  if (!fs.existsSync(p)) return 0;
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const e of fs.readdirSync(p)) newest = Math.max(newest, newestMtime(path.join(p, e)));
  return newest;
}

/** The template path: the given one, or cdk.out's, synthesized first when missing or older than the sources. */
export function ensureTemplate(root: string, given?: string, log: (s: string) => void = () => undefined): string {
  if (given) {
    if (!fs.existsSync(given)) throw new Error(`template ${given} does not exist`);
    return given;
  }
  const file = path.join(root, 'cdk.out', STACK_FILE);
  const sourcesAt = Math.max(...SOURCES.map((s) => newestMtime(path.join(root, s))));
  if (!fs.existsSync(file) || fs.statSync(file).mtimeMs < sourcesAt) {
    log('synthesizing: npx cdk synth --quiet');
    const res = spawnSync('npx', ['cdk', 'synth', '--quiet'], { cwd: root, encoding: 'utf-8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (res.status !== 0) {
      // The error is at the end, after the bundling lines of every asset.
      const text = `${res.stderr ?? ''}\n${res.stdout ?? ''}`.split('\n').filter((l) => !/^\s*(Bundling asset|\.\.\.|⚡ Done)/.test(l) && l.trim()).join('\n');
      throw new Error(`cdk synth failed (exit ${res.status}):\n${text.slice(-3000)}`);
    }
    if (!fs.existsSync(file)) throw new Error(`cdk synth did not write ${file}`);
  }
  return file;
}

interface Resource {
  Type: string;
  Properties?: Record<string, Json>;
  Metadata?: Record<string, Json>;
}

/**
 * Resolves the synthesized template for local use: Fn::GetAtt / Ref / Fn::Join / pseudo parameters
 * become fake ARNs, the local bucket name and the document names.
 */
export function resolveTemplate(templateFile: string, region: string, bucketName: string): ResolvedTemplate {
  const template = JSON.parse(fs.readFileSync(templateFile, 'utf-8')) as { Resources: Record<string, Resource> };
  const resources = template.Resources;
  const outDir = path.dirname(templateFile);
  const notes: string[] = [];

  const refOf = (id: string): string => {
    const r = resources[id];
    if (!r) throw new Error(`Ref to unknown resource ${id}`);
    switch (r.Type) {
      case 'AWS::S3::Bucket':
        return bucketName;
      case 'AWS::SSM::Document':
        return String(r.Properties?.Name ?? id);
      case 'AWS::SecretsManager::Secret':
        // Ref is the ARN, whose name ends in "-" and six random characters (CDK takes the name apart).
        return `arn:aws:secretsmanager:${region}:${ACCOUNT_ID}:secret:${id}-SiMsEc`;
      case 'AWS::Lambda::Function':
        return id;
      default:
        return id;
    }
  };
  const attOf = (id: string, attr: string): string => {
    const r = resources[id];
    if (!r) throw new Error(`Fn::GetAtt on unknown resource ${id}`);
    if (r.Type === 'AWS::Lambda::Function' && attr === 'Arn') return `arn:aws:lambda:${region}:${ACCOUNT_ID}:function:${id}`;
    if (r.Type === 'AWS::S3::Bucket' && attr === 'Arn') return `arn:aws:s3:::${bucketName}`;
    if (r.Type === 'AWS::S3::Bucket' && attr === 'DomainName') return `${bucketName}.s3.amazonaws.com`;
    // The simulation serves the function URL itself and replaces this placeholder.
    if (r.Type === 'AWS::Lambda::Url' && attr === 'FunctionUrl') return `https://${id.toLowerCase()}.lambda-url.${region}.on.aws/`;
    return `${id}.${attr}`;
  };
  const pseudo: Record<string, string> = {
    'AWS::Region': region,
    'AWS::AccountId': ACCOUNT_ID,
    'AWS::Partition': 'aws',
    'AWS::URLSuffix': 'amazonaws.com',
    'AWS::StackName': 'PatchPipelineStack',
    'AWS::StackId': `arn:aws:cloudformation:${region}:${ACCOUNT_ID}:stack/PatchPipelineStack/local`,
    'AWS::NoValue': '',
  };
  const resolve = (v: Json): Json => {
    if (Array.isArray(v)) return v.map(resolve);
    if (v === null || typeof v !== 'object') return v;
    const o = v as Record<string, Json>;
    const keys = Object.keys(o);
    if (keys.length === 1) {
      const [k] = keys;
      const a = o[k];
      if (k === 'Ref') return pseudo[a as string] ?? refOf(a as string);
      if (k === 'Fn::GetAtt') {
        const [id, attr] = Array.isArray(a) ? (a as string[]) : String(a).split('.');
        return attOf(id, attr);
      }
      if (k === 'Fn::Join') {
        const [sep, parts] = a as [string, Json[]];
        return (resolve(parts) as Json[]).map(String).join(sep);
      }
      if (k === 'Fn::Select') {
        const [i, list] = a as [number, Json];
        return (resolve(list) as Json[])[Number(i)];
      }
      if (k === 'Fn::Split') {
        const [sep, s] = a as [string, Json];
        return String(resolve(s)).split(sep);
      }
      if (k === 'Fn::Sub') {
        const [text, vars] = Array.isArray(a) ? (a as [string, Record<string, Json>]) : [a as string, {}];
        return text.replace(/\$\{([^}]+)\}/g, (_m, name: string) => {
          if (vars[name] !== undefined) return String(resolve(vars[name]));
          if (pseudo[name] !== undefined) return pseudo[name];
          if (name.includes('.')) return attOf(name.split('.')[0], name.split('.').slice(1).join('.'));
          return refOf(name);
        });
      }
    }
    const out: Record<string, Json> = {};
    for (const [k, val] of Object.entries(o)) out[k] = resolve(val);
    return out;
  };

  const machines = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine');
  if (machines.length !== 1) throw new Error(`expected one AWS::StepFunctions::StateMachine in ${templateFile}, found ${machines.length}`);
  const [, machine] = machines[0];
  const defString = resolve(machine.Properties?.DefinitionString ?? machine.Properties?.Definition);
  const definition = (typeof defString === 'string' ? JSON.parse(defString) : defString) as AslDefinition;

  const functions = new Map<string, LambdaFunction>();
  for (const [id, r] of Object.entries(resources)) {
    if (r.Type !== 'AWS::Lambda::Function') continue;
    const asset = r.Metadata?.['aws:asset:path'];
    if (typeof asset !== 'string') continue; // CDK's own helper functions (no bundled asset)
    const env = (resolve((r.Properties?.Environment as { Variables?: Json } | undefined)?.Variables ?? {}) ?? {}) as Record<string, Json>;
    const cdkPath = String(r.Metadata?.['aws:cdk:path'] ?? '');
    const parts = cdkPath.split('/');
    functions.set(id, {
      logicalId: id,
      // .../PatchPipeline/<name>/Resource
      name: parts.length >= 2 && parts[parts.length - 1] === 'Resource' ? parts[parts.length - 2] : id,
      arn: attOf(id, 'Arn'),
      assetDir: path.resolve(outDir, asset),
      handler: String(r.Properties?.Handler ?? 'index.handler'),
      environment: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])),
    });
  }

  const byArn = new Map([...functions.values()].map((f) => [f.arn, f.logicalId]));
  const taskFunctions = new Map<string, string>();
  const serviceTasks = new Map<string, string>();
  const callbackTasks = new Set<string>();
  convertDistributedMaps(definition, notes);
  // aws-local-stepfunctions 3.0.0 writes an explicit ResultPath "$" to a field named "$"; the
  // default (no ResultPath) is the same thing in Step Functions, so the local copy drops it.
  walkStates(definition, (_name, state) => {
    if (state.ResultPath === '$') delete state.ResultPath;
  });
  walkStates(definition, (name, state) => {
    if (state.Type !== 'Task') return;
    const resource = String(state.Resource ?? '');
    let fnArn = resource;
    // Integration pattern arn:aws:states:::lambda:invoke carries the function in Parameters.FunctionName.
    if (resource.startsWith('arn:aws:states:::lambda:invoke')) fnArn = String(state.Parameters?.FunctionName ?? '');
    if (!resource.startsWith('arn:aws:states:::lambda:invoke') && !resource.startsWith('arn:aws:lambda:')) {
      // Other service integrations (sns:publish, ...): the runner serves the ones it knows.
      serviceTasks.set(name, resource);
      return;
    }
    const id = byArn.get(fnArn.replace(/:\$LATEST$/, ''));
    if (!id) throw new Error(`task state "${name}" calls ${resource}, which is no bundled Lambda function of the template`);
    taskFunctions.set(name, id);
    if (resource.endsWith('.waitForTaskToken')) {
      callbackTasks.add(name);
      // aws-local-stepfunctions 3.0.0 reads TimeoutSecondsPath from the Parameters output, not from
      // the state input, and counts it in real time. The simulation applies it itself, in simulated
      // time (sim/approvals.ts), so the local copy gets a real-time bound the run never reaches.
      if (state.TimeoutSecondsPath) {
        notes.push(`task "${name}": TimeoutSecondsPath ${state.TimeoutSecondsPath} applied in simulated time by the simulation`);
        delete state.TimeoutSecondsPath;
        state.TimeoutSeconds = CALLBACK_REAL_TIMEOUT_SECONDS;
      }
    }
  });

  const documents = new Map<string, SsmDocument>();
  for (const [id, r] of Object.entries(resources)) {
    if (r.Type !== 'AWS::SSM::Document') continue;
    const name = refOf(id);
    const content = resolve(r.Properties?.Content) as { parameters?: Record<string, SsmDocument['parameters'][string]>; mainSteps?: { action: string; inputs?: { runCommand?: string[] } }[] };
    const linux = content.mainSteps?.find((s) => s.action === 'aws:runShellScript');
    const windows = content.mainSteps?.find((s) => s.action === 'aws:runPowerShellScript');
    documents.set(name, {
      name,
      parameters: content.parameters ?? {},
      linuxScript: linux?.inputs?.runCommand ? `${linux.inputs.runCommand.join('\n')}\n` : undefined,
      windowsScript: windows?.inputs?.runCommand ? `${windows.inputs.runCommand.join('\n')}\n` : undefined,
      content,
    });
  }
  return { definition, functions, taskFunctions, serviceTasks, callbackTasks, documents, bucketName, notes };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function walkStates(def: AslDefinition, visit: (name: string, state: Record<string, any>) => void): void {
  for (const [name, state] of Object.entries(def.States ?? {}) as [string, AslDefinition][]) {
    visit(name, state);
    if (state.ItemProcessor) walkStates(state.ItemProcessor, visit);
    if (state.Iterator) walkStates(state.Iterator, visit);
    for (const b of state.Branches ?? []) walkStates(b, visit);
  }
}

/**
 * aws-local-stepfunctions 3.0.0 runs a Map's ItemProcessor inline but its definition validator
 * rejects Distributed Map fields (ProcessorConfig, ItemReader, ResultWriter, ToleratedFailure*,
 * Label). With inline items (ItemsPath) a Distributed Map behaves as an INLINE map whose iterations
 * are child executions, so the local copy drops those fields: one of the two rewrites (the other: a callback task's TimeoutSecondsPath, see resolveTemplate).
 */
function convertDistributedMaps(def: AslDefinition, notes: string[]): void {
  walkStates(def, (name, state) => {
    if (state.Type !== 'Map' || state.ItemProcessor?.ProcessorConfig?.Mode !== 'DISTRIBUTED') return;
    if (state.ItemReader) throw new Error(`Map "${name}" reads items with ItemReader, which aws-local-stepfunctions cannot run`);
    state.ItemProcessor.ProcessorConfig = { Mode: 'INLINE' };
    for (const k of ['ResultWriter', 'ToleratedFailurePercentage', 'ToleratedFailureCount', 'Label', 'ItemBatcher']) delete state[k];
    notes.push(`Map "${name}": Distributed -> INLINE in the local copy (aws-local-stepfunctions runs no child executions)`);
  });
}
