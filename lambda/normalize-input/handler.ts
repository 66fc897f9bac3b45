import { normalizeInput, NormalizeInputEvent } from './normalize-input';
import { NormalizeOutput } from '../shared/types';

export const handler = async (event: NormalizeInputEvent): Promise<NormalizeOutput> => normalizeInput(event, process.env);
