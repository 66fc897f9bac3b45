import { Writable } from 'node:stream';
import { GateTally, plainGateLine, ProgressView } from '../../sim/progress-view';

/** A stream that keeps what was written; a terminal when isTTY is set. */
function sink(isTTY: boolean): Writable & { isTTY: boolean; columns: number; text: () => string } {
  const chunks: string[] = [];
  const s = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  }) as Writable & { isTTY: boolean; columns: number; text: () => string };
  s.isTTY = isTTY;
  s.columns = 120;
  s.text = () => chunks.join('');
  return s;
}

describe('GateTally', () => {
  it('keeps the latest counts per batch and sums them per step, in first-seen order', () => {
    const t = new GateTally();
    expect(t.record({ step: 'patch', batch: 'b000', done: 0, failed: 0, pending: 3 })).toBe(true);
    expect(t.record({ step: 'patch', batch: 'b001', done: 0, failed: 0, pending: 2 })).toBe(true);
    expect(t.record({ step: 'patch', batch: 'b000', done: 1, failed: 1, pending: 1 })).toBe(true);
    // The same counts again (a check that saw no change): nothing to print.
    expect(t.record({ step: 'patch', batch: 'b000', done: 1, failed: 1, pending: 1 })).toBe(false);
    t.record({ step: 'reboot', batch: 'a000-0', done: 0, failed: 0, pending: 2 });
    expect(t.all()).toEqual([
      { step: 'patch', total: 5, done: 1, failed: 1, pending: 3 },
      { step: 'reboot', total: 2, done: 0, failed: 0, pending: 2 },
    ]);
    expect(t.step('verify')).toBeUndefined();
  });
});

describe('ProgressView', () => {
  it('prints a plain line when a step changes, and log lines as they come, when stdout is not a terminal', () => {
    const out = sink(false);
    const view = new ProgressView(out);
    view.log('[00:08:08] patch: send command');
    view.gate({ step: 'patch', batch: 'b000', done: 0, failed: 0, pending: 6 }, '00:08:08');
    view.gate({ step: 'patch', batch: 'b000', done: 0, failed: 0, pending: 6 }, '00:08:38');
    view.gate({ step: 'patch', batch: 'b000', done: 4, failed: 1, pending: 1 }, '00:34:11');
    view.stop();
    expect(out.text().split('\n')).toEqual([
      '[00:08:08] patch: send command',
      '[00:08:08] patch           done 0  failed 0  pending 6  (of 6)',
      '[00:34:11] patch           done 4  failed 1  pending 1  (of 6)',
      '',
    ]);
    expect(out.text()).not.toMatch(/\x1b/);
  });

  it('plainGateLine pads the step like the status view', () => {
    expect(plainGateLine('00:00:10', { step: 'power-on', total: 6, done: 6, failed: 0, pending: 0 })).toBe('[00:00:10] power-on        done 6  failed 0  pending 0  (of 6)');
  });

  it('draws one bar per step on a terminal, with log lines above them', () => {
    const out = sink(true);
    const view = new ProgressView(out);
    view.gate({ step: 'snapshot', batch: 'b000', done: 6, failed: 0, pending: 0 }, '00:02:07');
    view.gate({ step: 'patch', batch: 'b000', done: 4, failed: 1, pending: 1 }, '00:34:11');
    view.log('[00:38:42] approval pending: web http://127.0.0.1:1/?id=x');
    view.stop();
    const text = out.text();
    expect(text).toContain('approval pending: web http://127.0.0.1:1/?id=x');
    expect(text.indexOf('approval pending')).toBeLessThan(text.lastIndexOf('patch '));
    expect(text).toMatch(/snapshot +█{30} 6\/6 {2}done 6 {2}failed 0 {2}pending 0/);
    expect(text).toMatch(/patch +█{25}░{5} 5\/6 {2}done 4 {2}failed 1 {2}pending 1/);
    expect(view.steps().map((s) => s.step)).toEqual(['snapshot', 'patch']);
  });
});
