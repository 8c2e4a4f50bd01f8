import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { runJob } from '../../host/run.js';
import { setUp, type Fixture } from './helpers.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await setUp(200);
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

describe('pipeline in simulator mode', () => {
  it('runs a job end to end and verifies the attested result', async () => {
    const out = await runJob(fx.baseRun());
    if (!out.ok) throw new Error(`${out.error.code}: ${out.error.message} \n${fx.logs.join('\n')}`);
    expect(out.result.platform).toBe('simulator');
    expect(out.result.counts.records).toBe(200);
    expect(out.result.groups).toHaveLength(4);
    const north = out.result.groups.find((g) => g.key[0] === 'north')!;
    expect(north.count).toBe(50);
    expect(out.verification.pcrs['0']).toBe(Buffer.from(fx.worker.pcr0).toString('hex'));
  });
});
