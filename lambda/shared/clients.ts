import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';

/**
 * One client factory: region, retry strategy and user agent are set here once.
 * Endpoints come from the standard AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> variables,
 * which the SDK reads itself, so production code never knows about a simulator.
 */
export const USER_AGENT = 'patch-pipeline/0.1';

/** Adaptive retry: client-side rate limiting on throttling, on top of the standard backoff. */
export const CLIENT_DEFAULTS = {
  retryMode: 'adaptive',
  maxAttempts: 8,
  customUserAgent: USER_AGENT,
} as const;

export const ec2Client = (): EC2Client => new EC2Client({ ...CLIENT_DEFAULTS });
export const ssmClient = (): SSMClient => new SSMClient({ ...CLIENT_DEFAULTS });
/** Path-style addressing keeps keys working with any endpoint; AWS accepts it for this bucket name shape. */
export const s3Client = (): S3Client =>
  new S3Client({ ...CLIENT_DEFAULTS, forcePathStyle: process.env.AWS_S3_FORCE_PATH_STYLE === 'true' });
export const sfnClient = (): SFNClient => new SFNClient({ ...CLIENT_DEFAULTS });
