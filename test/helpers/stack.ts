import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { PatchPipelineStack, PatchPipelineStackProps } from '../../lib/patch-pipeline-stack';

/** Synthesizes the stack once per test file (bundling the functions takes a few seconds). */
export function synthStack(props: PatchPipelineStackProps = {}): { stack: PatchPipelineStack; template: Template } {
  const app = new App();
  const stack = new PatchPipelineStack(app, 'TestStack', props);
  return { stack, template: Template.fromStack(stack) };
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * The state machine definition with CloudFormation intrinsics replaced by readable local values:
 * Fn::GetAtt [X, Arn] -> arn:aws:lambda:eu-west-1:123456789012:function:X, Ref X -> X.
 */
export function resolvedDefinition(template: Template): Record<string, any> {
  const machines = template.findResources('AWS::StepFunctions::StateMachine');
  const [machine] = Object.values(machines);
  const def = machine.Properties.DefinitionString as Json;
  return JSON.parse(resolve(def) as string);
}

function resolve(v: Json): Json {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(resolve);
  if ('Fn::Join' in v) {
    const [sep, parts] = v['Fn::Join'] as [string, Json[]];
    return parts.map((p) => String(resolve(p))).join(sep);
  }
  if ('Fn::GetAtt' in v) {
    const [id] = v['Fn::GetAtt'] as string[];
    return `arn:aws:lambda:eu-west-1:123456789012:function:${id}`;
  }
  if ('Ref' in v) {
    const ref = v.Ref as string;
    return ref === 'AWS::Partition' ? 'aws' : ref === 'AWS::Region' ? 'eu-west-1' : ref === 'AWS::AccountId' ? '123456789012' : ref;
  }
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x)]));
}

/** Every state of a definition, nested processors included, by name. */
export function allStates(def: Record<string, any>): Map<string, Record<string, any>> {
  const out = new Map<string, Record<string, any>>();
  const walk = (states: Record<string, any>): void => {
    for (const [name, s] of Object.entries(states)) {
      out.set(name, s);
      const inner = s.ItemProcessor ?? s.Iterator;
      if (inner) walk(inner.States);
      for (const b of s.Branches ?? []) walk(b.States);
    }
  };
  walk(def.States);
  return out;
}
