/**
 * The S3 key layout, in one place. The documents receive these prefixes as parameters.
 *
 * runs/<runId>/run.json
 * runs/<runId>/batches/<batchId>.json
 * runs/<runId>/markers/<stage>/<instanceId>.json
 * runs/<runId>/output/<stage>/...           (SSM OutputS3KeyPrefix)
 * runs/<runId>/inventory/{pre,post}/<instanceId>.csv
 * runs/<runId>/compare/<instanceId>.csv
 * runs/<runId>/failed/<instanceId>.csv
 * runs/<runId>/restore.json
 * runs/<runId>/report/report.{json,csv}
 */
export const RUNS_PREFIX = 'runs/';

export const runPrefix = (runId: string): string => `${RUNS_PREFIX}${runId}/`;
export const runDocumentKey = (runId: string): string => `${runPrefix(runId)}run.json`;
export const batchKey = (runId: string, batchId: string): string => `${runPrefix(runId)}batches/${batchId}.json`;
export const markerPrefix = (runId: string, stage: string): string => `${runPrefix(runId)}markers/${stage}/`;
export const markerKey = (runId: string, stage: string, instanceId: string): string =>
  `${markerPrefix(runId, stage)}${instanceId}.json`;
export const commandOutputPrefix = (runId: string, stage: string): string => `${runPrefix(runId)}output/${stage}/`;
/** A run-relative area such as 'inventory/pre' or 'compare', as a key prefix ending in '/'. */
export const areaPrefix = (runId: string, area: string): string => `${runPrefix(runId)}${area.replace(/^\/+|\/+$/g, '')}/`;
export const inventoryKey = (runId: string, phase: 'pre' | 'post', instanceId: string): string =>
  `${areaPrefix(runId, `inventory/${phase}`)}${instanceId}.csv`;
export const compareKey = (runId: string, instanceId: string): string => `${areaPrefix(runId, 'compare')}${instanceId}.csv`;
export const failedKey = (runId: string, instanceId: string): string => `${areaPrefix(runId, 'failed')}${instanceId}.csv`;
export const restoreKey = (runId: string): string => `${runPrefix(runId)}restore.json`;
export const reportPrefix = (runId: string): string => `${runPrefix(runId)}report/`;
export const reportJsonKey = (runId: string): string => `${reportPrefix(runId)}report.json`;
export const reportCsvKey = (runId: string): string => `${reportPrefix(runId)}report.csv`;

/** Batch ids sort in order: b000, b001, ... */
export const batchId = (index: number): string => `b${String(index).padStart(3, '0')}`;

/** A run id is the execution name: 1-80 chars of letters, digits, '-' and '_'. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9_-]{1,80}$/;
