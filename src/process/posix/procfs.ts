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

// The one-letter process states as strings, made once: a sample reads every process's state, and a fresh
// one-character string per process per sample is garbage the GC then has to collect.
const STATE_LETTERS: string[] = Array.from({ length: 128 }, (_, code) => String.fromCharCode(code));

// Parses one `/proc/PID/stat` line; `comm` may hold spaces and parentheses, so split at the last ')'.
export function parseStat(pid: number, text: string): Omit<ProcessInfo, 'cmdline' | 'uid'> | undefined {
  const bytes = Buffer.from(text, 'latin1');
  return parseStatBytes(pid, bytes, bytes.length, undefined, undefined);
}

// The same from the raw bytes, without decoding the line: the sampler parses every process's stat once a second,
// so only `comm` becomes a string, and the numbers are read digit by digit (fields 3–6 and 22: state, ppid, pgrp,
// session, starttime). `cmdline` and `uid` are filled in here so the row is built as one object.
function parseStatBytes(pid: number, bytes: Buffer, length: number, cmdline: string[] | undefined, uid: number | undefined): ProcessInfo | undefined {
  const open = bytes.indexOf(0x28);
  const close = bytes.lastIndexOf(0x29, length - 1);
  if (open < 0 || open >= length || close < open) return undefined;
  const name = bytes.toString('latin1', open + 1, close);
  let at = close + 2;
  if (at >= length) return undefined;
  const stateCode = bytes[at] as number;
  const state = stateCode < 128 ? (STATE_LETTERS[stateCode] as string) : String.fromCharCode(stateCode);
  let ppid = Number.NaN;
  let pgid = Number.NaN;
  let sid = Number.NaN;
  let startTime = Number.NaN;
  // Field 3 (state) starts at `at`; walk to each wanted field's first byte and read its number.
  let field = 3;
  for (const target of [4, 5, 6, 22]) {
    while (field < target) {
      while (at < length && bytes[at] !== 0x20) at += 1;
      if (at >= length) return undefined;
      at += 1;
      field += 1;
    }
    const value = readInteger(bytes, at, length);
    if (target === 4) ppid = value;
    else if (target === 5) pgid = value;
    else if (target === 6) sid = value;
    else startTime = value;
  }
  if (!Number.isFinite(ppid)) return undefined;
  return {
    pid,
    ppid,
    pgid: Number.isFinite(pgid) ? pgid : undefined,
    sid: Number.isFinite(sid) ? sid : undefined,
    startTime: Number.isFinite(startTime) ? startTime : undefined,
    state,
    name,
    cmdline,
    uid,
  };
}

// A decimal integer (optionally negative) from `at` to the next space or line end; NaN if there is none.
function readInteger(bytes: Buffer, at: number, length: number): number {
  let cursor = at;
  const negative = bytes[cursor] === 0x2d;
  if (negative) cursor += 1;
  let value = 0;
  let digits = 0;
  for (; cursor < length; cursor += 1) {
    const code = bytes[cursor] as number;
    if (code === 0x20 || code === 0x0a) break;
    if (code < 0x30 || code > 0x39) return Number.NaN;
    value = value * 10 + (code - 0x30);
    digits += 1;
  }
  if (digits === 0) return Number.NaN;
  return negative ? -value : value;
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

// Reads one process's row; `undefined` if it is gone (or was never there).
export function readProcess(pid: number, withCmdline = true, withUid = true): ProcessInfo | undefined {
  const length = readRaw(`/proc/${pid}/stat`, true);
  if (length === undefined) return undefined;
  // Parsed before the other reads: they reuse `scratch`. The row has its cmdline and uid slots already, so filling
  // them in keeps one object shape.
  const info = parseStatBytes(pid, scratch, length, undefined, undefined);
  if (info === undefined) return undefined;
  if (withUid) {
    try {
      info.uid = statSync(`/proc/${pid}`).uid;
    } catch {
      return undefined;
    }
  }
  if (withCmdline) info.cmdline = readCmdline(pid);
  return info;
}

// Reads just the start time of a pid, the cheapest identity check before a signal.
export function readStartTime(pid: number): { startTime: number | undefined; state: string | undefined } | undefined {
  const length = readRaw(`/proc/${pid}/stat`, true);
  if (length === undefined) return undefined;
  const parsed = parseStatBytes(pid, scratch, length, undefined, undefined);
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
