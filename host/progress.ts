/**
 * A one-line progress bar for `enclavekit run` on a terminal: records sent, MB/s, ETA from the bytes
 * read out of the dataset file. It writes nothing at all when the stream is not a TTY, so piped output
 * and CI logs stay clean (and carry no carriage-return noise).
 */

export interface Progress {
  /** Cumulative records sent and dataset bytes consumed so far. */
  update(records: number, bytes: number): void;
  /** Final redraw and newline (TTY only). */
  done(): void;
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

const noop: Progress = { update() {}, done() {} };

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

export function createProgress(opts: ProgressOptions): Progress {
  if (!opts.stream.isTTY && !opts.force) return noop;
  const now = opts.now ?? (() => performance.now());
  const interval = opts.intervalMs ?? 100;
  const start = now();
  let last = -Infinity;
  let lastRecords = 0;
  let lastBytes = 0;
  const draw = () => {
    const line = renderProgress(lastRecords, lastBytes, now() - start, opts.totalBytes, opts.stream.columns ?? 80);
    // \r + erase-line keeps it on one line; the width cap avoids wrapping on narrow terminals.
    opts.stream.write(`\r\x1b[2K${line.slice(0, Math.max(20, (opts.stream.columns ?? 80) - 1))}`);
  };
  return {
    update(records, bytes) {
      lastRecords = records;
      lastBytes = bytes;
      const t = now();
      if (t - last < interval) return;
      last = t;
      draw();
    },
    done() {
      draw();
      opts.stream.write('\n');
    },
  };
}
