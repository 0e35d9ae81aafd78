// Foreign look-alikes: processes that resemble an instance (same cwd or launch script) but carry none of our markers.
import { readlinkSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { environReadable, hasProcfs, readCmdline } from './procfs.js';
import { classifyRole } from './roles.js';
import type { ProcessInfo, ProcessRole, ProcessTable } from './types.js';

/** What an instance looks like from the outside. */
export interface LookalikeProfile {
  cwd: string;
  command: string;
}

/** A process that looks like a WebUI of ours but is not provably ours: reported, never killed. */
export interface Lookalike {
  pid: number;
  name: string;
  role: ProcessRole;
  why: string;
}

function cwdOf(pid: number): string | undefined {
  if (!hasProcfs) return undefined;
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

/**
 * What is known about each candidate, shared across instances and (keyed by pid, checked against start time and
 * name, which an exec changes) across samples: argv, cwd and environment are read once per process, not per sample.
 */
export type LookalikeMemo = Map<number, { info: ProcessInfo; role: ProcessRole; cwd: string | undefined; judgeable: boolean }>;

// Shell or Python processes in the table that share the instance's cwd or run its script, excluding `ours`.
export function findLookalikes(table: ProcessTable, profile: LookalikeProfile, ours: ReadonlySet<number>, memo: LookalikeMemo = new Map()): Lookalike[] {
  const cwd = resolve(profile.cwd);
  const script = basename(profile.command);
  const scriptPath = resolve(profile.cwd, profile.command);
  const found: Lookalike[] = [];
  for (const info of table.processes.values()) {
    if (ours.has(info.pid) || info.pid === process.pid || info.state === 'Z' || info.state === 'X') continue;
    const candidate = candidateOf(info, memo);
    if (candidate.role === 'other') continue;
    const why = resemblance(candidate.info, candidate.cwd, cwd, script, scriptPath);
    // Unreadable environment (exiting, mid-exec): the missing marker proves nothing, so it is not judged foreign.
    if (why !== undefined && candidate.judgeable) found.push({ pid: info.pid, name: info.name, role: candidate.role, why });
  }
  return found;
}

// Reads what a candidate needs (argv, cwd, whether its environment is readable) once per table.
function candidateOf(info: ProcessInfo, memo: LookalikeMemo): { info: ProcessInfo; role: ProcessRole; cwd: string | undefined; judgeable: boolean } {
  const known = memo.get(info.pid);
  if (known !== undefined && known.info.startTime === info.startTime && known.info.name === info.name) return known;
  // A table read without argv (the sampler's fast path) gets it here, only for shells and Pythons.
  const nameRole = classifyRole({ name: info.name, cmdline: undefined });
  const needsArgv = info.cmdline === undefined && hasProcfs;
  const full = needsArgv && nameRole !== 'other' ? { ...info, cmdline: readCmdline(info.pid) } : info;
  const role = classifyRole(full);
  const entry = role === 'other'
    ? { info: full, role, cwd: undefined, judgeable: false }
    : { info: full, role, cwd: cwdOf(info.pid), judgeable: !hasProcfs || environReadable(info.pid) };
  // An unreadable environment may be a moment mid-exec: judge it again next time rather than remember it.
  if (role !== 'other' && !entry.judgeable) return entry;
  memo.set(info.pid, entry);
  return entry;
}

function resemblance(info: ProcessInfo, processCwd: string | undefined, cwd: string, script: string, scriptPath: string): string | undefined {
  const args = info.cmdline ?? [];
  if (args.some((arg) => arg === scriptPath)) return `runs ${scriptPath}`;
  // Merely sitting in the directory (a user's terminal) is not resemblance: it must run a WebUI entry point.
  if (processCwd === cwd) {
    const entry = args.find((arg) => [script, 'launch.py', 'webui.py'].includes(basename(arg)));
    if (entry !== undefined) return `runs ${basename(entry)} in ${cwd}`;
  }
  return undefined;
}
