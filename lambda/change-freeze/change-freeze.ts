import { GetCalendarStateCommand, SSMClient } from '@aws-sdk/client-ssm';
import { logger } from '../shared/logger';
import { RunTaskInput } from '../shared/types';

/** What the workflow keeps at $.freeze: small, and enough for the report and the final state. */
export interface FreezeState {
  /** True when the calendar is CLOSED: the run must change nothing. */
  readonly frozen: boolean;
  /** '' when no calendar is configured. */
  readonly calendar: string;
  /** OPEN, CLOSED, or NONE when no calendar is configured. */
  readonly state: 'OPEN' | 'CLOSED' | 'NONE';
  readonly checkedAt: string;
  /** When the calendar's state changes next, if AWS says. */
  readonly nextTransitionTime?: string;
  readonly message: string;
}

export interface ChangeFreezeDeps {
  readonly ssm: SSMClient;
  readonly now?: () => Date;
}

/**
 * Reads the SSM Change Calendar once, at the start of the run. An error (calendar missing, no
 * permission) propagates: the workflow then restores and reports, and never patches blind.
 */
export async function changeFreeze(event: RunTaskInput, deps: ChangeFreezeDeps): Promise<FreezeState> {
  const checkedAt = (deps.now ?? (() => new Date()))().toISOString();
  const calendar = event.config.changeCalendarName ?? '';
  if (!calendar) return { frozen: false, calendar: '', state: 'NONE', checkedAt, message: 'no change calendar configured' };

  const res = await deps.ssm.send(new GetCalendarStateCommand({ CalendarNames: [calendar], AtTime: checkedAt }));
  const state = res.State === 'CLOSED' ? 'CLOSED' : 'OPEN';
  const next = res.NextTransitionTime ? ` until ${res.NextTransitionTime}` : '';
  const freeze: FreezeState = {
    frozen: state === 'CLOSED',
    calendar,
    state,
    checkedAt,
    ...(res.NextTransitionTime ? { nextTransitionTime: res.NextTransitionTime } : {}),
    message:
      state === 'CLOSED'
        ? `change freeze: change calendar ${calendar} is CLOSED at ${checkedAt}${next}; the run changed nothing`
        : `change calendar ${calendar} is OPEN${next}`,
  };
  logger.info('change calendar checked', { runId: event.runId, ...freeze });
  return freeze;
}
