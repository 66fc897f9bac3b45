import { BatchDocument, InstanceProgress, RunConfig, StageSpec } from '../../lambda/shared/types';
import { testConfig } from './fixtures';

/** Fixtures shared by the stage tests (run-stage, check-stage, report). */
export const RUN_ID = 'run-2024-06-01';
export const BUCKET = 'patch-bucket';
export const BATCH_ID = 'b000';

export const CONFIG: RunConfig = testConfig({
  batchConcurrency: 2,
  maxConcurrency: '10',
  maxErrors: '2',
  stageTimeouts: {
    'agent-update': 900,
    'pre-inventory': 1200,
    patch: 7200,
    'post-inventory': 1200,
    compare: 600,
    'failed-check': 600,
  },
  powerOnTimeoutSeconds: 600,
  snapshotTimeoutSeconds: 1800,
  snapshotRetentionDays: 7,
});

export const PRE_INVENTORY: StageSpec = {
  id: 'pre-inventory',
  title: 'Inventory before patching',
  documentName: 'PatchPipeline-inventory-ABC123',
  parameters: { Phase: 'pre' },
  prefixes: { OutputPrefix: 'inventory/pre' },
};

export const PATCH: StageSpec = {
  id: 'patch',
  title: 'Install patches without restart',
  documentName: 'PatchPipeline-patch-ABC123',
  parameters: {},
  prefixes: {},
};

export const activeProgress = (overrides: Partial<InstanceProgress> = {}): InstanceProgress => ({
  status: 'active',
  snapshotIds: ['snap-1'],
  snapshotState: 'completed',
  stages: {},
  ...overrides,
});

export function batchOf(instances: Record<string, InstanceProgress>, batchId = BATCH_ID): BatchDocument {
  return {
    runId: RUN_ID,
    batchId,
    instanceIds: Object.keys(instances),
    instances,
    updatedAt: '2024-06-01T00:00:00.000Z',
  };
}
