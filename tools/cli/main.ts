import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { CLIENT_DEFAULTS } from '../../lambda/shared/clients';
import { runCli } from './program';
import { runSimulate } from './simulate';

/** The real clients: the SDK's credential and region chains, the endpoints of AWS_ENDPOINT_URL*, adaptive retry. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  return runCli(argv, {
    io: { stdout: process.stdout, stderr: process.stderr },
    sfn: (region) => new SFNClient({ ...CLIENT_DEFAULTS, ...(region ? { region } : {}) }),
    s3: (region) =>
      new S3Client({ ...CLIENT_DEFAULTS, ...(region ? { region } : {}), forcePathStyle: process.env.AWS_S3_FORCE_PATH_STYLE === 'true' }),
    simulate: runSimulate,
  });
}
