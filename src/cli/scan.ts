// Reading this machine's process table for the CLI: marked processes, owned trees, foreign look-alikes.
import { basename } from 'node:path';
import type { WardenConfig } from '../config/index.js';
import { classifyRole, collectOwned, findLookalikes, findMarked, parseMarker, snapshot } from '../process/index.js';
import type { Lookalike, ProcessInfo, ProcessRole, ProcessTable } from '../process/index.js';
import { restoreWindowsTree } from '../process/state/reap.js';
import type { LaunchRecord } from '../process/state/registry.js';

/** One process as the CLI reports it. */
export interface ListedProcess {
  pid: number;
  ppid: number;
  name: string;
  role: ProcessRole;
  /** The command line, shortened. */
  command: string;
}

// A process of the table as a report row.
export function listed(info: ProcessInfo): ListedProcess {
  const command = (info.cmdline ?? [info.name]).join(' ');
  return {
    pid: info.pid,
    ppid: info.ppid,
    name: info.name,
    role: classifyRole(info),
    command: command.length > 120 ? `${command.slice(0, 119)}…` : command,
  };
}

// One consistent read of the table (with command lines).
export function readTable(): Promise<ProcessTable> {
  return snapshot({ cmdline: true });
}

// Every marked process: pid → marker value.
export function markedProcesses(table: ProcessTable): Map<number, string> {
  return findMarked(table);
}

// The instance ids that appear in any marker of the table.
export function markedInstanceIds(table: ProcessTable): Set<string> {
  const ids = new Set<string>();
  for (const marker of findMarked(table).values()) {
    const parsed = parseMarker(marker);
    if (parsed !== undefined) ids.add(parsed.instanceId);
  }
  return ids;
}

// The live processes of a launch record (tree, marker and group proofs; on Windows its tree record), as report rows.
export function ownedBy(record: LaunchRecord, table: ProcessTable): ListedProcess[] {
  if (process.platform === 'win32') {
    const restored = restoreWindowsTree(record, table);
    return restored.ok ? restored.owned.map((owned) => listed(owned.info)) : [];
  }
  return collectOwned(record, table).map((owned) => listed(owned.info));
}

/** Entry points of a WebUI: a process running one of these without our marker looks like a WebUI we did not start. */
const ENTRY_POINTS = new Set(['webui.sh', 'webui.bat', 'webui-user.sh', 'webui-user.bat', 'launch.py', 'webui.py']);

// Foreign look-alikes: by each configured instance's profile (cwd, command), or without a config by entry point alone.
export function foreignLookalikes(table: ProcessTable, config: WardenConfig | undefined): Lookalike[] {
  const marked = new Set(findMarked(table).keys());
  if (config !== undefined) {
    const seen = new Set<number>();
    const found: Lookalike[] = [];
    for (const instance of config.instances) {
      for (const lookalike of findLookalikes(table, { cwd: instance.cwd, command: instance.command }, marked)) {
        if (seen.has(lookalike.pid)) continue;
        seen.add(lookalike.pid);
        found.push(lookalike);
      }
    }
    return found;
  }
  const found: Lookalike[] = [];
  for (const info of table.processes.values()) {
    if (marked.has(info.pid) || info.pid === process.pid || info.state === 'Z') continue;
    const role = classifyRole(info);
    if (role === 'other') continue;
    const entry = (info.cmdline ?? []).slice(0, 3).find((arg) => ENTRY_POINTS.has(basename(arg)));
    if (entry !== undefined) found.push({ pid: info.pid, name: info.name, role, why: `runs ${basename(entry)}` });
  }
  return found;
}
