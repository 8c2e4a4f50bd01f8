/**
 * A seeded, deterministic generator of the demo dataset: customers with PII (name, email, phone,
 * address), a region, purchase orders with amounts, and a complaint text with a mix of sentiment.
 * The same seed and count always give the same bytes. Nothing here is real data.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';

/** xorshift128 over four 32-bit words, seeded through a splitmix-style mixer. Not for secrets. */
export class SeededRandom {
  #s = new Uint32Array(4);
  constructor(seed: number) {
    let z = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      z = (z + 0x9e3779b9) >>> 0;
      let t = z;
      t = Math.imul(t ^ (t >>> 16), 0x85ebca6b);
      t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35);
      this.#s[i] = (t ^ (t >>> 16)) >>> 0;
    }
    if (this.#s.every((x) => x === 0)) this.#s[0] = 1;
  }
  nextU32(): number {
    const s = this.#s;
    let t = s[3]!;
    const x = s[0]!;
    s[3] = s[2]!;
    s[2] = s[1]!;
    s[1] = x;
    t ^= t << 11;
    t ^= t >>> 8;
    s[0] = (t ^ x ^ (x >>> 19)) >>> 0;
    return s[0]!;
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 0x100000000;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
}

const FIRST = ['Ada', 'Ben', 'Chloe', 'Dan', 'Eva', 'Finn', 'Grace', 'Hugo', 'Iris', 'Jon', 'Kara', 'Liam', 'Mia', 'Noah', 'Olga', 'Paul', 'Quinn', 'Rosa', 'Sam', 'Tara', 'Uma', 'Vik', 'Wren', 'Yara', 'Zoe'];
const LAST = ['Abbott', 'Baker', 'Costa', 'Dubois', 'Evans', 'Fischer', 'Garcia', 'Horvat', 'Ito', 'Jensen', 'Kowalski', 'Larsen', 'Moreau', 'Novak', 'Okafor', 'Petrov', 'Rossi', 'Silva', 'Tanaka', 'Varga', 'Weber', 'Young'];
const STREETS = ['Oak Street', 'Harbour Road', 'Mill Lane', 'Station Avenue', 'Church Way', 'Park Drive', 'High Street', 'Elm Close'];
const CITIES: Record<string, string[]> = {
  'eu-west': ['Dublin', 'Lisbon', 'Nantes', 'Bristol'],
  'eu-central': ['Berlin', 'Vienna', 'Prague', 'Zurich'],
  'us-east': ['Boston', 'Atlanta', 'Richmond', 'Newark'],
  'us-west': ['Portland', 'Oakland', 'Boise', 'Fresno'],
  'ap-south': ['Pune', 'Colombo', 'Chennai', 'Kochi'],
  'ap-east': ['Osaka', 'Busan', 'Taipei', 'Sapporo'],
};
export const REGIONS = Object.keys(CITIES);
const PRODUCTS = ['kettle', 'blender', 'headphones', 'router', 'monitor', 'keyboard', 'lamp', 'backpack', 'charger', 'camera'];

const POSITIVE = [
  'Delivery was fast and the {p} works great, thanks!',
  'Excellent service, the support team was friendly and helpful.',
  'Really happy with my {p}, would recommend.',
  'Quick refund and a polite agent, very pleased.',
];
const NEGATIVE = [
  'The {p} arrived broken and support was rude.',
  'Delivery was late again, terrible experience, I want a refund.',
  'My {p} is defective and the replacement never arrived.',
  'Overcharged for a faulty {p}, this is unacceptable.',
  'Package lost, waiting three weeks, awful and frustrating.',
];
const NEUTRAL = [
  'Please update the billing address on my account.',
  'Can I change the colour of the {p} in my order?',
  'The {p} is okay but the manual is confusing.',
  'Question about the warranty for my {p}.',
];

export interface SyntheticOptions {
  count?: number;
  seed?: number;
}

export interface SyntheticCustomer {
  id: string;
  name: string;
  email: string;
  phone: string;
  address: { street: string; city: string; postcode: string };
  region: string;
  orders: { count: number; total: number; last: { product: string; amount: number } };
  complaint: string;
}

/** The customers, one at a time. Default count 100 000, seed 1. */
export function* syntheticCustomers(opts: SyntheticOptions = {}): Generator<SyntheticCustomer> {
  const count = opts.count ?? 100_000;
  const rnd = new SeededRandom(opts.seed ?? 1);
  // Region sizes are deliberately uneven so that a small region exists to exercise suppression.
  const weights = [0.3, 0.25, 0.2, 0.15, 0.09995, 0.00005];
  for (let i = 0; i < count; i++) {
    const first = rnd.pick(FIRST);
    const last = rnd.pick(LAST);
    let u = rnd.next();
    let r = 0;
    while (r < weights.length - 1 && u >= weights[r]!) u -= weights[r++]!;
    const region = REGIONS[r]!;
    const n = rnd.int(1, 12);
    let total = 0;
    let lastAmount = 0;
    for (let k = 0; k < n; k++) {
      lastAmount = Math.round((5 + rnd.next() * rnd.next() * 495) * 100) / 100;
      total += lastAmount;
    }
    const product = rnd.pick(PRODUCTS);
    const mood = rnd.next();
    const tpl = mood < 0.45 ? rnd.pick(NEGATIVE) : mood < 0.75 ? rnd.pick(NEUTRAL) : rnd.pick(POSITIVE);
    yield {
      id: `c${String(i + 1).padStart(7, '0')}`,
      name: `${first} ${last}`,
      email: `${first}.${last}${rnd.int(1, 999)}@example.com`.toLowerCase(),
      phone: `+1-555-${String(rnd.int(0, 9999999)).padStart(7, '0')}`,
      address: { street: `${rnd.int(1, 250)} ${rnd.pick(STREETS)}`, city: rnd.pick(CITIES[region]!), postcode: String(rnd.int(10000, 99999)) },
      region,
      orders: { count: n, total: Math.round(total * 100) / 100, last: { product, amount: lastAmount } },
      complaint: tpl.replace('{p}', product),
    };
  }
}

/** Write the dataset as NDJSON with backpressure; resolves when flushed. */
export async function writeSyntheticDataset(output: Writable | string, opts: SyntheticOptions = {}): Promise<{ records: number }> {
  const out = typeof output === 'string' ? createWriteStream(output) : output;
  let n = 0;
  let buf: string[] = [];
  const flush = async (): Promise<void> => {
    if (buf.length === 0) return;
    const ok = out.write(buf.join(''));
    buf = [];
    // events.once also rejects on 'error' and removes both listeners either way
    if (!ok) await once(out, 'drain');
  };
  for (const c of syntheticCustomers(opts)) {
    buf.push(JSON.stringify(c) + '\n');
    n++;
    if (buf.length >= 1000) await flush();
  }
  await flush();
  if (typeof output === 'string') await new Promise<void>((resolve, reject) => { out.once('error', reject); out.end(() => resolve()); });
  return { records: n };
}
