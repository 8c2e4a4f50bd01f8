/**
 * What crosses the host <-> worker channel: an interposed Unix-socket relay records every byte in
 * both directions (and can slow them down), while the host's logs and output are captured too. None
 * of the plaintext field values may appear in any of it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { main } from '../../host/cli/main.js';
import type { CliIO } from '../../host/cli/io.js';
import { runJob } from '../../host/run.js';
import { connectEnclave } from '../../host/enclave-conn.js';
import { makeRecords, QUERY, SECRET_WORDS, setUp, type Fixture } from './helpers.js';

let fx: Fixture;
let roleEnv: NodeJS.ProcessEnv = {};
beforeAll(async () => {
  fx = await setUp(150);
  const role = await fx.stack.credentials('role');
  roleEnv = { AWS_ACCESS_KEY_ID: role.accessKeyId, AWS_SECRET_ACCESS_KEY: role.secretAccessKey, AWS_SESSION_TOKEN: role.sessionToken };
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

interface Relay {
  path: string;
  captured: { toWorker: Buffer[]; toHost: Buffer[] };
  close(): Promise<void>;
}

/** A relay in front of the worker's socket; `slow` delivers bytes in small, delayed pieces. */
async function relay(target: string, slow = false): Promise<Relay> {
  const path = join(fx.stack.dir, `relay-${Math.random().toString(36).slice(2)}.sock`);
  const captured = { toWorker: [] as Buffer[], toHost: [] as Buffer[] };
  const socks = new Set<Socket>();
  const pump = (from: Socket, to: Socket, log: Buffer[]) => {
    from.on('data', (c: Buffer) => {
      log.push(Buffer.from(c));
      if (!slow) {
        if (!to.write(c)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
        return;
      }
      // A slow peer: 1 KiB pieces with a pause between them, reading paused meanwhile.
      from.pause();
      let off = 0;
      const step = (): void => {
        if (off >= c.length || to.destroyed) {
          from.resume();
          return;
        }
        to.write(c.subarray(off, off + 1024));
        off += 1024;
        setTimeout(step, 1);
      };
      step();
    });
    from.on('end', () => to.end());
    from.on('error', () => to.destroy());
  };
  const server: Server = createServer({ allowHalfOpen: true }, (down) => {
    const up = createConnection({ path: target, allowHalfOpen: true });
    socks.add(down).add(up);
    up.on('error', () => down.destroy());
    pump(down, up, captured.toWorker);
    pump(up, down, captured.toHost);
  });
  server.listen(path);
  await once(server, 'listening');
  return {
    path,
    captured,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

function cliIo(): CliIO & { text: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let all = '';
  stdout.on('data', (c) => (all += c));
  stderr.on('data', (c) => (all += c));
  // The parent role's session, as `enclavekit run` takes it from the environment (issue #10).
  return { stdout, stderr, stdin: new PassThrough(), env: roleEnv, now: () => new Date(), text: () => all };
}

describe('the host-worker channel', () => {
  it('carries none of the plaintext field values; neither do the host logs, output or result file', async () => {
    const r = await relay(fx.worker.socketPath);
    try {
      const d = fx.stack.dir;
      writeFileSync(join(d, 'm.json'), JSON.stringify(fx.manifest));
      writeFileSync(join(d, 'q.json'), JSON.stringify({ ...QUERY, aggregates: [...QUERY.aggregates, { name: 'terms', op: 'topTerms', field: 'complaint', k: 5 }] }));
      const io = cliIo();
      const code = await main(
        ['run', '--dataset', fx.datasetPath, '--manifest', join(d, 'm.json'), '--query', join(d, 'q.json'), '--enclave', `unix:${r.path}`,
          '--expect-pcr', `0=${Buffer.from(fx.worker.pcr0).toString('hex')}`, '--sim-state', join(d, 'state'), '--out', join(d, 'cap.json'), '--audit', join(d, 'cap.log')],
        io,
      );
      expect(code).toBe(0);
      const wire = Buffer.concat([...r.captured.toWorker, ...r.captured.toHost]);
      expect(r.captured.toWorker.length).toBeGreaterThan(0);
      expect(r.captured.toHost.length).toBeGreaterThan(0);
      const haystacks = [
        wire.toString('latin1'),
        wire.toString('utf8'),
        io.text(),
        readFileSync(join(d, 'cap.json'), 'utf8'),
        readFileSync(join(d, 'cap.log'), 'utf8'),
        fx.logs.join('\n'),
      ];
      const needles = new Set<string>();
      for (const rec of makeRecords(150)) {
        needles.add(rec.email as string);
        needles.add(rec.complaint as string);
      }
      // The unusual words inside the complaints: any fragment of plaintext would show them.
      for (const w of SECRET_WORDS) needles.add(w);
      needles.add('secret-mail');
      for (const h of haystacks) for (const n of needles) expect(h.includes(n), `found ${n}`).toBe(false);
      // And the record ids (not secret) do travel, so the capture is real.
      expect(wire.toString('latin1')).toContain('r149');
    } finally {
      await r.close();
    }
  });

  it('a slow relay (small, delayed pieces) still completes the job', async () => {
    const r = await relay(fx.worker.socketPath, true);
    try {
      const out = await runJob(fx.baseRun({ connect: () => connectEnclave({ kind: 'unix', path: r.path }) }));
      if (!out.ok) throw new Error(out.error.message);
      expect(out.result.counts.records).toBe(150);
    } finally {
      await r.close();
    }
  });
});
