import { quietNodeVersionSupportWarning } from '../../sim/warnings';
import { SimResult } from '../../sim/simulate';

quietNodeVersionSupportWarning();

/** The execution's status with its error, so a failing expectation shows why the run ended. */
export function outcome(r: SimResult): { status: string; error?: unknown } {
  return { status: r.status, ...(r.error ? { error: r.error } : {}) };
}

export function expectStatus(r: SimResult, status: 'SUCCEEDED' | 'FAILED'): void {
  if (r.status !== status) {
    const rows = r.instances.map((i) => `${i.name} ${i.status} ${i.failedAt ?? ''} ${i.reason ?? ''}`).join('\n  ');
    throw new Error(`execution ${r.runId}: expected ${status}, got ${JSON.stringify(outcome(r))}\n  ${rows}`);
  }
}

/** API calls that change something: a run that must change nothing makes none of them. */
export const CHANGING_CALLS = [
  'ec2:StartInstances',
  'ec2:StopInstances',
  'ec2:RebootInstances',
  'ec2:TerminateInstances',
  'ec2:CreateSnapshots',
  'ec2:CreateSnapshot',
  'ec2:CreateTags',
  'ssm:SendCommand',
  'ssm:CancelCommand',
];

export function changingCalls(r: SimResult): Record<string, number> {
  return Object.fromEntries(Object.entries(r.metrics.awsApiCalls).filter(([k, v]) => CHANGING_CALLS.includes(k) && v > 0));
}

export const STAGES = ['agent-update', 'pre-inventory', 'patch', 'post-inventory', 'compare', 'failed-check'];
