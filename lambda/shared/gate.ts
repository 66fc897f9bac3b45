import { GateState } from './types';

export interface GateCounts {
  readonly done: number;
  readonly failed: number;
  readonly pending: number;
}

/**
 * Opens a gate after its action ran. The gate is complete at once when nothing is pending
 * (for example every instance of the batch already left the pipeline).
 */
export function openGate(now: Date, timeoutSeconds: number, pollSeconds: number, counts: GateCounts, commandId?: string): GateState {
  const deadline = new Date(now.getTime() + timeoutSeconds * 1000);
  return {
    complete: counts.pending === 0,
    waitSeconds: waitFor(now, deadline, pollSeconds),
    deadline: deadline.toISOString(),
    startedAt: now.toISOString(),
    ...(commandId ? { commandId } : {}),
    ...counts,
    checks: 0,
  };
}

/** The gate after one check: complete when nothing is pending any more (the caller fails the late ones at the deadline). */
export function advanceGate(prev: GateState, now: Date, pollSeconds: number, counts: GateCounts): GateState {
  return {
    ...prev,
    ...counts,
    complete: counts.pending === 0,
    waitSeconds: waitFor(now, new Date(prev.deadline), pollSeconds),
    checks: prev.checks + 1,
  };
}

export const deadlinePassed = (gate: GateState, now: Date): boolean => now.getTime() >= new Date(gate.deadline).getTime();

/** Wait the poll interval, but not past the deadline (at least 1 s: Wait needs a positive value). */
function waitFor(now: Date, deadline: Date, pollSeconds: number): number {
  const left = Math.ceil((deadline.getTime() - now.getTime()) / 1000);
  return Math.max(1, Math.min(pollSeconds, left));
}
