import { Aws, CfnElement, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct, IConstruct } from 'constructs';
import { PatchRunDefaults, resolveDefaults } from './config';
import { loadDocumentContent } from './documents';
import { PatchWindow, PatchWindows } from './patch-windows';
import { PipelineFunction } from './pipeline-function';
import { DOCUMENTS, STAGES, VERIFY_STAGE } from './stages';
import { APPROVAL_MAP_LABEL } from './workflow/approval-phase';
import { PatchWorkflow, PatchWorkflowFunctions } from './workflow/patch-workflow';

/** Resources of this account and region (targets are chosen by tag at run time, so no narrower ARN exists). */
const ARNS = {
  instances: `arn:${Aws.PARTITION}:ec2:${Aws.REGION}:${Aws.ACCOUNT_ID}:instance/*`,
  volumes: `arn:${Aws.PARTITION}:ec2:${Aws.REGION}:${Aws.ACCOUNT_ID}:volume/*`,
  snapshots: `arn:${Aws.PARTITION}:ec2:${Aws.REGION}::snapshot/*`,
  documents: `arn:${Aws.PARTITION}:ssm:${Aws.REGION}:${Aws.ACCOUNT_ID}:document/*`,
};

export interface PatchPipelineProps {
  /**
   * Defaults of every patch run; an execution input overrides them field by field.
   * @default the values documented on PatchRunDefaults
   */
  readonly defaults?: PatchRunDefaults;
  /**
   * Days after which a run's objects (markers, inventories, reports) expire from the bucket.
   * @default 90
   */
  readonly runRetentionDays?: number;
  /**
   * Bucket that receives the server access logs of the run bucket.
   * @default no access logs (the run bucket holds no public or customer data; see the cdk-nag acknowledgement)
   * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/ServerAccessLogs.html
   */
  readonly serverAccessLogsBucket?: s3.IBucket;
  /**
   * Removal policy of the run bucket.
   * @default RemovalPolicy.RETAIN (reports are audit records)
   */
  readonly bucketRemovalPolicy?: RemovalPolicy;
  /**
   * Recurring patch windows: each becomes an EventBridge Scheduler schedule that starts a run.
   * @default no schedule (runs start by hand or from the CLI)
   */
  readonly patchWindows?: readonly PatchWindow[];
  /**
   * E-mail addresses subscribed to the approval requests (each must confirm the subscription).
   * @default none (subscribe to the approvalTopic yourself, e.g. a distribution list or a chat bridge)
   */
  readonly approvalEmails?: readonly string[];
  /**
   * E-mail addresses told about the end of every run (counts and the report's location).
   * @default none (subscribe to notificationTopic yourself)
   */
  readonly notificationEmails?: readonly string[];
  /**
   * ITSM webhook (ServiceNow-style) that receives each approval request as a JSON POST with its signed callback.
   * @default none
   */
  readonly itsmWebhookUrl?: string;
  /**
   * Log level of the state machine's execution log.
   * @default sfn.LogLevel.ALL
   */
  readonly logLevel?: sfn.LogLevel;
}

/**
 * Patches the EC2 instances selected by tags: snapshot first, then the SSM document stages of
 * lib/stages.ts, each gated by S3 completion markers, then restore power states and report.
 */
export class PatchPipeline extends Construct {
  /** The bucket of runs: run.json, markers, inventories, reports. */
  public readonly bucket: s3.Bucket;
  /** The Standard state machine that runs a patch. */
  public readonly stateMachine: sfn.StateMachine;
  /** Deployed name of each document of ssm-documents/, by file name. */
  public readonly documentNames: Readonly<Record<string, string>>;
  /** Attach to the instance roles: lets the documents write markers, CSVs and command output under runs/. */
  public readonly instancePolicy: iam.ManagedPolicy;
  public readonly functions: PatchWorkflowFunctions;
  /** Approval requests are published here (e-mail subscriptions). */
  public readonly approvalTopic: sns.Topic;
  /** The end of every run is announced here, with the report's location. */
  public readonly notificationTopic: sns.Topic;
  /** Signing key of the approval links and of the ITSM callback. */
  public readonly approvalSecret: secretsmanager.Secret;
  /** The approval endpoint (Lambda function URL): the links in the messages point here. */
  public readonly approvalUrl: lambda.FunctionUrl;
  /** The function behind the approval endpoint. */
  public readonly approvalEndpoint: lambda.Function;
  /** The schedules of the patch windows. */
  public readonly patchWindows: PatchWindows;

