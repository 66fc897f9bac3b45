import { s3Client, ssmClient } from '../shared/clients';
import { GateState, StageTaskInput } from '../shared/types';
import { checkStage } from './check-stage';

const deps = { ssm: ssmClient(), s3: s3Client() };

export const handler = async (event: StageTaskInput): Promise<GateState> => checkStage(event, deps);
