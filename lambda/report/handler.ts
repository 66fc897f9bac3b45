import { s3Client } from '../shared/clients';
import { report, ReportInput, ReportOutput } from './report';

const deps = { s3: s3Client() };

export const handler = async (event: ReportInput): Promise<ReportOutput> => report(event, deps);
