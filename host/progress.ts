/**
 * A one-line progress bar for `enclavekit run` and `enclavekit encrypt` on a terminal: records, MB/s,
 * ETA from the bytes read out of the dataset file. It draws nothing when the stream is not a TTY, so
 * piped output and CI logs stay clean (and carry no carriage-return noise).
 *
 * Log lines that share the stream (the KMS proxy's, the worker's) go through `log()`: the bar is
 * erased, the line printed, and the bar drawn again below it, so a log line never overwrites the bar
 * and the bar never swallows a log line.
 */

export interface Progress {
  /** Cumulative records sent and dataset bytes consumed so far. */
  update(records: number, bytes: number): void;
  /** Final redraw and newline (TTY only). */
  done(): void;
}

/** A progress bar that also carries the log lines written to its stream. */
export interface TerminalProgress extends Progress {
  /** One log line (without its newline), printed above the bar. */
  log(line: string): void;
}

export interface ProgressOptions {
  stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** The dataset size in bytes, for the bar and the ETA; unknown -> no ETA. */
  totalBytes?: number;
  /** Monotonic milliseconds (injectable for tests). */
  now?: () => number;
  /** Minimum time between redraws (default 100 ms). */
  intervalMs?: number;
  /** Draw even if the stream is not a TTY (tests). */
  force?: boolean;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${String(m).padStart(2, '0')}:${ss}`;
}

/** The text of one progress line (no control characters), exported for tests. */
export function renderProgress(records: number, bytes: number, elapsedMs: number, totalBytes: number | undefined, width: number): string {
  const secs = elapsedMs / 1000;
  const mbps = secs > 0 ? bytes / 1e6 / secs : 0;
  const frac = totalBytes && totalBytes > 0 ? Math.min(1, bytes / totalBytes) : undefined;
  const eta = frac !== undefined && mbps > 0 ? (totalBytes! - bytes) / 1e6 / mbps : NaN;
  const stats = `${records.toLocaleString('en-US')} records  ${mbps.toFixed(1)} MB/s  ETA ${formatDuration(eta)}`;
  if (frac === undefined) return stats;
  const barWidth = Math.max(10, Math.min(40, width - stats.length - 10));
  const filled = Math.round(frac * barWidth);
  return `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%  ${stats}`;
}

export function createProgress(opts: ProgressOptions): TerminalProgress {
  const stream = opts.stream;
  if (!stream.isTTY && !opts.force) return { update() {}, done() {}, log: (line) => void stream.write(`${line}\n`) };
  const now = opts.now ?? (() => performance.now());
  const interval = opts.intervalMs ?? 100;
  const start = now();
  let last = -Infinity;
  let lastRecords = 0;
  let lastBytes = 0;
  /** The bar is on the screen (drawn at least once, not finished): log lines must go around it. */
  let visible = false;
  let finished = false;
  const barText = () => {
    const line = renderProgress(lastRecords, lastBytes, now() - start, opts.totalBytes, stream.columns ?? 80);
    // The width cap avoids wrapping on narrow terminals (a wrapped bar cannot be erased with one \r).
    return line.slice(0, Math.max(20, (stream.columns ?? 80) - 1));
  };
  // \r + erase-line keeps the bar on one line.
  const draw = () => {
    stream.write(`\r\x1b[2K${barText()}`);
    visible = true;
  };
  return {
    update(records, bytes) {
      if (finished) return;
      lastRecords = records;
      lastBytes = bytes;
      const t = now();
      if (t - last < interval) return;
      last = t;
      draw();
    },
    done() {
      if (finished) return;
      finished = true;
      draw();
      stream.write('\n');
      visible = false;
    },
    log(line) {
      // One write: erase the bar, the line, then the bar again below it.
      if (visible) stream.write(`\r\x1b[2K${line}\n${barText()}`);
      else stream.write(`${line}\n`);
    },
  };
}
