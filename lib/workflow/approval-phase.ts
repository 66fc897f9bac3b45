import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { StageDefinition } from '../stages';
import { Gate } from './gate';
import { lambdaTask, snsPublishTask, THROTTLING_RETRY } from './lambda-task';

export interface ApprovalPhaseProps {
  readonly approvalFunction: lambda.IFunction;
  readonly rebootFunction: lambda.IFunction;
  readonly runStageFunction: lambda.IFunction;
  readonly checkStageFunction: lambda.IFunction;
  /** Where approval requests are published (e-mail subscriptions). */
  readonly topic: sns.ITopic;
  /** The verify stage, run per chunk after the reboot. */
  readonly verifyStage: StageDefinition;
  readonly verifyDocumentName: string;
  /** Where an error of the phase goes (the error lands at $.error). */
  readonly onError: sfn.IChainable;
}

/** Label of the approval Map's child executions (their ARNs end in <state machine>/<label>:...). */
export const APPROVAL_MAP_LABEL = 'RebootApproval';

const RUN_REF = { 'runId.$': '$.runId', 'bucket.$': '$.bucket', 'config.$': '$.config' };
const GROUP_REF = { ...RUN_REF, 'groupId.$': '$.groupId' };
/** The error names a rejected or unanswered request ends with; both defer the group's reboot. */
const DEFERRED = ['ApprovalRejected', 'States.Timeout'];

/**
 * After the document stages: one approval request per application; approved groups reboot (in
 * reboot order) and run the verify document; rejected or unanswered groups are deferred and
 * reported. Groups run side by side and never block each other.
 */
export class ApprovalPhase extends sfn.StateMachineFragment {
  public readonly startState: sfn.State;
  public readonly endStates: sfn.INextable[];

