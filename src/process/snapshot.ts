// Reads the process table: /proc directly on Linux (no child process), ps-list elsewhere.
import psList from 'ps-list';
import type { ProcessDescriptor } from 'ps-list';
import { WardenError } from './errors.js';
import { hasProcfs, listProcPids, readProcess } from './posix/procfs.js';
import type { ProcessInfo, ProcessTable } from './types.js';

export interface SnapshotOptions {
  /** Force a reader; defaults to `proc` where /proc exists, else `ps-list`. */
  backend?: 'proc' | 'ps-list';
  /** Read each command line (one more file per process on Linux). Default true. */
  cmdline?: boolean;
  /** Read each owner uid (one more stat per process on Linux). Default true. */
  uid?: boolean;
}

// The whole process table at one instant; processes that vanish mid-read are skipped.
export async function snapshot(options: SnapshotOptions = {}): Promise<ProcessTable> {
  const backend = options.backend ?? (hasProcfs ? 'proc' : 'ps-list');
  const sequence = nextReadSequence();
  const table = backend === 'proc' ? snapshotProcSync(options.cmdline ?? true, options.uid ?? true) : await snapshotPsList();
  table.sequence = sequence;
  return table;
}

let readsBegun = 0;
// The next read's place in the order reads begin (shared by every reader of this process, see ProcessTable.sequence).
export function nextReadSequence(): number {
  readsBegun += 1;
  return readsBegun;
}

// The /proc reader, synchronous: a few hundred small reads are faster without promise overhead.
export function snapshotProcSync(withCmdline = true, withUid = true): ProcessTable {
  if (!hasProcfs) throw new Error('The /proc process table is not available on this system (use the ps-list backend).');
  const processes = new Map<number, ProcessInfo>();
  for (const pid of listProcPids()) {
    const info = readProcess(pid, withCmdline, withUid);
    if (info !== undefined) processes.set(pid, info);
  }
  return { backend: 'proc', takenAt: Date.now(), processes };
}

/** How often a failed ps-list read is tried again before the error is thrown, and the pause before each retry. */
export const PS_LIST_RETRY_DELAYS_MS = [50, 200] as const;

// Lists processes through ps-list, retrying a failed read twice: ps-list runs a helper (fastlist.exe on Windows,
// ps elsewhere) whose start can fail for a moment (measured under Wine: "spawn UNKNOWN", about once in a few
// thousand reads), and a stop or a reap must not fail on that.
export async function readPsList(list: () => Promise<ProcessDescriptor[]> = () => psList({ all: true })): Promise<ProcessDescriptor[]> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await list();
    } catch (error) {
      const delay = PS_LIST_RETRY_DELAYS_MS[attempt];
      if (delay === undefined) {
        throw new WardenError('PROCESS_LIST_FAILED', `Cannot list processes through ps-list after ${attempt + 1} attempts: ${(error as Error).message}`, { cause: error });
      }
      await new Promise((resolveDelay) => setTimeout(resolveDelay, delay));
    }
  }
}

// The portable reader: same shape, fields ps-list cannot give are `undefined`.
async function snapshotPsList(): Promise<ProcessTable> {
  const rows = await readPsList();
  const processes = new Map<number, ProcessInfo>();
  for (const row of rows) {
    processes.set(row.pid, {
      pid: row.pid,
      ppid: row.ppid,
      pgid: undefined,
      sid: undefined,
      startTime: row.startTime instanceof Date && !Number.isNaN(row.startTime.getTime()) ? row.startTime.getTime() : undefined,
      state: undefined,
      name: row.name ?? '',
      cmdline: row.cmd === undefined ? undefined : row.cmd.split(' '),
      uid: row.uid,
    });
  }
  return { backend: 'ps-list', takenAt: Date.now(), processes };
}

// A zombie has exited: it cannot run, respawn or be killed again, so it counts as dead.
export function isAlive(info: ProcessInfo): boolean {
  return info.state !== 'Z' && info.state !== 'X';
}
