// Terminal output: plain text when stdout is not a TTY (or NO_COLOR is set), a little colour when it is.
import { WriteStream } from 'node:tty';

/** Text styles; each returns its input unchanged when colour is off. */
export interface Styles {
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
}

/** Where a command writes: `line` to stdout, `note` to stderr; `json` prints one value as one line. */
export interface Output {
  /** stdout is a terminal (progress may rewrite a line). */
  readonly tty: boolean;
  readonly style: Styles;
  line(text?: string): void;
  note(text: string): void;
  json(value: unknown): void;
}

const ansi = (open: number, close: number) => (text: string) => `\u001b[${open}m${text}\u001b[${close}m`;
const plain = (text: string): string => text;

// Colour only for a terminal, and never with NO_COLOR (https://no-color.org); FORCE_COLOR=1 forces it on.
function wantsColour(stream: NodeJS.WriteStream): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return false;
  if (process.env.FORCE_COLOR === '1') return true;
  return stream instanceof WriteStream && stream.isTTY && process.env.TERM !== 'dumb';
}

/** Streams whose reader went away (`warden demo | head`): further writes are dropped, the command carries on. */
const closed = new WeakSet<NodeJS.WriteStream>();
const guarded = new WeakSet<NodeJS.WriteStream>();

// A closed pipe must never crash a command halfway: the demo still has processes to stop and prove dead.
function guard(stream: NodeJS.WriteStream): void {
  if (guarded.has(stream)) return;
  guarded.add(stream);
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') closed.add(stream);
    else throw error;
  });
}

function write(stream: NodeJS.WriteStream, text: string): void {
  if (closed.has(stream) || stream.destroyed) return;
  stream.write(text);
}

// The output of one command run.
export function createOutput(stdout: NodeJS.WriteStream = process.stdout, stderr: NodeJS.WriteStream = process.stderr): Output {
  guard(stdout);
  guard(stderr);
  const colour = wantsColour(stdout);
  const style: Styles = colour
    ? { bold: ansi(1, 22), dim: ansi(2, 22), red: ansi(31, 39), green: ansi(32, 39), yellow: ansi(33, 39), cyan: ansi(36, 39) }
    : { bold: plain, dim: plain, red: plain, green: plain, yellow: plain, cyan: plain };
  return {
    tty: stdout.isTTY === true,
    style,
    line: (text = '') => write(stdout, `${text}\n`),
    note: (text) => write(stderr, `${text}\n`),
    json: (value) => write(stdout, `${JSON.stringify(value)}\n`),
  };
}

// `[  2.31s]`: seconds since `origin` (performance.now() based), fixed width so columns line up.
export function stamp(origin: number, now = performance.now()): string {
  return `[${((now - origin) / 1000).toFixed(2).padStart(6)}s]`;
}

// `1.2 s`, `340 ms`.
export function duration(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

// `3 python, 1 shell` from a list of processes with roles; `none` when empty.
export function byRole(processes: ReadonlyArray<{ role: string }>): string {
  if (processes.length === 0) return 'none';
  const counts = new Map<string, number>();
  for (const entry of processes) counts.set(entry.role, (counts.get(entry.role) ?? 0) + 1);
  return [...counts].map(([role, count]) => `${count} ${role}`).join(', ');
}

// `pids 101, 102, 103 …(+9)`: a short pid list.
export function pidList(pids: readonly number[], max = 6): string {
  if (pids.length === 0) return '-';
  const shown = pids.slice(0, max).join(', ');
  return pids.length > max ? `${shown} …(+${pids.length - max})` : shown;
}

// `word` or `words` by count.
export function plural(count: number, word: string, many = `${word}s`): string {
  return `${count} ${count === 1 ? word : many}`;
}