  constructor(scope: Construct, id: string, props: ApprovalPhaseProps) {
    super(scope, id);
    const fn = props.approvalFunction;

    const plan = this.task('Plan', fn, 'Plan approvals', { action: 'plan', ...RUN_REF }, '$.approvals');
    plan.addCatch(props.onError, { resultPath: '$.error' });

    const groupFailed = new sfn.Pass(this, 'GroupFailed', {
      stateName: 'approval: group failed',
      parameters: { 'groupId.$': '$.groupId', 'error.$': '$.error' },
    });
    const groupDone = (name: string, outcome: string): sfn.Pass =>
      new sfn.Pass(this, `Group-${outcome}`, { stateName: name, parameters: { 'groupId.$': '$.groupId', outcome } });

    const request = this.task('Request', fn, 'approval: prepare request', { action: 'request', ...GROUP_REF }, '$.request');
    request.addCatch(groupFailed, { resultPath: '$.error' });
    const notify = snsPublishTask(this, 'Notify', { stateName: 'approval: notify owner', topic: props.topic, from: '$.request' });
    notify.addCatch(groupFailed, { resultPath: '$.error' });

    // The token goes to the approval function only, which keeps it in S3; links carry an opaque id.
    const wait = new tasks.LambdaInvoke(this, 'Wait', {
      stateName: 'approval: wait for decision',
      lambdaFunction: fn,
      integrationPattern: sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
      payload: sfn.TaskInput.fromObject({ action: 'wait', taskToken: sfn.JsonPath.taskToken, 'runId.$': '$.runId', 'bucket.$': '$.bucket', 'groupId.$': '$.groupId' }),
      taskTimeout: sfn.Timeout.at('$.config.approval.timeoutSeconds'),
      resultPath: '$.decision',
    });
    // A retry runs the wait action again with a new token, which replaces the stored one.
    wait.addRetry(THROTTLING_RETRY);
    const close = this.task('Close', fn, 'approval: record deferral', { action: 'close', ...GROUP_REF, 'error.$': '$.error' }, '$.closed');
    close.addCatch(groupFailed, { resultPath: '$.error' });
    close.next(groupDone('approval: reboot deferred', 'deferred'));
    wait.addCatch(close, { errors: DEFERRED, resultPath: '$.error' });
    wait.addCatch(groupFailed, { resultPath: '$.error' });

    const reboot = new Gate(this, 'Reboot', {
      name: 'reboot',
      action: { title: 'reboot in order', function: props.rebootFunction, payload: { action: 'reboot', ...GROUP_REF } },
      check: { title: 'check back online', function: props.rebootFunction, payload: { action: 'check-rebooted', ...GROUP_REF } },
      onError: groupFailed,
    });

    const v = props.verifyStage;
    const verifyChunk = new Gate(this, 'Verify', {
      name: v.id,
      action: {
        title: 'send command',
        function: props.runStageFunction,
        payload: {
          ...RUN_REF,
          'batchId.$': '$.batchId',
          'extraParameters.$': '$.extraParameters',
          stage: { id: v.id, title: v.title, documentName: props.verifyDocumentName, parameters: v.parameters, prefixes: v.prefixes },
        },
      },
      check: {
        title: 'check markers',
        function: props.checkStageFunction,
        payload: {
          ...RUN_REF,
          'batchId.$': '$.batchId',
          stage: { id: v.id, title: v.title, documentName: props.verifyDocumentName, parameters: v.parameters, prefixes: v.prefixes },
        },
      },
      onError: new sfn.Pass(this, 'VerifyFailed', { stateName: 'verify: chunk failed', parameters: { 'batchId.$': '$.batchId', 'error.$': '$.error' } }),
    });
    const verify = new sfn.Map(this, 'VerifyChunks', {
      stateName: 'verify: chunks',
      itemsPath: '$.request.chunks',
      itemSelector: {
        ...RUN_REF,
        'batchId.$': '$$.Map.Item.Value',
        // The application's checks from the request; the reboot floor is when the reboot gate started.
        extraParameters: {
          'ServiceNames.$': '$.request.verifyParameters.ServiceNames',
          'SystemdUnits.$': '$.request.verifyParameters.SystemdUnits',
          'HealthUrl.$': '$.request.verifyParameters.HealthUrl',
          'RebootedAfter.$': '$.gate.startedAt',
        },
      },
      resultPath: '$.verifyResults',
    });
    verify.itemProcessor(verifyChunk.next(new sfn.Pass(this, 'VerifyChunkDone', { stateName: 'verify: chunk done', parameters: { 'batchId.$': '$.batchId' } })));
    verify.addCatch(groupFailed, { resultPath: '$.error' });

    const approved = sfn.Chain.start(reboot).next(verify).next(groupDone('approval: rebooted and verified', 'rebooted'));
    const group = sfn.Chain.start(request).next(
      new sfn.Choice(this, 'AnyApprover', { stateName: 'approval: anyone to ask?' })
        .when(sfn.Condition.booleanEquals('$.request.notify', false), groupDone('approval: no approver, deferred', 'no-approver'))
        .otherwise(notify.next(wait).next(approved)),
    );

    // Distributed: every group waits in its own child execution, so hundreds of applications can wait at
    // once (an inline Map runs at most 40) and each group's reboot and verify polling has its own history.
    const groups = new sfn.DistributedMap(this, 'Groups', {
      stateName: 'Reboot approvals',
      itemsPath: '$.approvals.groups',
      itemSelector: { ...RUN_REF, 'groupId.$': '$$.Map.Item.Value' },
      maxConcurrency: 1000,
      mapExecutionType: sfn.StateMachineType.STANDARD,
      label: APPROVAL_MAP_LABEL,
      resultPath: '$.approvalResults',
    });
    groups.itemProcessor(group);
    groups.addCatch(props.onError, { resultPath: '$.error' });
    plan.next(groups);

    this.startState = plan;
    this.endStates = [groups];
  }

  private task(id: string, fn: lambda.IFunction, stateName: string, payload: Record<string, unknown>, resultPath?: string): tasks.LambdaInvoke {
    return lambdaTask(this, id, { stateName, fn, payload, resultPath });
  }
}
