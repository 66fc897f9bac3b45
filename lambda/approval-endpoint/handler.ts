import { s3Client, sfnClient, ssmClient } from '../shared/clients';
import { endpoint, FunctionUrlEvent, FunctionUrlResult } from './endpoint';

const deps = {
  s3: s3Client(),
  ssm: ssmClient(),
  sfn: sfnClient(),
  env: { BUCKET_NAME: process.env.BUCKET_NAME, APPROVAL_SECRET_ID: process.env.APPROVAL_SECRET_ID },
};

export const handler = async (event: FunctionUrlEvent): Promise<FunctionUrlResult> => endpoint(event, deps);
