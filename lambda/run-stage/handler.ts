import { s3Client, ssmClient } from '../shared/clients';
import { GateState, StageTaskInput } from '../shared/types';
import { runStage } from './run-stage';

const deps = { ssm: ssmClient(), s3: s3Client() };

export const handler = async (event: StageTaskInput): Promise<GateState> => runStage(event, deps);
