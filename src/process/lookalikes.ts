// Foreign look-alikes: processes that resemble an instance (same cwd or launch script) but carry none of our markers.
import { readlinkSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { environReadable, hasProcfs, readCmdline } from './posix/procfs.js';
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
export type LookalikeMemo = Map<number, Candidate>;

/** One shell or Python of the table as the look-alike check sees it; `verdicts` caches each profile's answer. */
interface Candidate {
  info: ProcessInfo;
  role: ProcessRole;
  cwd: string | undefined;
  judgeable: boolean;
  verdicts?: Map<string, string | undefined>;
}

/** The table's shells and Pythons outside `ours`, read once per sample and shared by every instance's check. */
export type LookalikeCandidates = Candidate[];

// The candidates of one table: every live shell or Python not in `ours` (argv, cwd and environment from the memo).
export function lookalikeCandidates(table: ProcessTable, ours: ReadonlySet<number>, memo: LookalikeMemo = new Map()): LookalikeCandidates {
  const candidates: Candidate[] = [];
  for (const info of table.processes.values()) {
    if (ours.has(info.pid) || info.pid === process.pid || info.state === 'Z' || info.state === 'X') continue;
    const candidate = candidateOf(info, memo);
    if (candidate.role !== 'other') candidates.push(candidate);
  }
  return candidates;
}

// The candidates that resemble one instance; a remembered candidate's verdict per profile is reused (its argv and
// cwd are fixed for its pid + start time + name), so a steady table costs a map lookup per candidate.
export function lookalikesAmong(candidates: LookalikeCandidates, profile: LookalikeProfile): Lookalike[] {
  const cwd = resolve(profile.cwd);
  const script = basename(profile.command);
  const scriptPath = resolve(profile.cwd, profile.command);
  const key = `${cwd}\0${scriptPath}`;
  const found: Lookalike[] = [];
  for (const candidate of candidates) {
    let why: string | undefined;
    if (candidate.verdicts?.has(key) === true) why = candidate.verdicts.get(key);
    else {
      why = resemblance(candidate.info, candidate.cwd, cwd, script, scriptPath);
      (candidate.verdicts ??= new Map()).set(key, why);
    }
    // Unreadable environment (exiting, mid-exec): the missing marker proves nothing, so it is not judged foreign.
    if (why !== undefined && candidate.judgeable) found.push({ pid: candidate.info.pid, name: candidate.info.name, role: candidate.role, why });
  }
  return found;
}

// Shell or Python processes in the table that share the instance's cwd or run its script, excluding `ours`.
export function findLookalikes(table: ProcessTable, profile: LookalikeProfile, ours: ReadonlySet<number>, memo: LookalikeMemo = new Map()): Lookalike[] {
  return lookalikesAmong(lookalikeCandidates(table, ours, memo), profile);
}

// Reads what a candidate needs (argv, cwd, whether its environment is readable) once per table.
function candidateOf(info: ProcessInfo, memo: LookalikeMemo): Candidate {
  const known = memo.get(info.pid);
  if (known !== undefined && known.info.startTime === info.startTime && known.info.name === info.name) return known;
  // A table read without argv (the sampler's fast path) gets it here, only for shells and Pythons.
  const nameRole = classifyRole({ name: info.name, cmdline: undefined });
  const needsArgv = info.cmdline === undefined && hasProcfs;
  const full = needsArgv && nameRole !== 'other' ? { ...info, cmdline: readCmdline(info.pid) } : info;
  const role = classifyRole(full);
  const entry: Candidate = role === 'other'
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
