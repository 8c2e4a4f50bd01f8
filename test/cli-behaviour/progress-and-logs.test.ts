/**
 * Issue #11: log lines (the KMS proxy's, the worker's) never overwrite the progress bar, and the
 * proxy's lines name the endpoint it could not reach.
 */
import { describe, it, expect } from 'vitest';
import { PassThrough } from 'node:stream';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProgress } from '../../host/progress.js';
import { startKmsProxy } from '../../host/kms-proxy.js';
import { freeLoopbackPort } from '../../host/sim-stack.js';
import { main } from '../../host/cli/main.js';
import { testIO } from './helpers.js';
import { PCR0_HEX, sealedFiles, startFakeWorker } from './fixtures.js';

/** What a terminal shows for this output: \r goes to column 0, ESC[2K erases the line, \n starts a new one. */
function screen(text: string): string[] {
  const lines: string[] = [''];
  let col = 0;
  for (let i = 0; i < text.length; i++) {
    if (text.startsWith('\x1b[2K', i)) {
      lines[lines.length - 1] = '';
      i += 3;
      continue;
    }
    const c = text[i]!;
    if (c === '\r') col = 0;
    else if (c === '\n') {
      lines.push('');
      col = 0;
    } else {
      const l = lines[lines.length - 1]!;
      lines[lines.length - 1] = l.slice(0, col) + c + l.slice(col + 1);
      col++;
    }
  }
  return lines;
}

function tty() {
  const s = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  s.isTTY = true;
  s.columns = 100;
  let text = '';
  s.on('data', (c) => (text += c));
  return { s, text: () => text };
}

describe('progress bar and log lines', () => {
  it('a log line is printed above the bar, which is drawn again below it', () => {
    let now = 0;
    const { s, text } = tty();
    const p = createProgress({ stream: s, totalBytes: 1000, now: () => now, intervalMs: 0 });
    now = 1000;
    p.update(10, 100);
    p.log('kms-proxy: connection 1 -> 127.0.0.1:4566');
    now = 2000;
    p.update(20, 500);
    p.log('kms-proxy: connection 1 closed (upstream closed)');
    p.done();
    const lines = screen(text());
    expect(lines[0]).toBe('kms-proxy: connection 1 -> 127.0.0.1:4566');
    expect(lines[1]).toBe('kms-proxy: connection 1 closed (upstream closed)');
    expect(lines[2]).toMatch(/^\[#+\.*\]\s+50%\s+20 records/);
    expect(lines[3]).toBe('');
    expect(lines).toHaveLength(4);
  });

  it('before the first draw, after done, and off a terminal, a log line is just a line', () => {
    const { s, text } = tty();
    const p = createProgress({ stream: s, totalBytes: 10, intervalMs: 0 });
    p.log('first');
    p.update(1, 5);
    p.done();
    p.log('after');
    expect(screen(text())).toEqual(['first', expect.stringMatching(/records/), 'after', '']);
    const plain = new PassThrough();
    let out = '';
    plain.on('data', (c) => (out += c));
    const q = createProgress({ stream: plain, totalBytes: 10 });
    q.update(1, 5);
    q.log('a log line');
    q.done();
    expect(out).toBe('a log line\n');
  });

  it('`run` routes the worker and proxy log lines through the bar (stderr on a terminal)', async () => {
    const f = await sealedFiles(400);
    const w = await startFakeWorker(f.dir, 'honest');
    try {
      const t = testIO({ tty: true });
      const code = await main(
        ['run', '--dataset', f.dataset, '--manifest', f.manifest, '--query', f.query, '--enclave', `unix:${w.socket}`, '--expect-pcr', `0=${PCR0_HEX}`, '--sim-state', w.stateDir, '--credentials', 'none', '--batch', '20', '--out', join(f.dir, 'r.json')],
        t,
      );
      expect(code, t.err()).toBe(0);
      const lines = screen(t.err()).filter((l) => l.length > 0);
      const logLine = lines.find((l) => l.startsWith('worker attested'));
      expect(logLine).toMatch(/^worker attested: platform simulator, PCR0 [0-9a-f]{96}$/);
      expect(lines.at(-1)).toMatch(/400 records/);
      expect(t.out()).not.toContain('\x1b');
    } finally {
      await w.close();
      f.cleanup();
    }
  }, 30_000);
});

describe('KMS proxy log lines', () => {
  it('name the endpoint it could not reach', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ek-proxy-'));
    const port = await freeLoopbackPort();
    const logs: string[] = [];
    const proxy = await startKmsProxy({ listen: { kind: 'unix', path: join(dir, 'p.sock') }, target: { host: '127.0.0.1', port }, allow: [{ host: '127.0.0.1', port }], log: (l) => logs.push(l) });
    try {
      const s = connect(join(dir, 'p.sock'));
      await new Promise<void>((resolve) => s.on('close', () => resolve()).on('error', () => undefined));
      await new Promise((r) => setTimeout(r, 50));
      expect(logs.join('\n')).toContain(`kms-proxy: connection 1 closed (cannot reach KMS at 127.0.0.1:${port}: ECONNREFUSED)`);
    } finally {
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
