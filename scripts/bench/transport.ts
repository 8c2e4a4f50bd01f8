/**
 * Bulk throughput of the addon's AF_UNIX streams against Node's own `net` on the same socket path in
 * the same run (1 MiB writes, 1 GiB per round, rounds alternate), plus the round-trip time of a small
 * message over the addon. Client and server share this process, for both contenders alike.
 */
import * as net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { SocketApi } from '../../native/socket.js';
import { requireBinding } from '../../native/binding.js';
import { fmt, median } from './_stats.js';

const CHUNK = 1024 * 1024;
const TOTAL = Number(process.env.BENCH_TRANSPORT_BYTES ?? 1024 * 1024 * 1024);
const ROUNDS = Number(process.env.BENCH_TRANSPORT_ROUNDS ?? 5);
const RTT_N = 5000;

interface Contender {
  name: string;
  listen(path: string, onConn: (s: Duplex) => void): Promise<() => Promise<void>>;
  connect(path: string): Promise<Duplex>;
}

function netContender(): Contender {
  return {
    name: 'net',
    listen: (path, onConn) =>
      new Promise((resolve) => {
        const srv = net.createServer(onConn);
        srv.listen(path, () => resolve(() => new Promise((r) => srv.close(() => r()))));
      }),
    connect: (path) =>
      new Promise((resolve, reject) => {
        const c = net.connect(path, () => resolve(c));
        c.once('error', reject);
      }),
  };
}

function addonContender(api: SocketApi): Contender {
  return {
    name: 'addon',
    listen: (path, onConn) => {
      const srv = api.listenUnix(path);
      srv.on('connection', onConn);
      return Promise.resolve(() => {
        srv.close();
        return Promise.resolve();
      });
    },
    connect: (path) => api.connectUnix(path),
  };
}

async function bulk(c: Contender, path: string): Promise<number> {
  let done!: (t: bigint) => void;
  const finished = new Promise<bigint>((r) => (done = r));
  const close = await c.listen(path, (s) => {
    let got = 0;
    s.on('data', (b: Buffer) => {
      got += b.length;
      if (got >= TOTAL) done(process.hrtime.bigint());
    });
    s.on('error', () => undefined);
  });
  const cl = await c.connect(path);
  const chunk = Buffer.alloc(CHUNK, 0x5a);
  const t0 = process.hrtime.bigint();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const pump = () => {
      while (sent < TOTAL) {
        sent += CHUNK;
        if (!cl.write(chunk)) {
          cl.once('drain', pump);
          return;
        }
      }
      resolve();
    };
    pump();
  });
  const t1 = await finished;
  cl.destroy();
  await close();
  return TOTAL / (Number(t1 - t0) / 1e9) / 1e6;
}

async function rtt(c: Contender, path: string): Promise<number> {
  const close = await c.listen(path, (s) => {
    s.on('data', (b: Buffer) => s.write(b));
  });
  const cl = await c.connect(path);
  const msg = Buffer.alloc(64, 1);
  const times: number[] = [];
  for (let i = 0; i < RTT_N; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      let got = 0;
      const on = (b: Buffer) => {
        got += b.length;
        if (got >= msg.length) {
          cl.off('data', on);
          resolve();
        }
      };
      cl.on('data', on);
      cl.write(msg);
    });
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  cl.destroy();
  await close();
  return median(times);
}

export async function main(): Promise<void> {
  const api = new SocketApi(requireBinding('the transport benchmark'));
  const dir = mkdtempSync(join(tmpdir(), 'ek-bench-'));
  const path = join(dir, 'bench.sock');
  const contenders = [netContender(), addonContender(api)];
  const res: Record<string, number[]> = { net: [], addon: [] };
  try {
    // warm-up
    for (const c of contenders) await rtt(c, path);
    for (let r = 0; r < ROUNDS; r++) {
      for (const c of r % 2 ? [...contenders].reverse() : contenders) {
        const mbs = await bulk(c, path);
        res[c.name]!.push(mbs);
        console.log(`round ${r + 1} ${c.name.padEnd(5)} ${fmt(mbs, 0)} MB/s (${TOTAL / CHUNK} x 1 MiB writes)`);
      }
    }
    const netRtt = await rtt(contenders[0]!, path);
    const addonRtt = await rtt(contenders[1]!, path);
    console.log(`rtt (64 B ping-pong, median of ${RTT_N}): addon ${fmt(addonRtt, 1)} us, net ${fmt(netRtt, 1)} us`);
    const a = median(res.addon!);
    const n = median(res.net!);
    console.log(`median over ${ROUNDS} rounds: addon ${fmt(a, 0)} MB/s, net ${fmt(n, 0)} MB/s`);
    console.log(`RESULT transport addon_mb_s=${fmt(a, 0)} net_mb_s=${fmt(n, 0)} ratio=${fmt(a / n, 2)} rtt_us=${fmt(addonRtt, 1)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
