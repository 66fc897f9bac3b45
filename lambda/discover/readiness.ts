import { Volume } from '@aws-sdk/client-ec2';
import { TargetReadiness } from '../shared/types';

/**
 * The oldest SSM agent that interpolates document parameters as environment variables
 * (interpolationType ENV_VAR), which every document after agent-update relies on.
 */
export const MIN_AGENT_VERSION = '3.3.2746.0';

/** EBS volume states a snapshot can be taken in. */
const SNAPSHOTTABLE_STATES = new Set(['in-use', 'available']);

/** Compares dotted numeric versions ('3.2.1' < '3.3.2746.0'); missing parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

export interface ReadinessInput {
  /** EC2 state at discovery (only running and stopped instances get this far). */
  readonly state: string;
  readonly agentVersion?: string;
  readonly volumeIds: readonly string[];
  /** DescribeVolumes result for the run's candidate volumes; an absent id no longer exists. */
  readonly volumes: ReadonlyMap<string, Volume>;
}

/**
 * What a real run would depend on for one instance that passed the state and SSM checks:
 * volumes it can snapshot (blockers), and what it would do first (notes, never blockers).
 */
export function readinessOf(input: ReadinessInput): TargetReadiness {
  const blockers: string[] = [];
  const encrypted: string[] = [];
  let volumesReady = 0;
  for (const id of input.volumeIds) {
    const volume = input.volumes.get(id);
    const state = volume?.State ?? '';
    if (!volume) blockers.push(`volume ${id} not found`);
    else if (!SNAPSHOTTABLE_STATES.has(state)) blockers.push(`volume ${id} is in state ${state || 'unknown'}`);
    else {
      volumesReady += 1;
      if (volume.Encrypted) encrypted.push(id);
    }
  }

  const notes: string[] = [];
  if (input.state === 'stopped') notes.push('stopped: would be started; SSM online state is checked after start');
  const agentOutdated = Boolean(input.agentVersion) && compareVersions(input.agentVersion!, MIN_AGENT_VERSION) < 0;
  if (!input.agentVersion) notes.push('agent version unknown');
  else if (agentOutdated) notes.push(`agent ${input.agentVersion} < ${MIN_AGENT_VERSION}: agent-update updates it first`);
  // Snapshots of encrypted volumes use the volume's KMS key: worth knowing before a run, not a blocker.
  if (encrypted.length) notes.push(`encrypted volumes: ${encrypted.join(', ')}`);

  const ready = blockers.length === 0;
  const summary = ready ? notes.join('; ') || 'ready' : [`not ready: ${blockers.join('; ')}`, ...notes].join('; ');
  return {
    ready,
    summary,
    blockers,
    notes,
    ...(input.agentVersion ? { agentVersion: input.agentVersion } : {}),
    agentOutdated,
    volumesReady,
    encryptedVolumes: encrypted.length,
  };
}
