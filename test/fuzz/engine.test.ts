/**
 * The fuzzer itself: structure-aware mutation keeps nested lengths consistent, the JSON mutator
 * prints JSON, findings are classified as the project's contract says, and a run over planted bugs
 * finds, saves and replays an exception, a hang, unbounded memory and a masked bug.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ToolkitError } from '../../attestation/errors.js';
import { checkCbor, parseNitroDocument } from '../../attestation/nitro/parse.js';
import { parseCertificate } from '../../attestation/x509/cert.js';
import { classify } from '../../scripts/fuzz/classify.js';
import { mutateJson } from '../../scripts/fuzz/json.js';
import { mutate } from '../../scripts/fuzz/mutate.js';
import { Rng } from '../../scripts/fuzz/rng.js';
import { spliceFix, walk } from '../../scripts/fuzz/structure.js';
import { FuzzInvariantError } from '../../scripts/fuzz/types.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const doc = new Uint8Array(readFileSync(join(ROOT, 'test/vectors/nitro/blocky-1.cose')));

describe('structure-aware mutation', () => {
  it('walks a Nitro document down into the DER of its certificates', () => {
    const nodes = walk(doc, 'cbor');
    expect(nodes.some((n) => n.kind === 'cbor' && n.major === 4)).toBe(true);
    // certificate and cabundle entries are byte strings holding DER
    expect(nodes.filter((n) => n.kind === 'der' && n.parent?.kind === 'cbor' && n.parent.major === 2).length).toBeGreaterThanOrEqual(4);
  });

  it('an edit deep inside a certificate rewrites every enclosing length', () => {
    const p0 = parseNitroDocument(doc);
    // A PrintableString/UTF8String of a certificate's Name, found inside the document.
    const nodes = walk(doc, 'cbor');
    const target = nodes.find((n) => n.kind === 'der' && (n.major === 0x13 || n.major === 0x0c) && n.end - n.start - n.headLen > 8)!;
    expect(target).toBeDefined();
    const content = doc.subarray(target.start + target.headLen, target.end);
    const longer = new Uint8Array(content.length + 130).fill(0x41);
    const out = spliceFix(doc, target.start + target.headLen, target.end, longer, target);
    expect(out.length).toBeGreaterThan(doc.length + 130);
    expect(() => checkCbor(out)).not.toThrow();
    const p = parseNitroDocument(out);
    const before = [p0.certificate, ...p0.cabundle];
    const after = [p.certificate, ...p.cabundle];
    const i = after.findIndex((c, k) => !equal(c, before[k]!));
    expect(i).toBeGreaterThanOrEqual(0);
    expect(after[i]!.length).toBeGreaterThanOrEqual(before[i]!.length + 130);
    // The certificate that holds the edit is still one well-formed DER structure, with the new name.
    const facts = parseCertificate(after[i]!);
    expect(facts.subject + facts.issuer).toContain('A'.repeat(130));
  });

  it('mutants stay within maxLen and differ from their parent', () => {
    const rng = new Rng(5);
    let same = 0;
    for (let i = 0; i < 300; i++) {
      const m = mutate(rng, doc, { format: 'cbor', maxLen: 8000, donors: [doc], dict: [new TextEncoder().encode('nonce')], dictText: ['nonce'] });
      expect(m.length).toBeLessThanOrEqual(8000);
      if (equal(m, doc)) same++;
    }
    expect(same).toBeLessThan(15);
  });

  it('the JSON mutator prints JSON', () => {
    const rng = new Rng(9);
    let text = JSON.stringify({ version: 1, aggregates: [{ name: 'n', op: 'count' }], groupBy: ['a'], privacy: { dp: { epsilon: 1 } } });
    for (let i = 0; i < 400; i++) {
      const next = mutateJson(rng, text, [text], ['field', 'op']);
      expect(next).toBeDefined();
      expect(() => JSON.parse(next!)).not.toThrow();
      if (next!.length < 20_000) text = next!;
    }
  });
});

describe('classification', () => {
  const at = (file: string) => `    at fn (${file}:10:5)`;
  const err = (name: string, file: string, message = "Cannot read properties of undefined (reading 'x')") => {
    const e = new Error(message);
    e.name = name;
    e.stack = `${name}: ${message}\n${at(file)}\n${at(join(ROOT, 'scripts/fuzz/worker.ts'))}`;
    return e;
  };
  it('a project error is a refusal; anything else escaping is a finding', () => {
    expect(classify(new ToolkitError('ERR_PROTOCOL', 'x'), {})).toBeUndefined();
    expect(classify(new TypeError('x'), {})?.kind).toBe('exception');
    expect(classify(new RangeError('Invalid typed array length'), {})?.kind).toBe('exception');
    expect(classify('a string', {})?.kind).toBe('exception');
    expect(classify(new FuzzInvariantError('x'), {})?.kind).toBe('invariant');
  });
  it('a bug of ours wrapped in a project error is still a finding; a wrapped library error is not', () => {
    const ours = err('TypeError', join(ROOT, 'enclave/protocol/field.ts'));
    expect(classify(new ToolkitError('ERR_PROTOCOL', 'x', { cause: ours }), {})?.kind).toBe('masked');
    const lib = err('TypeError', join(ROOT, 'node_modules/cbor-x/decode.js'));
    expect(classify(new ToolkitError('ERR_PROTOCOL', 'x', { cause: lib }), {})).toBeUndefined();
    let json: unknown;
    try {
      JSON.parse('{');
    } catch (e) {
      json = e;
    }
    expect(classify(new ToolkitError('ERR_MANIFEST_INVALID', 'x', { cause: json }), {})).toBeUndefined();
    // A TypeError the project throws on purpose (encodeCanonical's "outside the model"), turned into a refusal.
    const deliberate = err('TypeError', join(ROOT, 'enclave/protocol/cbor.ts'), 'canonical CBOR: unsupported undefined at $');
    expect(classify(new ToolkitError('ERR_RESULT_INVALID', 'x', { cause: deliberate }), {})).toBeUndefined();
    const overflow = new RangeError('Maximum call stack size exceeded');
    expect(classify(new ToolkitError('ERR_PROTOCOL', 'x', { cause: overflow }), {})?.kind).toBe('masked');
  });
  it('a documented non-project error type is allowed only for targets that declare it', () => {
    class CertParseError extends Error {}
    expect(classify(new CertParseError('bad'), {})?.kind).toBe('exception');
    expect(classify(new CertParseError('bad'), { allowed: (e) => e instanceof CertParseError })).toBeUndefined();
    expect(classify(new CertParseError("DER: Cannot read properties of undefined (reading 'x')"), { allowed: (e) => e instanceof CertParseError })?.kind).toBe('masked');
  });
});

describe('a run over planted bugs', () => {
  it('finds, saves and replays an exception, a hang, unbounded memory and a masked bug', () => {
    const dir = mkdtempSync(join(tmpdir(), 'enclavekit-fuzz-engine-'));
    try {
      const planted = join(ROOT, 'test/fuzz/fixtures/planted-target.ts');
      const run = spawnSync(
        process.execPath,
        ['--import', 'tsx', 'scripts/fuzz.ts', planted, '--seconds', '8', '--seed', '3', '--timeout-ms', '400', '--max-heap-mb', '96', '--max-restarts', '30', '--findings', dir, '--json', join(dir, 'out.json'), '--quiet'],
        { cwd: ROOT, encoding: 'utf8', timeout: 90_000 },
      );
      expect(run.status, run.stderr).toBe(1);
      const out = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as { findings: { kind: string; file: string }[]; targets: { execs: number; coverage: number }[] };
      const kinds = new Set(out.findings.map((f) => f.kind));
      for (const k of ['exception', 'hang', 'memory', 'masked']) expect(kinds, `kinds found: ${[...kinds].join(', ')}`).toContain(k);
      expect(out.targets[0]!.execs).toBeGreaterThan(100);
      expect(out.targets[0]!.coverage).toBeGreaterThan(5);
      expect(run.stdout).toMatch(/^RESULT fuzz target=planted execs=\d+ execs_per_s=\d+ coverage=\d+ findings=[1-9]/m);

      const exception = out.findings.find((f) => f.kind === 'exception')!;
      const replay = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/fuzz.ts', planted, '--replay', exception.file, '--timeout-ms', '400'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
      expect(replay.status).toBe(1);
      expect(replay.stdout).toMatch(/FINDING \(exception\)/);
      const hang = out.findings.find((f) => f.kind === 'hang')!;
      const replayHang = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/fuzz.ts', planted, '--replay', hang.file, '--timeout-ms', '400'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
      expect(replayHang.status).toBe(1);
      expect(replayHang.stdout).toMatch(/hang/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
