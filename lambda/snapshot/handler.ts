import { snapshot, SnapshotEvent } from './snapshot';
import { ec2Client, s3Client } from '../shared/clients';
import { GateState } from '../shared/types';

const deps = { ec2: ec2Client(), s3: s3Client() };

export const handler = async (event: SnapshotEvent): Promise<GateState> => snapshot(event, deps);
