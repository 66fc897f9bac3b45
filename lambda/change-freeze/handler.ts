import { ssmClient } from '../shared/clients';
import { RunTaskInput } from '../shared/types';
import { changeFreeze, FreezeState } from './change-freeze';

const deps = { ssm: ssmClient() };

export const handler = async (event: RunTaskInput): Promise<FreezeState> => changeFreeze(event, deps);
