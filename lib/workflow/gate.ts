import { Duration } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { lambdaTask } from './lambda-task';


export interface GateStep {
  /** Verb phrase shown in the state name, e.g. 'check markers'. */
  readonly title: string;
  readonly function: lambda.IFunction;
  /** The task's payload (JSONPath: keys ending in '.$' are paths). */
  readonly payload: Record<string, unknown>;
}

export interface GateProps {
  /** Prefix of every state name, e.g. the stage id 'patch' or 'power-on'. */
  readonly name: string;
  /** The action, run once (e.g. 'send command'). */
  readonly action: GateStep;
  /** The check, run after each wait until it returns complete (it also receives `gate.$: $.gate`). */
  readonly check: GateStep;
  /** Where any error of the gate goes (the error lands at `errorPath`). */
  readonly onError: sfn.IChainable;
  /**
   * Result path of a caught error.
   * @default '$.error'
   */
  readonly errorPath?: string;
  /**
   * Timeout of each Lambda task (the local engine defaults to 60 s when none is set).
   * @default Duration.minutes(5)
   */
  readonly taskTimeout?: Duration;
}

/**
 * A gate: an action, then Wait -> Check until the check says complete. The one place where
 * "send, wait, check" lives, with its retries and catches, so that replacing polling by S3 marker
 * events resuming a task token touches only this fragment.
 */
export class Gate extends sfn.StateMachineFragment {
  public readonly startState: sfn.State;
  public readonly endStates: sfn.INextable[];

  constructor(scope: Construct, id: string, props: GateProps) {
    super(scope, id);
    const errorPath = props.errorPath ?? '$.error';
    const task = (title: string, fn: lambda.IFunction, payload: Record<string, unknown>): sfn.TaskStateBase => {
      const t = lambdaTask(this, title, { stateName: `${props.name}: ${title}`, fn, payload, resultPath: '$.gate', timeout: props.taskTimeout });
      t.addCatch(props.onError, { resultPath: errorPath });
      return t;
    };

    const action = task(props.action.title, props.action.function, props.action.payload);
    const check = task(props.check.title, props.check.function, { ...props.check.payload, 'gate.$': '$.gate' });
    const wait = new sfn.Wait(this, 'Wait', {
      stateName: `${props.name}: wait`,
      time: sfn.WaitTime.secondsPath('$.gate.waitSeconds'),
    });
    const done = new sfn.Pass(this, 'Done', { stateName: `${props.name}: done` });
    const complete = new sfn.Choice(this, 'Complete', { stateName: `${props.name}: complete?` })
      .when(sfn.Condition.booleanEquals('$.gate.complete', true), done)
      .otherwise(wait);
    action.next(complete);
    wait.next(check);
    check.next(complete);

    this.startState = action;
    this.endStates = [done];
  }
}
