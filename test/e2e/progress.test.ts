import { describe, it, expect } from 'vitest';
import { PassThrough } from 'node:stream';
import { createProgress, renderProgress, formatDuration } from '../../host/progress.js';

function sink(isTTY: boolean) {
  const s = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  s.isTTY = isTTY;
  s.columns = 100;
  let text = '';
  s.on('data', (c) => (text += c));
  return { s, text: () => text };
}

describe('progress bar', () => {
  it('draws records, MB/s and ETA on a TTY', () => {
    let t = 0;
    const { s, text } = sink(true);
    const p = createProgress({ stream: s, totalBytes: 10_000_000, now: () => t, intervalMs: 0 });
    t = 1000;
    p.update(5000, 2_000_000);
    p.done();
    expect(text()).toContain('5,000 records');
    expect(text()).toContain('2.0 MB/s');
    expect(text()).toContain('ETA 00:04');
    expect(text()).toContain(' 20%');
    expect(text().endsWith('\n')).toBe(true);
  });
  it('writes nothing when the stream is not a terminal', () => {
    const { s, text } = sink(false);
    const p = createProgress({ stream: s, totalBytes: 100 });
    p.update(1, 50);
    p.done();
    expect(text()).toBe('');
  });
  it('formats durations and an unknown total', () => {
    expect(formatDuration(3725)).toBe('1:02:05');
    expect(formatDuration(NaN)).toBe('--:--');
    expect(renderProgress(10, 0, 0, undefined, 80)).toBe('10 records  0.0 MB/s  ETA --:--');
  });
});
