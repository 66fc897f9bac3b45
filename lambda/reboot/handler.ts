import { ec2Client, s3Client, ssmClient } from '../shared/clients';
import { GateState } from '../shared/types';
import { reboot, RebootEvent } from './reboot';

const deps = { ec2: ec2Client(), ssm: ssmClient(), s3: s3Client() };

export const handler = async (event: RebootEvent): Promise<GateState> => reboot(event, deps);
