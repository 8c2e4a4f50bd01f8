/**
 * Coverage from V8's precise block coverage (`node:inspector`, Profiler.startPreciseCoverage with
 * `detailed`, binary counts): each take reports what ran since the previous take and resets, so one
 * take after an execution (or a batch of them) says which functions and blocks it reached.
 *
 * V8 leaves out a nested block whose count equals its parent's and merges neighbouring blocks with
 * equal counts, so a block is known by its start offset from the first report that lists a range
 * starting there, and in every report it counts as reached when the innermost listed range that
 * contains that offset has a count above zero (the count at a position does not depend on merging). A "coverage point" is one function or one such block of
 * an included script: the project's own sources (attestation/, enclave/, host/), plus the decoders
 * they hand bytes to (cbor-x, @peculiar/asn1-*), which guide the search but are reported apart.
 */
import { Session } from 'node:inspector';

interface Range {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface FunctionCoverage {
  functionName: string;
  ranges: Range[];
  isBlockCoverage: boolean;
}
interface ScriptCoverage {
  scriptId: string;
  url: string;
  functions: FunctionCoverage[];
}

interface Block {
  /** Start offset of the block. */
  s: number;
  id: number;
}
interface FnRec {
  id: number;
  project: boolean;
  blocks: Block[];
  known: Set<number>;
  /** Features of this function not reached yet; 0 means nothing new can come from it. */
  open: number;
}

export type ScriptKind = 'project' | 'lib' | undefined;

export class CoverageTracker {
  readonly #session = new Session();
  readonly #scripts = new Map<string, { project: boolean; url: string; fns: Map<number, FnRec> } | null>();
  #covered = new Uint8Array(1 << 16);
  #project = new Uint8Array(1 << 16);
  #next = 0;
  projectPoints = 0;
  libPoints = 0;
  /** Points known (reached or not) in project scripts. */
  projectKnown = 0;

  constructor(readonly classify: (url: string) => ScriptKind) {
    this.#session.connect();
    this.#post('Profiler.enable');
    // Call counts per block since the last take (finer than binary coverage: V8 merges fewer ranges).
    this.#post('Profiler.startPreciseCoverage', { callCount: true, detailed: true, allowTriggeredUpdates: false });
  }

