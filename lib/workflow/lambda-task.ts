import { Duration } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';

/** Errors a pipeline Lambda raises when AWS throttles it after the SDK's own retries. */
export const THROTTLING_ERRORS = [
  'ThrottlingException',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'Lambda.TooManyRequestsException',
];

/** The retry every task of the pipeline gets on throttling, on top of the Lambda service retries. */
export const THROTTLING_RETRY: sfn.RetryProps = {
  errors: THROTTLING_ERRORS,
  interval: Duration.seconds(5),
  backoffRate: 2,
  maxAttempts: 6,
  jitterStrategy: sfn.JitterType.FULL,
};

/**
 * A Lambda task of the pipeline: the payload is the function's event, the response its result
 * (payloadResponseOnly), with a timeout (the local engine gives tasks without one 60 s) and the
 * retries on Lambda service errors and throttling. Without resultPath the result replaces the state.
 */
export function lambdaTask(
  scope: Construct,
  id: string,
  props: { stateName: string; fn: lambda.IFunction; payload: Record<string, unknown>; resultPath?: string; timeout?: Duration },
): tasks.LambdaInvoke {
  const t = new tasks.LambdaInvoke(scope, id, {
    stateName: props.stateName,
    lambdaFunction: props.fn,
    payload: sfn.TaskInput.fromObject(props.payload),
    payloadResponseOnly: true,
    resultPath: props.resultPath,
    taskTimeout: sfn.Timeout.duration(props.timeout ?? Duration.minutes(5)),
    retryOnServiceExceptions: true,
  });
  t.addRetry(THROTTLING_RETRY);
  return t;
}

/**
 * An SNS publish of a subject and message the previous task prepared (at `from`.subject / `from`.message),
 * with a timeout and the throttling retries; its result is discarded.
 */
export function snsPublishTask(scope: Construct, id: string, props: { stateName: string; topic: sns.ITopic; from: string }): tasks.SnsPublish {
  const t = new tasks.SnsPublish(scope, id, {
    stateName: props.stateName,
    topic: props.topic,
    subject: sfn.JsonPath.stringAt(`${props.from}.subject`),
    message: sfn.TaskInput.fromJsonPathAt(`${props.from}.message`),
    resultPath: sfn.JsonPath.DISCARD,
    taskTimeout: sfn.Timeout.duration(Duration.minutes(1)),
  });
  t.addRetry({ ...THROTTLING_RETRY, errors: ['SNS.ThrottledException', 'SNS.InternalErrorException', ...THROTTLING_ERRORS] });
  return t;
}
