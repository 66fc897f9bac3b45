import { areaPrefix, markerPrefix } from './keys';
import { RunConfig, StageSpec } from './types';

/**
 * Parameters every patch-pipeline document declares (all String, each with an allowedPattern).
 * The S3 key layout reaches the documents only through these values.
 */
export const COMMON_DOCUMENT_PARAMETERS = [
  'RunId',
  'Stage',
  'Bucket',
  'Region',
  'MarkerPrefix',
  'ApplicationTagKey',
  'OwnerTagKey',
  'ExecutionTimeout',
] as const;

/** SendCommand Parameters for one stage of one run: common values, then the stage's own. */
export function documentParameters(
  runId: string,
  bucket: string,
  config: RunConfig,
  stage: StageSpec,
  extra: Record<string, string> = {},
): Record<string, string[]> {
  const params: Record<string, string[]> = {
    RunId: [runId],
    Stage: [stage.id],
    Bucket: [bucket],
    Region: [config.region],
    MarkerPrefix: [markerPrefix(runId, stage.id)],
    ApplicationTagKey: [config.applicationTagKey],
    OwnerTagKey: [config.ownerTagKey],
    ExecutionTimeout: [String(config.stageTimeouts[stage.id] ?? 3600)],
  };
  for (const [name, value] of Object.entries(stage.parameters)) params[name] = [value];
  for (const [name, area] of Object.entries(stage.prefixes)) params[name] = [areaPrefix(runId, area)];
  // Run-time values never override the run's identity or its S3 keys.
  for (const [name, value] of Object.entries(extra)) if (!(name in params)) params[name] = [value];
  return params;
}
