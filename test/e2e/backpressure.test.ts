/**
 * The worker reads a frame only after it has processed the previous one. While it waits for KMS (here
 * a relay that holds every KMS connection for 2 s), the host must be held back by the socket and not
 * have pushed the dataset into buffers.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { statSync } from 'node:fs';
import { once } from 'node:events';
import { runJob } from '../../host/run.js';
import { connectEnclave } from '../../host/enclave-conn.js';
import { setUp, IMAGE_A, type Fixture } from './helpers.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await setUp(6000);
}, 90_000);
afterAll(async () => {
  await fx?.stack.close();
});

describe('backpressure', () => {
  it('a stalled worker holds the host back', async () => {
    const socks = new Set<Socket>();
    const slowKms: Server = createServer((down) => {
      socks.add(down);
      down.pause();
      setTimeout(() => {
        const up = createConnection({ host: '127.0.0.1', port: fx.stack.kmsPort });
        socks.add(up);
        down.pipe(up).pipe(down);
        down.resume();
        up.on('error', () => down.destroy());
        down.on('error', () => up.destroy());
      }, 2000);
    });
    slowKms.listen(0, '127.0.0.1');
    await once(slowKms, 'listening');
    const port = (slowKms.address() as { port: number }).port;
    try {
      const w = await fx.stack.startWorker({ imageId: IMAGE_A, name: 'stalled', kms: `tcp:127.0.0.1:${port}` });
      let sent = 0;
      let jobStartedAt = 0;
      let sentAfter1500 = -1;
      const out = await runJob(
        fx.baseRun({
          connect: () => connectEnclave({ kind: 'unix', path: w.socketPath }),
          batchSize: 100,
          tap: (dir, bytes) => {
            if (dir !== 'out') return;
            sent += bytes.length;
            if (jobStartedAt === 0 && sent > 0 && bytes.length > 200) {
              jobStartedAt = Date.now();
              setTimeout(() => (sentAfter1500 = sent), 1500);
            }
          },
        }),
      );
      if (!out.ok) throw new Error(out.error.message);
      const total = statSync(fx.datasetPath).size;
      expect(sentAfter1500).toBeGreaterThan(0);
      // Kernel socket buffers and one frame in flight, not the dataset.
      expect(sentAfter1500).toBeLessThan(total / 3);
      expect(sent).toBeGreaterThan(total * 0.9);
    } finally {
      for (const s of socks) s.destroy();
      slowKms.close();
    }
  }, 60_000);
});
