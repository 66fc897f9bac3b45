import { GetCalendarStateCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { changeFreeze } from '../../../lambda/change-freeze/change-freeze';
import { RunConfig } from '../../../lambda/shared/types';

const ssm = mockClient(SSMClient);
const NOW = new Date('2026-11-28T22:00:00Z');
const event = (changeCalendarName: string) => ({
  runId: 'run-1',
  bucket: 'b',
  config: { changeCalendarName } as RunConfig,
});
const deps = { ssm: ssm as unknown as SSMClient, now: () => NOW };

describe('change-freeze', () => {
  beforeEach(() => ssm.reset());

  test('does not call SSM when no calendar is configured', async () => {
    await expect(changeFreeze(event(''), deps)).resolves.toMatchObject({ frozen: false, state: 'NONE' });
    expect(ssm).not.toHaveReceivedAnyCommand();
  });

  test('reports a freeze when the calendar is CLOSED, with the next transition', async () => {
    ssm.on(GetCalendarStateCommand).resolves({ State: 'CLOSED', NextTransitionTime: '2026-12-01T00:00:00Z' });
    const freeze = await changeFreeze(event('year-end-freeze'), deps);
    expect(ssm).toHaveReceivedCommandWith(GetCalendarStateCommand, { CalendarNames: ['year-end-freeze'], AtTime: NOW.toISOString() });
    expect(freeze).toMatchObject({ frozen: true, state: 'CLOSED', calendar: 'year-end-freeze' });
    expect(freeze.message).toMatch(/change freeze: change calendar year-end-freeze is CLOSED .* until 2026-12-01T00:00:00Z; the run changed nothing/);
  });

  test('lets the run go on when the calendar is OPEN', async () => {
    ssm.on(GetCalendarStateCommand).resolves({ State: 'OPEN' });
    await expect(changeFreeze(event('year-end-freeze'), deps)).resolves.toMatchObject({ frozen: false, state: 'OPEN' });
  });

  test('fails rather than patch blind when the calendar cannot be read', async () => {
    ssm.on(GetCalendarStateCommand).rejects(Object.assign(new Error('calendar not found'), { name: 'InvalidDocument' }));
    await expect(changeFreeze(event('missing'), deps)).rejects.toThrow('calendar not found');
  });
});
