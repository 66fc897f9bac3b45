import { Logger } from '@aws-lambda-powertools/logger';

/** The one structured logger of the handlers. Never log task tokens or secrets. */
export const logger = new Logger({ serviceName: 'patch-pipeline' });
