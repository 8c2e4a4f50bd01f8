/**
 * Finding 3: exact mode fell to one query. The host added 10 fabricated records with no encrypted
 * fields and a clear `slot` field (clear fields were not authenticated), added `slot` to the genuine
 * record, and asked `or(pad, and(slot = i, spend >= m))`: every group became 10 + one bit of the
 * target, always released. Twenty verified results recovered a value exactly.
 *
 * Mechanism: the owner's seal (privacy.md 1). The seal covers the record count and an in-order digest
 * over the canonical records, clear fields and ids included; the worker releases nothing unless what
 * it received matches exactly, and its refusal is one constant code and text.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJob } from '../../host/run.js';
import { expectConstantRefusal, readRecords, setUp, writeRecords, type Fixture } from './helpers.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await setUp(60);
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

const oracle = (threshold: number) => ({
  version: 1,
  filter: {
    op: 'or',
    args: [
      { op: 'eq', field: 'region', value: 'pad' },
      { op: 'and', args: [{ op: 'eq', field: 'region', value: 'target' }, { op: 'gte', field: 'spend', value: threshold }] },
    ],
  },
  aggregates: [{ name: 'n', op: 'count' }],
});

describe('attack 3: fabricated clear-field records pad a group around one genuine record', () => {
  it('the padded dataset is refused with the constant refusal, whatever the target value', async () => {
    const genuine = readRecords(fx.datasetPath);
    const target = { ...genuine[7]!, region: 'target' };
    const pads = Array.from({ length: 10 }, (_, i) => ({ id: `pad${i}`, region: 'pad' }));
    const dataset = writeRecords(fx.stack.dir, 'padded.ndjson', [...pads, target]);
    const outs = [];
    for (const m of [0, 1e9]) outs.push(await runJob(fx.baseRun({ dataset, query: oracle(m) })));
    for (const out of outs) expectConstantRefusal(out);
    // The two branches of the oracle are indistinguishable.
    expect(outs.map((o) => (o.ok ? '' : `${o.error.code}|${o.error.message}|${o.refusal?.doc.reason}`))).toEqual([
      'ERR_JOB_REFUSED|the worker refused the job; nothing was released|refused',
      'ERR_JOB_REFUSED|the worker refused the job; nothing was released|refused',
    ]);
  });

  it('editing one clear field of a genuine record (adding a slot) is refused too', async () => {
    const genuine = readRecords(fx.datasetPath);
    genuine[3] = { ...genuine[3]!, slot: 1 };
    const dataset = writeRecords(fx.stack.dir, 'slotted.ndjson', genuine);
    expectConstantRefusal(await runJob(fx.baseRun({ dataset, query: { version: 1, aggregates: [{ name: 'n', op: 'count' }] } })));
  });

  it('the untouched dataset still answers (the refusals above are the seal, not the query)', async () => {
    const out = await runJob(fx.baseRun({ query: { version: 1, aggregates: [{ name: 'n', op: 'count' }] } }));
    if (!out.ok) throw new Error(out.error.message);
    expect(out.result.groups[0]!.count).toBe(60);
  });
});
