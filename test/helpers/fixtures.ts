import { DEFAULT_APPROVAL } from '../../lambda/shared/approvals';
import { RunConfig } from '../../lambda/shared/types';

/**
 * A valid RunConfig for tests. The base values are the ones most Lambda tests share; a test passes
 * only the fields it depends on (or must keep), e.g. `testConfig({ pollIntervalSeconds: 30 })`.
 */
export function testConfig(overrides: Partial<RunConfig> = {}): RunConfig {
  return {
    targetTags: { PatchGroup: ['web'] },
    instanceIds: [],
    batchSize: 50,
    batchConcurrency: 5,
    maxConcurrency: '10%',
    maxErrors: '10%',
    stageTimeouts: {},
    pollIntervalSeconds: 60,
    powerOnTimeoutSeconds: 900,
    snapshotTimeoutSeconds: 3600,
    snapshotRetentionDays: 14,
    applicationTagKey: 'Application',
    ownerTagKey: 'Owner',
    region: 'eu-west-1',
    // As normalize-input sets them for a run started by hand, without a change calendar.
    changeCalendarName: '',
    dryRun: false,
    window: '',
    approval: { ...DEFAULT_APPROVAL },
    ...overrides,
  };
}
