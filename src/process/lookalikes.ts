// Foreign look-alikes: processes that resemble an instance (same cwd or launch script) but carry none of our markers.
import { readlinkSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { environReadable, hasProcfs } from './procfs.js';
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

// Shell or Python processes in the table that share the instance's cwd or run its script, excluding `ours`.
export function findLookalikes(table: ProcessTable, profile: LookalikeProfile, ours: ReadonlySet<number>): Lookalike[] {
  const cwd = resolve(profile.cwd);
  const script = basename(profile.command);
  const scriptPath = resolve(profile.cwd, profile.command);
  const found: Lookalike[] = [];
  for (const info of table.processes.values()) {
    if (ours.has(info.pid) || info.pid === process.pid || info.state === 'Z' || info.state === 'X') continue;
    const role = classifyRole(info);
    if (role === 'other') continue;
    const why = resemblance(info, cwd, script, scriptPath);
    // Unreadable environment (exiting, mid-exec): the missing marker proves nothing, so it is not judged foreign.
    if (why !== undefined && (!hasProcfs || environReadable(info.pid))) found.push({ pid: info.pid, name: info.name, role, why });
  }
  return found;
}

function resemblance(info: ProcessInfo, cwd: string, script: string, scriptPath: string): string | undefined {
  const args = info.cmdline ?? [];
  if (args.some((arg) => arg === scriptPath)) return `runs ${scriptPath}`;
  const processCwd = cwdOf(info.pid);
  // Merely sitting in the directory (a user's terminal) is not resemblance: it must run a WebUI entry point.
  if (processCwd === cwd) {
    const entry = args.find((arg) => [script, 'launch.py', 'webui.py'].includes(basename(arg)));
    if (entry !== undefined) return `runs ${basename(entry)} in ${cwd}`;
  }
  return undefined;
}
