import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { Writable } from 'node:stream';
import { CliDeps, runCli } from '../../../tools/cli/program';

/** A stream that keeps what was written; isTTY as asked. */
export class Capture extends Writable {
  public text = '';
  public columns = 120;
  constructor(public readonly isTTY = false) {
    super();
  }
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly sleeps: number[];
}

/** Runs the CLI in-process with fresh clients (mocked when the test file mocked their class). */
export async function cli(argv: string[], options: Partial<CliDeps> & { tty?: boolean } = {}): Promise<CliRun> {
  const stdout = new Capture(options.tty ?? false);
  const stderr = new Capture();
  const sleeps: number[] = [];
  const code = await runCli(argv, {
    io: { stdout, stderr },
    sfn: () => new SFNClient({ region: 'eu-west-1' }),
    s3: () => new S3Client({ region: 'eu-west-1' }),
    env: {},
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    simulate: async () => {
      throw new Error('simulate is not expected in this test');
    },
    ...options,
  });
  return { code, stdout: stdout.text, stderr: stderr.text, sleeps };
}

export const SM_ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:PatchPipelineStateMachineE9F1A2B3-AbCdEf';
export const execArn = (runId: string): string => `arn:aws:states:eu-west-1:123456789012:execution:PatchPipelineStateMachineE9F1A2B3-AbCdEf:${runId}`;