  constructor(scope: Construct, id: string, props: PatchPipelineProps = {}) {
    super(scope, id);
    const runRetentionDays = props.runRetentionDays ?? 90;
    if (!Number.isInteger(runRetentionDays) || runRetentionDays < 1) {
      throw new Error(`runRetentionDays is ${runRetentionDays}: set a whole number of days >= 1`);
    }
    const defaults = resolveDefaults(props.defaults);
    const stack = Stack.of(this);

    this.bucket = new s3.Bucket(this, 'RunBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      versioned: true,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: props.bucketRemovalPolicy ?? RemovalPolicy.RETAIN,
      serverAccessLogsBucket: props.serverAccessLogsBucket,
      serverAccessLogsPrefix: props.serverAccessLogsBucket ? 'patch-pipeline/' : undefined,
      lifecycleRules: [
        {
          id: 'expire-old-runs',
          prefix: 'runs/',
          expiration: Duration.days(runRetentionDays),
          noncurrentVersionExpiration: Duration.days(30),
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
    });
    const runsArn = this.bucket.arnForObjects('runs/*');

    const documentNames: Record<string, string> = {};
    const documentArns: string[] = [];
    for (const name of DOCUMENTS) {
      const doc = new ssm.CfnDocument(this, `Document-${name}`, {
        name: `${stack.stackName}-${name}`,
        documentType: 'Command',
        documentFormat: 'JSON',
        updateMethod: 'NewVersion',
        content: loadDocumentContent(name),
      });
      documentNames[name] = doc.ref;
      documentArns.push(stack.formatArn({ service: 'ssm', resource: 'document', resourceName: doc.ref }));
    }
    this.documentNames = documentNames;

    this.instancePolicy = new iam.ManagedPolicy(this, 'InstancePolicy', {
      description: 'patch-pipeline: lets the SSM documents on an instance write their markers, CSVs and command output',
      statements: [
        new iam.PolicyStatement({ sid: 'WriteRunObjects', actions: ['s3:PutObject'], resources: [runsArn] }),
        // compare reads this run's pre and post inventories of the instance.
        new iam.PolicyStatement({ sid: 'ReadInventories', actions: ['s3:GetObject'], resources: [this.bucket.arnForObjects('runs/*/inventory/*')] }),
        // The SSM agent checks the bucket's encryption before it uploads command output.
        new iam.PolicyStatement({ sid: 'CommandOutput', actions: ['s3:GetEncryptionConfiguration'], resources: [this.bucket.bucketArn] }),
      ],
    });

    const env = { BUCKET_NAME: this.bucket.bucketName, PIPELINE_DEFAULTS: JSON.stringify(defaults) };
    const fn = (name: string, description: string, timeout?: Duration, extraEnv: Record<string, string> = {}): PipelineFunction =>
      new PipelineFunction(this, name, { name, description, environment: { ...env, ...extraEnv }, timeout });

    this.approvalTopic = new sns.Topic(this, 'ApprovalTopic', {
      displayName: 'patch-pipeline reboot approvals',
      masterKey: kms.Alias.fromAliasName(this, 'SnsKey', 'alias/aws/sns'),
      enforceSSL: true,
    });
    for (const email of props.approvalEmails ?? []) this.approvalTopic.addSubscription(new subscriptions.EmailSubscription(email));
    this.notificationTopic = new sns.Topic(this, 'NotificationTopic', {
      displayName: 'patch-pipeline run reports',
      masterKey: kms.Alias.fromAliasName(this, 'NotificationKey', 'alias/aws/sns'),
      enforceSSL: true,
    });
    for (const email of props.notificationEmails ?? []) this.notificationTopic.addSubscription(new subscriptions.EmailSubscription(email));
    this.approvalSecret = new secretsmanager.Secret(this, 'ApprovalSecret', {
      description: 'patch-pipeline: HMAC key of the approval links and of the ITSM callback',
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
    });
    const secretEnv = { APPROVAL_SECRET_ID: this.approvalSecret.secretName };
    const endpoint = fn('approval-endpoint', 'patch-pipeline: approval page and decisions (signed links, ITSM callback)', Duration.seconds(30), secretEnv);
    this.approvalEndpoint = endpoint;
    this.approvalUrl = endpoint.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });
    const functions = {
      normalizeInput: fn('normalize-input', 'patch-pipeline: validate the execution input and merge the deployed defaults'),
      changeFreeze: fn('change-freeze', 'patch-pipeline: read the SSM Change Calendar at the start of a run'),
      discover: fn('discover', 'patch-pipeline: find the target instances by tag and split them into batches', Duration.minutes(5)),
      power: fn('power', 'patch-pipeline: start stopped targets, and stop them again at the end'),
      snapshot: fn('snapshot', 'patch-pipeline: snapshot every EBS volume of a batch before patching'),
      runStage: fn('run-stage', 'patch-pipeline: send a stage document to a batch'),
      approval: fn('approval', 'patch-pipeline: plan reboot approvals, request them, keep task tokens', Duration.minutes(2), {
        ...secretEnv,
        APPROVAL_ENDPOINT_URL: this.approvalUrl.url,
        ...(props.itsmWebhookUrl ? { ITSM_WEBHOOK_URL: props.itsmWebhookUrl } : {}),
      }),
      reboot: fn('reboot', 'patch-pipeline: reboot an approved group in order and wait until it is back'),
      checkStage: fn('check-stage', 'patch-pipeline: classify a batch from markers and command invocations'),
      report: fn('report', 'patch-pipeline: write the run report (JSON and CSV)', Duration.minutes(5)),
    };
    this.functions = functions;
    this.grantLeastPrivilege(functions, documentArns);
    this.grantApprovals(functions.approval, endpoint);

