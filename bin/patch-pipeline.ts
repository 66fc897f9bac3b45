#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { PatchRunDefaults } from '../lib/config';
import { PatchWindow } from '../lib/patch-windows';
import { PatchPipelineStack } from '../lib/patch-pipeline-stack';

/** Deploy-time configuration, from cdk.json context key "patch-pipeline" (or `-c patch-pipeline='{...}'`). */
interface AppConfig {
  readonly stackName?: string;
  readonly defaults?: PatchRunDefaults;
  readonly runRetentionDays?: number;
  readonly patchWindows?: PatchWindow[];
}

const app = new App();
const raw: unknown = app.node.tryGetContext('patch-pipeline') ?? {};
const config: AppConfig = typeof raw === 'string' ? JSON.parse(raw) : (raw as AppConfig);

new PatchPipelineStack(app, config.stackName ?? 'PatchPipelineStack', {
  description: 'patch-pipeline: serverless EC2 fleet patching (Step Functions + SSM)',
  pipeline: { defaults: config.defaults, runRetentionDays: config.runRetentionDays, patchWindows: config.patchWindows },
});

// cdk-nag runs on every synth; a finding that is not acknowledged (with its reason) stops the synth.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
