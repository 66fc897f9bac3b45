import { ListStateMachinesCommand, SFNClient } from '@aws-sdk/client-sfn';
import { CliError, UsageError } from './errors';

/** The deployed state machine's generated name starts with the construct path PatchPipeline/StateMachine. */
export const STATE_MACHINE_NAME_PREFIX = 'PatchPipelineStateMachine';
export const STATE_MACHINE_ARN_ENV = 'PATCH_PIPELINE_STATE_MACHINE_ARN';

const STATE_MACHINE_ARN = /^arn:[\w-]+:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/;
const EXECUTION_ARN = /^arn:[\w-]+:states:([a-z0-9-]+):\d{12}:execution:[A-Za-z0-9_-]{1,80}:([A-Za-z0-9_-]{1,80})$/;

/**
 * The state machine to use: the flag, else PATCH_PIPELINE_STATE_MACHINE_ARN, else the one state
 * machine of the account and region whose name starts with PatchPipelineStateMachine.
 */
export async function resolveStateMachineArn(sfn: SFNClient, flag: string | undefined, env: NodeJS.ProcessEnv): Promise<string> {
  const given = flag ?? env[STATE_MACHINE_ARN_ENV];
  if (given) {
    if (!STATE_MACHINE_ARN.test(given)) {
      const from = flag ? '--state-machine-arn' : STATE_MACHINE_ARN_ENV;
      throw new UsageError(`${from} ${JSON.stringify(given)} is not a state machine ARN (arn:aws:states:<region>:<account>:stateMachine:<name>)`);
    }
    return given;
  }
  const found: { name: string; arn: string }[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new ListStateMachinesCommand({ nextToken }));
    for (const sm of page.stateMachines ?? []) {
      if (sm.name?.startsWith(STATE_MACHINE_NAME_PREFIX) && sm.stateMachineArn) found.push({ name: sm.name, arn: sm.stateMachineArn });
    }
    nextToken = page.nextToken;
  } while (nextToken);
  const fix = `pass --state-machine-arn <arn> or set ${STATE_MACHINE_ARN_ENV} (the stack output StateMachineArn)`;
  if (found.length === 0) {
    const region = await regionOf(sfn);
    throw new CliError(`no state machine named ${STATE_MACHINE_NAME_PREFIX}* in ${region}: deploy the stack (npx cdk deploy), use the right AWS_REGION / AWS_PROFILE, or ${fix}`);
  }
  if (found.length > 1) {
    throw new CliError(`${found.length} state machines are named ${STATE_MACHINE_NAME_PREFIX}* (${found.map((f) => f.arn).join(', ')}): ${fix}`);
  }
  return found[0].arn;
}

async function regionOf(sfn: SFNClient): Promise<string> {
  try {
    return await sfn.config.region();
  } catch {
    return 'this region';
  }
}

/** Step Functions names an execution arn:...:execution:<state machine name>:<execution name>. */
export function executionArnOf(stateMachineArn: string, runId: string): string {
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${runId}`;
}

/** A run given as an execution ARN: its run id and region. */
export function parseExecutionArn(arn: string): { runId: string; region: string } | undefined {
  const m = EXECUTION_ARN.exec(arn);
  return m ? { region: m[1], runId: m[2] } : undefined;
}

export function consoleLink(executionArn: string): string {
  const region = executionArn.split(':')[3];
  return `https://${region}.console.aws.amazon.com/states/home?region=${region}#/v2/executions/details/${executionArn}`;
}
