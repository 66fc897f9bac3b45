import { power, PowerEvent } from './power';
import { ec2Client, s3Client, ssmClient } from '../shared/clients';
import { GateState } from '../shared/types';

const deps = { ec2: ec2Client(), ssm: ssmClient(), s3: s3Client() };

export const handler = async (event: PowerEvent): Promise<GateState> => power(event, deps);
