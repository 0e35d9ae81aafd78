// Linux /proc readers. Each returns `undefined` when the process vanished mid-read: that is normal, not an error.
import { closeSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import type { ProcessInfo } from '../types.js';

// Whether this machine exposes a Linux-style /proc we can read directly.
export const hasProcfs: boolean = (() => {
  if (process.platform !== 'linux') return false;
  try {
    return statSync('/proc/self/stat').isFile();
  } catch {
    return false;
  }
})();

// The numeric directory names of /proc: every pid visible to us.
export function listProcPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const code = entry.charCodeAt(0);
    if (code >= 48 && code <= 57) pids.push(Number(entry));
  }
  return pids;
}

const STAT_FIELDS = [3, 4, 5, 6, 22] as const;

// Parses one `/proc/PID/stat` line; `comm` may hold spaces and parentheses, so split at the last ')'.
export function parseStat(pid: number, text: string): Omit<ProcessInfo, 'cmdline' | 'uid'> | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const name = text.slice(open + 1, close);
  // Fields after comm start at field 3 (state). Only fields 3–6 and 22 are needed: walk the spaces instead of
  // splitting all 50 (a sample parses every process's stat line, so this is the hottest loop of sampling).
  const wanted = STAT_FIELDS;
  const values: string[] = [];
  let field = 3;
  let start = close + 2;
  for (const target of wanted) {
    while (field < target) {
      const space = text.indexOf(' ', start);
      if (space < 0) return undefined;
      start = space + 1;
      field += 1;
    }
    const end = text.indexOf(' ', start);
    values.push(text.slice(start, end < 0 ? undefined : end));
  }
  const [state, ppidText, pgidText, sidText, startText] = values as [string, string, string, string, string];
  const ppid = Number(ppidText);
  const pgid = Number(pgidText);
  const sid = Number(sidText);
  const startTime = Number(startText);
  if (!Number.isFinite(ppid)) return undefined;
  return {
    pid,
    ppid,
    pgid: Number.isFinite(pgid) ? pgid : undefined,
    sid: Number.isFinite(sid) ? sid : undefined,
    startTime: Number.isFinite(startTime) ? startTime : undefined,
    state,
    name,
  };
}

// One reusable buffer for every /proc read: a sample reads hundreds of small files, and a fresh buffer per read
// was the largest allocation cost of sampling (procfs files report size 0, so readFileSync grows buffers).
let scratch = Buffer.allocUnsafe(16 * 1024);

// Reads a whole /proc file into `scratch`; resolves with its length, or `undefined` if it is gone or unreadable.
// `line`: the file is one newline-ended line generated in one go (/proc/PID/stat): a short read that ends in '\n'
// holds all of it, so the read that would return 0 (end of file) is skipped — one syscall fewer per process per
// sample. Anything else (a read that filled the buffer, no final newline) goes on reading to end of file.
function readRaw(path: string, line = false): number | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    let length = 0;
    for (;;) {
      if (length === scratch.length) {
        const bigger = Buffer.allocUnsafe(scratch.length * 2);
        scratch.copy(bigger, 0, 0, length);
        scratch = bigger;
      }
      const room = scratch.length - length;
      const read = readSync(fd, scratch, length, room, null);
      if (read === 0) break;
      length += read;
      if (line && read < room && scratch[length - 1] === 0x0a) break;
    }
    return length;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

// stat is parsed by byte offsets (comm may hold any byte), so latin1: one char per byte.
function readStatText(path: string): string | undefined {
  const length = readRaw(path, true);
  return length === undefined ? undefined : scratch.toString('latin1', 0, length);
}

// Reads one process's row; `undefined` if it is gone (or was never there).
export function readProcess(pid: number, withCmdline = true, withUid = true): ProcessInfo | undefined {
  const stat = readStatText(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  const parsed = parseStat(pid, stat);
  if (parsed === undefined) return undefined;
  let uid: number | undefined;
  if (withUid) {
    try {
      uid = statSync(`/proc/${pid}`).uid;
    } catch {
      return undefined;
    }
  }
  return { ...parsed, cmdline: withCmdline ? readCmdline(pid) : undefined, uid };
}

// Reads just the start time of a pid, the cheapest identity check before a signal.
export function readStartTime(pid: number): { startTime: number | undefined; state: string | undefined } | undefined {
  const stat = readStatText(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  const parsed = parseStat(pid, stat);
  return parsed === undefined ? undefined : { startTime: parsed.startTime, state: parsed.state };
}

// The value of one variable in a process's initial environment, or `undefined` if unreadable or unset.
// Searched as bytes and decoded as UTF-8: a marker or state dir with non-ASCII characters (`/home/zoë/…`) must
// compare equal to the string we set, and most processes (not ours) are rejected without decoding anything.
export function readEnvironVariable(pid: number, variable: string): string | undefined {
  // Under Wine, /proc is the Linux host's: its pids are not this (Windows) process's pids.
  if (!hasProcfs) return undefined;
  const length = readRaw(`/proc/${pid}/environ`);
  if (length === undefined) return undefined;
  const environ = scratch.subarray(0, length);
  const prefix = Buffer.from(`${variable}=`, 'utf8');
  for (let at = environ.indexOf(prefix); at !== -1; at = environ.indexOf(prefix, at + 1)) {
    // Only a whole entry counts: at the start, or right after the NUL ending the previous one.
    if (at > 0 && environ[at - 1] !== 0) continue;
    const start = at + prefix.length;
    const end = environ.indexOf(0, start);
    return environ.toString('utf8', start, end === -1 ? length : end);
  }
  return undefined;
}

// Whether a process's environment can be read and is not empty: an exiting process (or one mid-exec) shows none,
// and then the absence of our marker proves nothing.
export function environReadable(pid: number): boolean {
  const length = readRaw(`/proc/${pid}/environ`);
  return length !== undefined && length > 0;
}

// One process's argument vector, or `undefined` if it is gone or has none (kernel threads, zombies).
export function readCmdline(pid: number): string[] | undefined {
  // UTF-8, as the arguments were passed: a path with non-ASCII characters reads back as written.
  const length = readRaw(`/proc/${pid}/cmdline`);
  if (length === undefined || length === 0) return undefined;
  const raw = scratch.toString('utf8', 0, length);
  return (raw.endsWith('\0') ? raw.slice(0, -1) : raw).split('\0');
}
