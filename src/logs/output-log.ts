// An instance's output: per-start log files (size-capped, rotated, pruned), a tail kept in memory, a live stream.
import { createWriteStream, existsSync, mkdirSync, openSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { join } from 'node:path';
import { Subject } from 'rxjs';
import type { Observable } from 'rxjs';

/** One line the tree wrote. `at` is an ISO time. */
export interface OutputLine {
  at: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

/** Where and how much to keep. */
export interface OutputLogOptions {
  /** The instance's log folder (`<stateDir>/logs/<instanceId>`). */
  dir: string;
  /** A log file is rotated to `.1` when it would grow past this. */
  maxBytes: number;
  /** Start files kept in `dir`; older ones (with their `.1`) are deleted when a start begins. */
  keepFiles: number;
  /** Lines kept in memory for `tail()` (across starts). Default 10000. */
  tailSize?: number;
  /** Told when the file cannot be written (disk full, permissions); output keeps flowing to memory. */
  onError?: (error: Error) => void;
}

/** The longest line kept; longer ones (a progress bar redrawn with \r and no newline) are cut, marked with "…". */
const MAX_LINE_CHARS = 16_384;

// A fixed-size ring of the newest lines, with a count of lines written since the current start began.
class Ring {
  private readonly items: OutputLine[] = [];
  private head = 0;
  constructor(private readonly capacity: number) {}
  push(line: OutputLine): void {
    if (this.items.length < this.capacity) this.items.push(line);
    else {
      this.items[this.head] = line;
      this.head = (this.head + 1) % this.capacity;
    }
  }
  // The newest `count` lines, oldest first.
  last(count: number): OutputLine[] {
    const size = this.items.length;
    const take = Math.max(0, Math.min(count, size));
    const out: OutputLine[] = [];
    for (let i = size - take; i < size; i += 1) out.push(this.items[(this.head + i) % size] as OutputLine);
    return out;
  }
}

/** One instance's output log. `begin()` opens the file of a new start; `write()` takes each line. */
export class OutputLog {
  private readonly ring: Ring;
  private readonly subject = new Subject<OutputLine>();
  private stream: WriteStream | undefined;
  private path: string | null = null;
  private bytes = 0;
  private sequence = 0;
  private sinceStart = 0;
  private closed = false;

  constructor(private readonly options: OutputLogOptions) {
    this.ring = new Ring(options.tailSize ?? 10_000);
  }

  /** The current start's log file (null before the first start or when it could not be created). */
  get file(): string | null {
    return this.path;
  }

  /** Every line as it arrives; completes when the log is closed (shutdown). */
  get lines$(): Observable<OutputLine> {
    return this.subject.asObservable();
  }

  // Opens `<ISO-start>-<n>.log` for a new start (closing the previous one) and prunes old start files.
  begin(startedAt: Date = new Date()): string | null {
    this.endFile();
    this.sinceStart = 0;
    const stamp = startedAt.toISOString().replace(/:/g, '-');
    try {
      mkdirSync(this.options.dir, { recursive: true });
      let name: string;
      do {
        this.sequence += 1;
        name = `${stamp}-${this.sequence}.log`;
      } while (existsSync(join(this.options.dir, name)));
      this.path = join(this.options.dir, name);
      this.openFile();
      this.prune();
    } catch (error) {
      this.fail(error);
    }
    return this.path;
  }

  // Records one line: memory tail, live subscribers, the file (prefixed with time and stream).
  write(stream: OutputLine['stream'], raw: string): void {
    const text = raw.length > MAX_LINE_CHARS ? `${raw.slice(0, MAX_LINE_CHARS - 1)}…` : raw;
    const line: OutputLine = { at: new Date().toISOString(), stream, text };
    this.ring.push(line);
    this.sinceStart += 1;
    if (!this.closed) this.subject.next(line);
    if (this.stream === undefined || this.path === null) return;
    const entry = `${line.at} ${stream} ${text}\n`;
    const size = Buffer.byteLength(entry);
    if (this.bytes > 0 && this.bytes + size > this.options.maxBytes) this.rotate();
    this.stream?.write(entry);
    this.bytes += size;
  }

  /** The newest `count` lines, across starts, oldest first. */
  tail(count: number): OutputLine[] {
    return this.ring.last(count);
  }

  /** The newest `count` lines of the current start only (what crash hints read). */
  currentStart(count: number): OutputLine[] {
    return this.ring.last(Math.min(count, this.sinceStart));
  }

  /** Closes the current file; lines that still arrive go to memory only until the next `begin()`. */
  endFile(): void {
    this.stream?.end();
    this.stream = undefined;
  }

  /** Closes the file and completes `lines$`. */
  close(): void {
    this.endFile();
    if (!this.closed) {
      this.closed = true;
      this.subject.complete();
    }
  }

  // Opened synchronously, so a rename right after can never race the open.
  private openFile(): void {
    if (this.path === null) return;
    const fd = openSync(this.path, 'a');
    const stream = createWriteStream('', { fd, autoClose: true });
    stream.on('error', (error) => {
      if (this.stream === stream) this.stream = undefined;
      this.fail(error);
    });
    this.stream = stream;
    this.bytes = 0;
  }

  // The cap is hit: the file becomes `.1` (replacing an older `.1`) and writing goes on in a fresh file.
  private rotate(): void {
    if (this.path === null) return;
    this.endFile();
    try {
      renameSync(this.path, `${this.path}.1`);
      this.openFile();
    } catch (error) {
      this.fail(error);
    }
  }

  // Keeps the newest keepFiles starts (their `.log` and `.log.1`); names sort by start time.
  private prune(): void {
    const starts = new Map<string, string[]>();
    for (const name of readdirSync(this.options.dir)) {
      const match = /^(.+\.log)(\.1)?$/.exec(name);
      if (match === null || match[1] === undefined) continue;
      const files = starts.get(match[1]) ?? [];
      files.push(name);
      starts.set(match[1], files);
    }
    const ordered = [...starts.keys()].sort(byStart);
    for (const start of ordered.slice(0, Math.max(0, ordered.length - this.options.keepFiles))) {
      for (const name of starts.get(start) ?? []) {
        try {
          unlinkSync(join(this.options.dir, name));
        } catch {
          // already gone
        }
      }
    }
  }

  private fail(error: unknown): void {
    this.options.onError?.(error instanceof Error ? error : new Error(String(error)));
  }
}

// `<ISO>-<n>.log`: by time, then by the start number (9 before 10).
function byStart(a: string, b: string): number {
  const split = (name: string): [string, number] => {
    const match = /^(.*)-(\d+)\.log$/.exec(name);
    return match === null ? [name, 0] : [match[1] ?? name, Number(match[2])];
  };
  const [timeA, nA] = split(a);
  const [timeB, nB] = split(b);
  return timeA < timeB ? -1 : timeA > timeB ? 1 : nA - nB;
}
