/**
 * THE list of document stages, as data. The workflow, the SSM documents, the marker keys, the
 * report and the simulator are all built from this list: a new stage is one entry here.
 */

export interface StageDefinition {
  /** Stage id used in markers, reports and state names. */
  readonly id: string;
  /** Short human title, shown in state names and reports. */
  readonly title: string;
  /** The document that runs this stage: ssm-documents/<document>.yaml. */
  readonly document: string;
  /** Static document parameters for this stage. */
  readonly parameters: Readonly<Record<string, string>>;
  /** Document parameters that receive an S3 key prefix under runs/<runId>/. */
  readonly prefixes: Readonly<Record<string, string>>;
  /** Default stage timeout in seconds (the execution input can override it). */
  readonly timeoutSeconds: number;
  /** What the stage leaves in S3 besides its marker (run-relative areas), for the docs and the report. */
  readonly outputs: readonly string[];
}

export const STAGES: readonly StageDefinition[] = [
  {
    id: 'agent-update',
    title: 'Update SSM agent',
    document: 'agent-update',
    parameters: {},
    prefixes: {},
    timeoutSeconds: 900,
    outputs: [],
  },
  {
    id: 'pre-inventory',
    title: 'Inventory before patching',
    document: 'inventory',
    parameters: { Phase: 'pre' },
    prefixes: { OutputPrefix: 'inventory/pre' },
    timeoutSeconds: 1200,
    outputs: ['inventory/pre'],
  },
  {
    id: 'patch',
    title: 'Install patches without restart',
    document: 'patch',
    parameters: {},
    prefixes: {},
    timeoutSeconds: 7200,
    outputs: [],
  },
  {
    id: 'post-inventory',
    title: 'Inventory after patching',
    document: 'inventory',
    parameters: { Phase: 'post' },
    prefixes: { OutputPrefix: 'inventory/post' },
    timeoutSeconds: 1200,
    outputs: ['inventory/post'],
  },
  {
    id: 'compare',
    title: 'Compare inventories',
    document: 'compare',
    parameters: {},
    prefixes: { PrePrefix: 'inventory/pre', PostPrefix: 'inventory/post', OutputPrefix: 'compare' },
    timeoutSeconds: 600,
    outputs: ['compare'],
  },
  {
    id: 'failed-check',
    title: 'Check failed updates',
    document: 'failed-check',
    parameters: {},
    prefixes: { OutputPrefix: 'failed' },
    timeoutSeconds: 600,
    outputs: ['failed'],
  },
];

export const STAGE_IDS: readonly string[] = STAGES.map((s) => s.id);

/**
 * Runs per chunk after an approved group's reboot (not a batch stage): proves the instance booted
 * again and its application is healthy. Its group-level parameters (RebootedAfter, ServiceNames,
 * SystemdUnits, HealthUrl) come at run time, from the approval request.
 */
export const VERIFY_STAGE: StageDefinition = {
  id: 'verify',
  title: 'Verify health after reboot',
  document: 'verify',
  parameters: {},
  prefixes: {},
  timeoutSeconds: 900,
  outputs: [],
};

/** The distinct documents to deploy, in first-use order: the stages' documents, then verify. */
export const DOCUMENTS: readonly string[] = [...new Set([...STAGES, VERIFY_STAGE].map((s) => s.document))];