    const workflow = new PatchWorkflow(this, 'Workflow', {
      functions,
      stages: STAGES,
      verifyStage: VERIFY_STAGE,
      documentNames,
      approvalTopic: this.approvalTopic,
      notificationTopic: this.notificationTopic,
    });
    const logGroup = new logs.LogGroup(this, 'ExecutionLogs', {
      retention: logs.RetentionDays.SIX_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(workflow.definition),
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: 'patch-pipeline: snapshot, staged SSM documents gated by S3 markers, power-state restore, report',
      tracingEnabled: true,
      logs: { destination: logGroup, level: props.logLevel ?? sfn.LogLevel.ALL, includeExecutionData: true },
    });
    // A separate policy: on the endpoint's default policy this grant would close a dependency cycle
    // (endpoint -> state machine -> approval function -> endpoint URL -> endpoint).
    const taskResponse = new iam.Policy(this, 'ApprovalEndpointTaskResponse', {
      roles: [endpoint.role!],
      // The wait tasks run in the approval Map's child executions; their tokens belong to this state machine's map runs.
      statements: [
        new iam.PolicyStatement({
          actions: ['states:SendTaskSuccess', 'states:SendTaskFailure'],
          resources: [this.stateMachine.stateMachineArn, `${this.stateMachine.stateMachineArn}/${APPROVAL_MAP_LABEL}*`],
        }),
      ],
    });
    Validations.of(taskResponse).acknowledge({
      id: `AwsSolutions::AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(this.stateMachine.node.defaultChild as CfnElement)}>/${APPROVAL_MAP_LABEL}*]`,
      reason: "Task tokens of the approval Map's child executions, whose ids exist only at run time.",
    });
    this.patchWindows = new PatchWindows(this, 'PatchWindows', { stateMachine: this.stateMachine, windows: props.patchWindows ?? [] });
    this.acknowledgeNagFindings(functions);
  }

  private grantLeastPrivilege(f: PatchWorkflowFunctions, documentArns: string[]): void {
    const { instances, volumes, snapshots } = ARNS;
    const runs = this.bucket.arnForObjects('runs/*');
    const add = (fn: lambda.IFunction, ...statements: iam.PolicyStatement[]): void => {
      for (const s of statements) fn.addToRolePolicy(s);
    };
    const readWriteRuns = new iam.PolicyStatement({ actions: ['s3:GetObject', 's3:PutObject'], resources: [runs] });
    const listRuns = new iam.PolicyStatement({
      actions: ['s3:ListBucket'],
      resources: [this.bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': ['runs/*'] } },
    });
    // Describe* calls support no resource-level permissions.
    const describeInstances = new iam.PolicyStatement({ actions: ['ec2:DescribeInstances', 'ssm:DescribeInstanceInformation'], resources: ['*'] });

    add(
      f.changeFreeze,
      // The calendar may be named in the execution input, so any Change Calendar document of this account and region.
      new iam.PolicyStatement({ actions: ['ssm:GetCalendarState'], resources: [ARNS.documents] }),
    );
    add(f.discover, describeInstances, new iam.PolicyStatement({ actions: ['ec2:DescribeVolumes'], resources: ['*'] }), readWriteRuns);
    add(
      f.power,
      describeInstances,
      new iam.PolicyStatement({ actions: ['ec2:StartInstances', 'ec2:StopInstances'], resources: [instances] }),
      readWriteRuns,
    );
    add(
      f.snapshot,
      new iam.PolicyStatement({ actions: ['ec2:CreateSnapshots'], resources: [instances, volumes, snapshots] }),
      new iam.PolicyStatement({
        actions: ['ec2:CreateTags'],
        resources: [snapshots],
        conditions: { StringEquals: { 'ec2:CreateAction': 'CreateSnapshots' } },
      }),
      new iam.PolicyStatement({ actions: ['ec2:DescribeSnapshots'], resources: ['*'] }),
      readWriteRuns,
    );
    add(f.runStage, new iam.PolicyStatement({ actions: ['ssm:SendCommand'], resources: [...documentArns, instances] }), readWriteRuns);
    add(
      f.checkStage,
      new iam.PolicyStatement({ actions: ['ssm:ListCommandInvocations', 'ssm:CancelCommand'], resources: ['*'] }),
      readWriteRuns,
      listRuns,
    );
    add(f.report, readWriteRuns, listRuns);
    add(
      f.reboot,
      describeInstances,
      new iam.PolicyStatement({ actions: ['ec2:RebootInstances'], resources: [instances] }),
      readWriteRuns,
      listRuns,
    );
  }

  /** The approval functions read the signing key through SSM's Secrets Manager reference and touch runs/ only. */
  private grantApprovals(approval: lambda.IFunction, endpoint: lambda.IFunction): void {
    const stack = Stack.of(this);
    const reference = stack.formatArn({
      service: 'ssm',
      resource: 'parameter',
      resourceName: `aws/reference/secretsmanager/${this.approvalSecret.secretName}`,
    });
    for (const fn of [approval, endpoint]) {
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['ssm:GetParameter'], resources: [reference] }));
      this.approvalSecret.grantRead(fn);
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [this.bucket.arnForObjects('runs/*')] }));
      fn.addToRolePolicy(
        new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.bucket.bucketArn], conditions: { StringLike: { 's3:prefix': ['runs/*'] } } }),
      );
    }
    // plan writes approval records and chunk batch documents; the endpoint writes only approval records.
    approval.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [this.bucket.arnForObjects('runs/*')] }));
    endpoint.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [this.bucket.arnForObjects('runs/*/approvals/*')] }));
    // plan reads the approver and reboot-order tags, which run.json does not keep.
    approval.addToRolePolicy(new iam.PolicyStatement({ actions: ['ec2:DescribeInstances'], resources: ['*'] }));
  }

  /**
   * Acknowledges, one finding at a time and with its reason, the cdk-nag findings that remain
   * after least privilege: wildcards that exist because the resource is only known at run time or
   * because the API has no resource-level permission.
   */
  private acknowledgeNagFindings(f: PatchWorkflowFunctions): void {
    const stack = Stack.of(this);
    // A function's findings are on its role, a sibling of the function.
    const ack = (scope: IConstruct, finding: string, reason: string): void =>
      Validations.of(scope instanceof lambda.Function ? scope.role! : scope).acknowledge({ id: `AwsSolutions::AwsSolutions-${finding}`, reason });
    const ref = (c: IConstruct): string => stack.getLogicalId(c.node.defaultChild as CfnElement);
    const runs = `<${ref(this.bucket)}.Arn>/runs/*`;
    const ec2 = {
      instances: 'arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*',
      volumes: 'arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:volume/*',
      snapshots: 'arn:<AWS::Partition>:ec2:<AWS::Region>::snapshot/*',
    };

    ack(this.bucket, 'S1', 'One-bucket design: it holds pipeline state and reports only; pass serverAccessLogsBucket to log access.');
    ack(this.instancePolicy, `IAM5[Resource::${runs}]`, 'Documents write one object per run, stage and instance under runs/; run ids exist only at run time.');
    ack(this.instancePolicy, `IAM5[Resource::${runs}/inventory/*]`, 'compare reads the pre and post inventories of its own run; run ids exist only at run time.');
    ack(this.approvalEndpoint, `IAM5[Resource::${runs}/approvals/*]`, 'The endpoint records decisions in runs/<runId>/approvals/; run ids exist only at run time.');
    ack(this.approvalSecret, 'SMG4', 'HMAC key of approval links: rotating it invalidates open requests; rotate by hand between patch windows.');
    for (const fn of [...Object.values(f), this.approvalEndpoint] as lambda.IFunction[]) {
      ack(fn, 'IAM5[Resource::*]', 'X-Ray PutTraceSegments, and the Describe/List APIs the function calls, support no resource-level permissions.');
      if (fn !== f.normalizeInput && fn !== f.changeFreeze) ack(fn, `IAM5[Resource::${runs}]`, 'Run objects live under runs/<runId>/; run ids exist only at run time.');
    }
    ack(f.changeFreeze, 'IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:document/*]', 'The Change Calendar may be named in the execution input; read-only GetCalendarState.');
    const targetsReason = 'Target instances are selected by tag at run time; scoped to this account and region.';
    ack(f.power, `IAM5[Resource::${ec2.instances}]`, targetsReason);
    ack(f.runStage, `IAM5[Resource::${ec2.instances}]`, targetsReason);
    ack(f.reboot, `IAM5[Resource::${ec2.instances}]`, targetsReason);
    ack(f.snapshot, `IAM5[Resource::${ec2.instances}]`, targetsReason);
    ack(f.snapshot, `IAM5[Resource::${ec2.volumes}]`, 'CreateSnapshots reads every EBS volume of a target instance, known at run time only.');
    ack(f.snapshot, `IAM5[Resource::${ec2.snapshots}]`, 'New snapshot ids are unknown before CreateSnapshots; tagging is limited to CreateSnapshots by condition.');
    ack(this.stateMachine, 'IAM5[Resource::*]', 'Generated by CDK for X-Ray and CloudWatch Logs delivery, which support no resource-level permissions.');
    for (const fn of Object.values(f) as lambda.IFunction[]) {
      ack(this.stateMachine, `IAM5[Resource::<${ref(fn)}.Arn>:*]`, 'Generated by CDK: invoking any version of a pipeline function.');
    }
    const selfName = `{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"${ref(this.stateMachine)}"}]}]}`;
    const executions = `arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${selfName}`;
    ack(this.stateMachine, `IAM5[Resource::${executions}/PatchBatch:*]`, 'Generated by CDK: the Distributed Map manages its own child executions.');
    ack(this.stateMachine, `IAM5[Resource::${executions}/${APPROVAL_MAP_LABEL}:*]`, 'Generated by CDK: the approval Distributed Map manages its own child executions.');

    ack(this.stateMachine, `IAM5[Resource::${executions}:*]`, 'Generated by CDK: the Distributed Map describes and stops executions of this state machine.');
  }
}
