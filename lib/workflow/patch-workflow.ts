import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { StageDefinition } from '../stages';
import { ApprovalPhase } from './approval-phase';
import { Gate } from './gate';
import { lambdaTask, snsPublishTask } from './lambda-task';

/** The functions the workflow calls, one per step kind. */
export interface PatchWorkflowFunctions {
  readonly normalizeInput: lambda.IFunction;
  readonly changeFreeze: lambda.IFunction;
  readonly discover: lambda.IFunction;
  readonly power: lambda.IFunction;
  readonly snapshot: lambda.IFunction;
  readonly runStage: lambda.IFunction;
  readonly checkStage: lambda.IFunction;
  readonly approval: lambda.IFunction;
  readonly reboot: lambda.IFunction;
  readonly report: lambda.IFunction;
}

export interface PatchWorkflowProps {
  readonly functions: PatchWorkflowFunctions;
  /** The document stages, in order. */
  readonly stages: readonly StageDefinition[];
  /** The stage run after an approved reboot. */
  readonly verifyStage: StageDefinition;
  /** Deployed document name of each document of ssm-documents/, by file name. */
  readonly documentNames: Readonly<Record<string, string>>;
  /** Where approval requests are published. */
  readonly approvalTopic: sns.ITopic;
  /** Where the end of every run is announced, with the report's location. */
  readonly notificationTopic: sns.ITopic;
}

/** What every task of a run receives: the run reference, never the fleet. */
const RUN_REF = { 'runId.$': '$.runId', 'bucket.$': '$.bucket', 'config.$': '$.config' };
const BATCH_REF = { ...RUN_REF, 'batchId.$': '$.batchId' };

/**
 * The patch run: normalize input -> discover -> per batch (power on, snapshot, the document
 * stages) -> restore power states -> report. Every failure after discovery still reaches restore
 * and report. Batches run as child executions of a Distributed Map, so each batch has its own
 * 25,000-event history and batches never wait for each other.
 */
export class PatchWorkflow extends Construct {
  public readonly definition: sfn.IChainable;

