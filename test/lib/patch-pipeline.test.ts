import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { PatchPipeline } from '../../lib/patch-pipeline';
import { DOCUMENTS } from '../../lib/stages';
import { synthStack } from '../helpers/stack';

const { template } = synthStack();

/** Every statement of every IAM policy attached to the role of the given function folder. */
function statementsOf(fnName: string): any[] {
  const policies = template.findResources('AWS::IAM::Policy');
  const roleId = Object.keys(template.findResources('AWS::IAM::Role')).find((id) => id.startsWith(`PatchPipeline${fnName.replace(/-/g, '')}Role`));
  expect(roleId).toBeDefined();
  return Object.values(policies)
    .filter((p: any) => p.Properties.Roles.some((r: any) => r.Ref === roleId))
    .flatMap((p: any) => p.Properties.PolicyDocument.Statement);
}

const actionsOf = (fnName: string): string[] =>
  statementsOf(fnName).flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])).sort();

describe('PatchPipeline', () => {
  test('deploys one Standard state machine with logging and tracing', () => {
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: 'ALL' }),
    });
  });

  test('deploys every document as a schema 2.2 Command document with a Linux and a Windows step', () => {
    const docs = template.findResources('AWS::SSM::Document');
    expect(Object.keys(docs)).toHaveLength(DOCUMENTS.length);
    for (const doc of Object.values(docs) as any[]) {
      expect(doc.Properties.DocumentType).toBe('Command');
      expect(doc.Properties.UpdateMethod).toBe('NewVersion');
      const content = doc.Properties.Content;
      expect(content.schemaVersion).toBe('2.2');
      const platforms = content.mainSteps.map((s: any) => s.precondition?.StringEquals?.[1]).sort();
      expect(platforms).toEqual(['Linux', 'Windows']);
      const actions = content.mainSteps.map((s: any) => s.action).sort();
      expect(actions).toEqual(['aws:runPowerShellScript', 'aws:runShellScript']);
    }
  });

  test('keeps runs in an encrypted, versioned, private, TLS-only bucket that expires old runs', () => {
    template.resourceCountIs('AWS::S3::Bucket', 1);
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      VersioningConfiguration: { Status: 'Enabled' },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      LifecycleConfiguration: {
        Rules: [Match.objectLike({ Prefix: 'runs/', ExpirationInDays: 90, Status: 'Enabled' })],
      },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  test('exposes an instance policy that writes under runs/ only', () => {
    template.hasResourceProperties('AWS::IAM::ManagedPolicy', {
      PolicyDocument: {
        Statement: [
          Match.objectLike({ Action: 's3:PutObject', Resource: { 'Fn::Join': ['', [Match.anyValue(), '/runs/*']] } }),
          Match.objectLike({ Action: 's3:GetObject', Resource: { 'Fn::Join': ['', [Match.anyValue(), '/runs/*/inventory/*']] } }),
          Match.objectLike({ Action: 's3:GetEncryptionConfiguration' }),
        ],
      },
    });
  });

  test.each([
    ['normalize-input', ['logs:CreateLogStream', 'logs:PutLogEvents', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']],
    ['discover', ['ec2:DescribeInstances', 'ec2:DescribeVolumes', 'logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:PutObject', 'ssm:DescribeInstanceInformation', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']],
    ['power', ['ec2:DescribeInstances', 'ec2:StartInstances', 'ec2:StopInstances', 'logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:PutObject', 'ssm:DescribeInstanceInformation', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']],
    ['snapshot', ['ec2:CreateSnapshots', 'ec2:CreateTags', 'ec2:DescribeSnapshots', 'logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:PutObject', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']],
    ['run-stage', ['logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:PutObject', 'ssm:SendCommand', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']],
    ['check-stage', ['logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:ListBucket', 's3:PutObject', 'ssm:CancelCommand', 'ssm:ListCommandInvocations', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']],
    ['report', ['logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:ListBucket', 's3:PutObject', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']],
    ['change-freeze', ['logs:CreateLogStream', 'logs:PutLogEvents', 'ssm:GetCalendarState', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']],
    ['reboot', ['ec2:DescribeInstances', 'ec2:RebootInstances', 'logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:ListBucket', 's3:PutObject', 'ssm:DescribeInstanceInformation', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']],
    ['approval', ['ec2:DescribeInstances', 'logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:ListBucket', 's3:PutObject', 'secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue', 'ssm:GetParameter', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']],
    ['approval-endpoint', ['logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:ListBucket', 's3:PutObject', 'secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue', 'ssm:GetParameter', 'states:SendTaskFailure', 'states:SendTaskSuccess', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']],
  ])('grants %s exactly the actions its code calls', (fn, actions) => {
    expect([...new Set(actionsOf(fn))]).toEqual(actions);
  });

  test('scopes S3 access of the functions to runs/ of the run bucket', () => {
    for (const fn of ['discover', 'power', 'snapshot', 'run-stage', 'check-stage', 'report']) {
      for (const s of statementsOf(fn).filter((x) => String(x.Action).startsWith('s3:Get') || String(x.Action).includes('s3:PutObject'))) {
        expect(JSON.stringify(s.Resource)).toMatch(/\/runs\/\*"/);
      }
      const list = statementsOf(fn).find((x) => x.Action === 's3:ListBucket');
      if (list) expect(list.Condition).toEqual({ StringLike: { 's3:prefix': ['runs/*'] } });
    }
  });

  test('lets run-stage send only the pipeline documents, and tags only snapshots made by CreateSnapshots', () => {
    const send = statementsOf('run-stage').find((s) => s.Action === 'ssm:SendCommand');
    expect(send.Resource).toHaveLength(DOCUMENTS.length + 1);
    expect(JSON.stringify(send.Resource)).toContain(':instance/*');
    const tag = statementsOf('snapshot').find((s) => s.Action === 'ec2:CreateTags');
    expect(tag.Condition).toEqual({ StringEquals: { 'ec2:CreateAction': 'CreateSnapshots' } });
  });

  test('passes the deployed defaults to the functions', () => {
    const fns = template.findResources('AWS::Lambda::Function', { Properties: { Environment: { Variables: { PIPELINE_DEFAULTS: Match.anyValue() } } } });
    expect(Object.keys(fns).length).toBe(11);
    const defaults = JSON.parse((Object.values(fns)[0] as any).Properties.Environment.Variables.PIPELINE_DEFAULTS);
    expect(defaults).toMatchObject({ targetTags: { PatchGroup: ['default'] }, batchSize: 50, stageTimeouts: { patch: 7200 } });
  });

  test('runs every function on a current Node.js runtime with source maps', () => {
    const fns = Object.values(template.findResources('AWS::Lambda::Function')) as any[];
    for (const f of fns) {
      expect(f.Properties.Runtime).toMatch(/^nodejs(2[2-9]|[3-9]\d)\.x$/);
      expect(f.Properties.Environment.Variables.NODE_OPTIONS).toBe('--enable-source-maps');
    }
  });

  test('lets the approval endpoint write decisions only, and answer task tokens of this state machine only', () => {
    const put = statementsOf('approval-endpoint').find((s) => s.Action === 's3:PutObject');
    expect(JSON.stringify(put.Resource)).toMatch(/\/runs\/\*\/approvals\/\*"/);
    const respond = statementsOf('approval-endpoint').find((s) => String(s.Action).includes('SendTaskSuccess'));
    expect(respond.Resource[0]).toEqual({ Ref: expect.stringMatching(/^PatchPipelineStateMachine/) });
    expect(respond.Resource[1]).toEqual({ 'Fn::Join': ['', [{ Ref: expect.stringMatching(/^PatchPipelineStateMachine/) }, '/RebootApproval*']] });
    expect(respond.Resource).toHaveLength(2);
  });

  test('publishes approval requests on an encrypted topic and serves the endpoint as a function URL', () => {
    template.resourceCountIs('AWS::SNS::Topic', 2);
    template.allResourcesProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'NONE' });
    template.hasResourceProperties('AWS::SecretsManager::Secret', { GenerateSecretString: Match.objectLike({ PasswordLength: 64 }) });
  });

  test('creates one schedule per patch window, in its time zone, that may start this state machine only', () => {
    const { template: t } = synthStack({
      pipeline: {
        patchWindows: [
          { name: 'dev-tuesday', schedule: 'cron(0 22 ? * TUE *)', timeZone: 'Europe/Paris', flexibleWindowMinutes: 15, input: { targets: { tags: { PatchGroup: ['dev'] } } } },
          { name: 'prod-sunday', schedule: 'cron(0 3 ? * SUN *)', timeZone: 'America/New_York' },
        ],
      },
    });
    t.resourceCountIs('AWS::Scheduler::Schedule', 2);
    t.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 22 ? * TUE *)',
      ScheduleExpressionTimezone: 'Europe/Paris',
      FlexibleTimeWindow: { Mode: 'FLEXIBLE', MaximumWindowInMinutes: 15 },
      Target: Match.objectLike({ Input: JSON.stringify({ targets: { tags: { PatchGroup: ['dev'] } }, window: 'dev-tuesday' }) }),
    });
    t.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpressionTimezone: 'America/New_York',
      FlexibleTimeWindow: { Mode: 'OFF' },
    });
    const roles = t.findResources('AWS::IAM::Role', { Properties: { AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'scheduler.amazonaws.com' } })] } } });
    const roleIds = Object.keys(roles);
    expect(roleIds).toHaveLength(1);
    const statements = Object.values(t.findResources('AWS::IAM::Policy'))
      .filter((p: any) => p.Properties.Roles.some((r: any) => r.Ref === roleIds[0]))
      .flatMap((p: any) => p.Properties.PolicyDocument.Statement);
    expect(statements).toEqual([{ Action: 'states:StartExecution', Effect: 'Allow', Resource: { Ref: expect.stringMatching(/^PatchPipelineStateMachine/) } }]);
  });

  test.each([
    [{ name: 'bad name!', schedule: 'cron(0 22 ? * TUE *)' }, /patchWindows\[0\]\.name is "bad name!"/],
    [{ name: 'w', schedule: 'rate(1 day)' }, /patchWindows\[0\]\.schedule is "rate\(1 day\)": use a six-field cron expression/],
    [{ name: 'w', schedule: 'cron(0 22 ? * TUE *)', timeZone: 'Mars/Olympus' }, /timeZone is "Mars\/Olympus": use an IANA time zone/],
    [{ name: 'w', schedule: 'cron(0 22 ? * TUE *)', flexibleWindowMinutes: 5000 }, /flexibleWindowMinutes is 5000/],
  ])('fails on a patch window that could never start a run (%#)', (window, message) => {
    const stack = new Stack(new App(), 'Bad');
    expect(() => new PatchPipeline(stack, 'P', { patchWindows: [window] })).toThrow(message);
  });

  test('fails when the defaults ask for more than 50 instances per batch', () => {
    const stack = new Stack(new App(), 'Bad');
    expect(() => new PatchPipeline(stack, 'P', { defaults: { batchSize: 51 } })).toThrow(/batchSize is 51; set 1\.\.50/);
  });

  test('fails when a stage timeout names an unknown stage', () => {
    const stack = new Stack(new App(), 'Bad');
    expect(() => new PatchPipeline(stack, 'P', { defaults: { stageTimeouts: { reboot: 600 } } })).toThrow(/stageTimeouts\.reboot is not a stage/);
  });

  test('fails when runRetentionDays is not a positive whole number', () => {
    const stack = new Stack(new App(), 'Bad');
    expect(() => new PatchPipeline(stack, 'P', { runRetentionDays: 0 })).toThrow(/runRetentionDays is 0/);
  });

  test('matches the snapshot (asset hashes scrubbed)', () => {
    const json = JSON.stringify(template.toJSON()).replace(/[0-9a-f]{64}(\.zip)?/g, 'HASH');
    expect(JSON.parse(json)).toMatchSnapshot();
  });
});

void Template;