  #post(method: string, params: object = {}): unknown {
    let result: unknown;
    let error: Error | null = null;
    let done = false;
    this.#session.post(method, params, (err, res) => {
      error = err;
      result = res;
      done = true;
    });
    // In-thread inspector sessions answer synchronously.
    if (!done) throw new Error(`inspector ${method} did not answer synchronously`);
    if (error) throw error;
    return result;
  }

  /** Takes so far, and the milliseconds they cost. */
  takes = 0;
  takeMs = 0;

  /** Counts since the previous take (and resets them). */
  take(): ScriptCoverage[] {
    const t = performance.now();
    const r = (this.#post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] }).result;
    this.takes++;
    this.takeMs += performance.now() - t;
    return r;
  }

  close(): void {
    try {
      this.#post('Profiler.stopPreciseCoverage');
      this.#post('Profiler.disable');
    } finally {
      this.#session.disconnect();
    }
  }

  #id(project: boolean): number {
    const id = this.#next++;
    if (id >= this.#covered.length) {
      const c = new Uint8Array(this.#covered.length * 2);
      c.set(this.#covered);
      this.#covered = c;
      const p = new Uint8Array(this.#project.length * 2);
      p.set(this.#project);
      this.#project = p;
    }
    this.#project[id] = project ? 1 : 0;
    if (project) this.projectKnown++;
    return id;
  }

  /** The points a report reached that no committed input reached before. */
  novel(report: ScriptCoverage[]): number[] {
    const out: number[] = [];
    for (const sc of report) {
      let script = this.#scripts.get(sc.scriptId);
      if (script === undefined) {
        const kind = this.classify(sc.url);
        script = kind === undefined ? null : { project: kind === 'project', url: sc.url, fns: new Map() };
        this.#scripts.set(sc.scriptId, script);
      }
      if (script === null) continue;
      const { project, fns } = script;
      for (const f of sc.functions) {
        const ranges = f.ranges;
        const top = ranges[0];
        if (top === undefined || top.count === 0) continue;
        let rec = fns.get(top.startOffset);
        if (rec === undefined) {
          rec = { id: this.#id(project), project, blocks: [], known: new Set(), open: 1 };
          fns.set(top.startOffset, rec);
        }
        let added = false;
        for (let i = 1; i < ranges.length; i++) {
          const r = ranges[i]!;
          if (r.startOffset === top.startOffset || rec.known.has(r.startOffset)) continue;
          rec.known.add(r.startOffset);
          rec.blocks.push({ s: r.startOffset, id: this.#id(project) });
          rec.open++;
          added = true;
        }
        if (rec.open === 0 && !added) continue;
        if (!this.#covered[rec.id]) out.push(rec.id);
        for (const blk of rec.blocks) {
          if (this.#covered[blk.id]) continue;
          let count = 0;
          for (let j = ranges.length - 1; j >= 0; j--) {
            const r = ranges[j]!;
            if (r.startOffset <= blk.s && blk.s < r.endOffset) {
              count = r.count;
              break;
            }
          }
          if (count > 0) out.push(blk.id);
        }
      }
    }
    return out;
  }

  /**
   * The project's points that were seen but never reached: file, line and the start of the code
   * there (of the code V8 ran, i.e. after TypeScript was stripped), for looking at what a target misses.
   */
  unreached(): { url: string; line: number; code: string }[] {
    const out: { url: string; line: number; code: string }[] = [];
    this.#post('Debugger.enable');
    try {
      for (const [scriptId, script] of this.#scripts) {
        if (script === null || !script.project) continue;
        const missing = [...script.fns.entries()].flatMap(([start, rec]) => [
          ...(this.#covered[rec.id] ? [] : [start]),
          ...rec.blocks.filter((b) => !this.#covered[b.id]).map((b) => b.s),
        ]);
        if (missing.length === 0) continue;
        const source = (this.#post('Debugger.getScriptSource', { scriptId }) as { scriptSource: string }).scriptSource;
        const toOriginal = sourceMapLines(source);
        const lineStarts = [0];
        for (let i = source.indexOf('\n'); i >= 0; i = source.indexOf('\n', i + 1)) lineStarts.push(i + 1);
        for (const off of missing.sort((a, b) => a - b)) {
          let gl = 0;
          while (gl + 1 < lineStarts.length && lineStarts[gl + 1]! <= off) gl++;
          const line = toOriginal(gl, off - lineStarts[gl]!) ?? gl + 1;
          out.push({ url: script.url, line, code: source.slice(off, off + 100).split('\n').slice(0, 2).join(' ').trim() });
        }
      }
    } finally {
      this.#post('Debugger.disable');
    }
    return out;
  }

  /** Mark points reached for good. */
  commit(ids: readonly number[]): void {
    for (const id of ids) {
      if (this.#covered[id]) continue;
      this.#covered[id] = 1;
      if (this.#project[id]) this.projectPoints++;
      else this.libPoints++;
    }
    // Recount open points per function lazily: cheap enough at commit time, which is rare.
    for (const script of this.#scripts.values()) {
      if (script === null) continue;
      for (const rec of script.fns.values()) {
        if (rec.open === 0) continue;
        let open = this.#covered[rec.id] ? 0 : 1;
        for (const b of rec.blocks) if (!this.#covered[b.id]) open++;
        rec.open = open;
      }
    }
  }
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/**
 * (generated line, column) -> original 1-based line, from the inline source map tsx appends to the
 * code it runs; undefined without one.
 */
function sourceMapLines(source: string): (line: number, col: number) => number | undefined {
  const m = /\/\/# sourceMappingURL=data:application\/json;(?:charset=utf-8;)?base64,([A-Za-z0-9+/=]+)\s*$/.exec(source);
  if (!m) return () => undefined;
  let mappings: string;
  try {
    mappings = (JSON.parse(Buffer.from(m[1]!, 'base64').toString('utf8')) as { mappings: string }).mappings;
  } catch {
    return () => undefined;
  }
  // Per generated line: [column, original line] pairs in column order.
  const lines: [number, number][][] = [];
  let srcLine = 0;
  for (const lineText of mappings.split(';')) {
    const segs: [number, number][] = [];
    let col = 0;
    for (const seg of lineText.split(',')) {
      if (seg === '') continue;
      const fields: number[] = [];
      let v = 0;
      let shift = 0;
      for (const ch of seg) {
        const d = B64.indexOf(ch);
        v += (d & 31) << shift;
        if (d & 32) shift += 5;
        else {
          fields.push(v & 1 ? -(v >>> 1) : v >>> 1);
          v = 0;
          shift = 0;
        }
      }
      col += fields[0] ?? 0;
      if (fields.length >= 4) {
        srcLine += fields[2]!;
        segs.push([col, srcLine]);
      }
    }
    lines.push(segs);
  }
  return (line, col) => {
    const segs = lines[line];
    if (!segs || segs.length === 0) return undefined;
    let best: number | undefined;
    for (const [c, l] of segs) {
      if (c > col) break;
      best = l;
    }
    return best === undefined ? undefined : best + 1;
  };
}
