import { ec2Client, s3Client, ssmClient } from '../shared/clients';
import { approval, ApprovalInput } from './approval';

const deps = {
  s3: s3Client(),
  ssm: ssmClient(),
  ec2: ec2Client(),
  env: {
    APPROVAL_ENDPOINT_URL: process.env.APPROVAL_ENDPOINT_URL,
    APPROVAL_SECRET_ID: process.env.APPROVAL_SECRET_ID,
    ITSM_WEBHOOK_URL: process.env.ITSM_WEBHOOK_URL,
  },
};

export const handler = async (event: ApprovalInput) => approval(event, deps);
