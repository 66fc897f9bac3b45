import { discover, DiscoverEvent } from './discover';
import { ec2Client, s3Client, ssmClient } from '../shared/clients';
import { DiscoverOutput } from '../shared/types';

const deps = { ec2: ec2Client(), ssm: ssmClient(), s3: s3Client() };

export const handler = async (event: DiscoverEvent): Promise<DiscoverOutput> => discover(event, deps);