  constructor(scope: Construct, id: string, props: PatchWorkflowProps) {
    super(scope, id);
    const fns = props.functions;
    const stageIds = props.stages.map((s) => s.id);

    // Report, notify, then fail the execution if the pipeline itself broke (instances failing alone do not).
    const report = this.task('Report', fns.report, 'Write report', {
      ...RUN_REF,
      stages: props.stages.map((s) => ({ id: s.id, title: s.title })),
      'batchResults.$': '$.batchResults',
      'approvalResults.$': '$.approvalResults',
      'error.$': '$.error',
      'restoreError.$': '$.restoreError',
      'freeze.$': '$.freeze',
    }, '$.report');
    report.addCatch(
      new sfn.Fail(this, 'ReportFailed', { stateName: 'Report failed', errorPath: '$.reportError.Error', causePath: '$.reportError.Cause' }),
      { resultPath: '$.reportError' },
    );
    const outcome = new sfn.Choice(this, 'AnyPipelineError', { stateName: 'Pipeline error?' })
        .when(
          sfn.Condition.isPresent('$.error.Error'),
          new sfn.Fail(this, 'RunFailed', { stateName: 'Patch run failed', errorPath: '$.error.Error', causePath: '$.error.Cause' }),
        )
        // A freeze is not a pipeline error, but a scheduled run that patched nothing must stand out.
        .when(
          sfn.Condition.booleanEquals('$.freeze.frozen', true),
          new sfn.Fail(this, 'ChangeFreeze', { stateName: 'Change freeze', error: 'ChangeFreeze', causePath: '$.freeze.message' }),
        )
      .otherwise(new sfn.Succeed(this, 'RunComplete', { stateName: 'Run complete' }));
    // Announce the run; a notification that cannot be sent never changes the run's outcome.
    const notify = snsPublishTask(this, 'NotifyRun', { stateName: 'Notify run result', topic: props.notificationTopic, from: '$.report' });
    notify.addCatch(outcome, { resultPath: '$.notifyError' });
    report.next(notify).next(outcome);

    const restore = new Gate(this, 'Restore', {
      name: 'restore',
      action: { title: 'stop instances that were stopped', function: fns.power, payload: { action: 'restore', ...RUN_REF } },
      check: { title: 'check power states', function: fns.power, payload: { action: 'check-restored', ...RUN_REF } },
      onError: report,
      errorPath: '$.restoreError',
    });
    const restoreAndReport = sfn.Chain.start(restore).next(report);

    const normalize = this.task('Normalize', fns.normalizeInput, 'Normalize input', {
      'input.$': '$$.Execution.Input',
      'executionName.$': '$$.Execution.Name',
      stages: [...stageIds, props.verifyStage.id],
    });
    const invalid = new sfn.Fail(this, 'InvalidInput', { stateName: 'Invalid input', errorPath: '$.error', causePath: '$.cause' });
    // Every path reads these keys, so they exist from the start (JSONPath fails on a missing key).
    const start = new sfn.Pass(this, 'StartRun', {
      stateName: 'Start run',
      // {} rather than null: "no error yet" (a Catch fills in Error and Cause); null is not a value for every engine.
      parameters: { ...RUN_REF, batchResults: [], approvalResults: [], error: {}, restoreError: {}, freeze: { frozen: false } },
    });
    const checkFreeze = this.task('ChangeFreezeCheck', fns.changeFreeze, 'Check change calendar', RUN_REF, '$.freeze');
    const discover = this.task('Discover', fns.discover, 'Discover targets', { ...RUN_REF, stages: stageIds }, '$.discovery');

    // One batch: power on, snapshot, then every document stage, each a gate.
    const batchFailed = new sfn.Pass(this, 'BatchFailed', {
      stateName: 'Batch failed',
      parameters: { 'batchId.$': '$.batchId', 'error.$': '$.error' },
    });
    let batch = sfn.Chain.start(
      new Gate(this, 'PowerOn', {
        name: 'power-on',
        action: { title: 'start stopped instances', function: fns.power, payload: { action: 'start', ...BATCH_REF } },
        check: { title: 'check running and online', function: fns.power, payload: { action: 'check-started', ...BATCH_REF } },
        onError: batchFailed,
      }),
    ).next(
      new Gate(this, 'Snapshot', {
        name: 'snapshot',
        action: { title: 'create snapshots', function: fns.snapshot, payload: { action: 'create', ...BATCH_REF } },
        check: { title: 'check snapshots', function: fns.snapshot, payload: { action: 'check', ...BATCH_REF } },
        onError: batchFailed,
      }),
    );
    for (const stage of props.stages) {
      const documentName = props.documentNames[stage.document];
      if (!documentName) throw new Error(`stage ${stage.id} uses document ${stage.document}, which is not deployed`);
      const payload = {
        ...BATCH_REF,
        stage: { id: stage.id, title: stage.title, documentName, parameters: stage.parameters, prefixes: stage.prefixes },
      };
      batch = batch.next(
        new Gate(this, `Stage-${stage.id}`, {
          name: stage.id,
          action: { title: 'send command', function: fns.runStage, payload },
          check: { title: 'check markers', function: fns.checkStage, payload },
          onError: batchFailed,
        }),
      );
    }
    batch = batch.next(new sfn.Pass(this, 'BatchDone', { stateName: 'Batch done', parameters: { 'batchId.$': '$.batchId' } }));

    const batches = new sfn.DistributedMap(this, 'Batches', {
      stateName: 'Patch batches',
      itemsPath: '$.discovery.batches',
      itemSelector: { ...RUN_REF, 'batchId.$': '$$.Map.Item.Value' },
      maxConcurrencyPath: '$.config.batchConcurrency',
      mapExecutionType: sfn.StateMachineType.STANDARD,
      resultPath: '$.batchResults',
      label: 'PatchBatch',
    });
    batches.itemProcessor(batch);

    checkFreeze.addCatch(restoreAndReport, { resultPath: '$.error' });
    discover.addCatch(restoreAndReport, { resultPath: '$.error' });
    const verifyDocumentName = props.documentNames[props.verifyStage.document];
    if (!verifyDocumentName) throw new Error(`the verify stage uses document ${props.verifyStage.document}, which is not deployed`);
    const approvals = new ApprovalPhase(this, 'Approvals', {
      approvalFunction: fns.approval,
      rebootFunction: fns.reboot,
      runStageFunction: fns.runStage,
      checkStageFunction: fns.checkStage,
      topic: props.approvalTopic,
      verifyStage: props.verifyStage,
      verifyDocumentName,
      onError: restoreAndReport,
    });
    batches.addCatch(restoreAndReport, { resultPath: '$.error' });

    this.definition = sfn.Chain.start(normalize).next(
      new sfn.Choice(this, 'InputValid', { stateName: 'Input valid?' })
        .when(sfn.Condition.booleanEquals('$.valid', false), invalid)
        .otherwise(
          start.next(checkFreeze).next(
            new sfn.Choice(this, 'Frozen', { stateName: 'Change freeze?' })
              .when(sfn.Condition.booleanEquals('$.freeze.frozen', true), report)
              .otherwise(
                discover.next(
                  // A dry run reports what would be patched; nothing was started, so nothing to restore.
                  new sfn.Choice(this, 'DryRun', { stateName: 'Dry run?' })
                    .when(sfn.Condition.booleanEquals('$.config.dryRun', true), report)
                    .otherwise(batches.next(approvals).next(restoreAndReport)),
                ),
              ),
          ),
        ),
    );
  }

  private task(id: string, fn: lambda.IFunction, stateName: string, payload: Record<string, unknown>, resultPath?: string): tasks.LambdaInvoke {
    return lambdaTask(this, id, { stateName, fn, payload, resultPath });
  }
}
