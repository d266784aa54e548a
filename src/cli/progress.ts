/** A progress line on stderr for the operator commands: records, bytes, rate, and ETA when the total is known. */

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = bytes;
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${n.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

export class Progress {
  private readonly started = performance.now();
  private last = 0;
  records = 0;
  bytes = 0;

  constructor(
    private readonly label: string,
    /** Total bytes, when known (an import from a file). */
    private readonly total: number | null,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {}

  /** Redraws at most every 200 ms (or when `force`). */
  update(force = false): void {
    const now = performance.now();
    if (!force && now - this.last < 200) return;
    this.last = now;
    const seconds = Math.max((now - this.started) / 1000, 0.001);
    const rate = this.bytes / seconds;
    let line = `${this.label}: ${this.records} records, ${human(this.bytes)}`;
    if (this.total !== null && this.total > 0) {
      const fraction = Math.min(1, this.bytes / this.total);
      const width = 24;
      const filled = Math.round(fraction * width);
      line = `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(1)}% ${this.records} records, ${human(this.bytes)}/${human(this.total)}`;
      line += `, ${human(rate)}/s, ${(this.records / seconds).toFixed(0)} records/s, ETA ${duration((this.total - this.bytes) / rate)}`;
    } else {
      line += `, ${human(rate)}/s, ${(this.records / seconds).toFixed(0)} records/s, ${duration(seconds)}`;
    }
    this.out.write(this.out.isTTY ? `\r\x1b[K${line}` : `${line}\n`);
  }

  done(message: string): void {
    this.update(true);
    this.out.write(`${this.out.isTTY ? '\n' : ''}${message}\n`);
  }
}

/** The common options of export and import. */
export function endpoint(url: string | undefined, install: string | undefined, what: 'export' | 'import'): string {
  if (!url || !install) throw new Error('--url and --install are required');
  return `${url.replace(/\/+$/, '')}/api/admin/installs/${encodeURIComponent(install)}/${what}`;
}

/** Runs an operator command: its exit code, or 2 with the message and the usage when it throws. */
export function runCommand(main: () => Promise<number>, usage: string): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${usage}\n`);
      process.exitCode = 2;
    },
  );
}
