// Start safety: refuses to spawn a duplicate when the port answers or a foreign look-alike runs in the cwd.
import { setTimeout as sleep } from 'node:timers/promises';
import { findLookalikes, findMarked, listeningPids, portAnswers, snapshot } from './process/index.js';
import { ForeignInstanceError, PortInUseError } from './errors.js';

/** What preflight needs to know about the instance. */
export interface PreflightTarget {
  id: string;
  cwd: string;
  command: string;
  /** The port its WebUI listens on, when known. */
  port: number | undefined;
  host?: string;
}

// Throws PortInUseError or ForeignInstanceError before anything is spawned; resolves when it is safe to start.
export async function preflight(target: PreflightTarget): Promise<void> {
  if (target.port !== undefined && target.port > 0 && (await portAnswers(target.host ?? '127.0.0.1', target.port, 500))) {
    const table = await snapshot({ cmdline: false });
    const markers = findMarked(table);
    const holders = listeningPids(target.port).map((pid) => {
      const marker = markers.get(pid);
      return { pid, name: table.processes.get(pid)?.name ?? '?', ...(marker !== undefined && { marker }) };
    });
    throw new PortInUseError(target.id, target.port, holders);
  }
  // A look-alike must still be there a moment later: transient forks and exiting processes are not an instance.
  const first = await findForeign(target);
  if (first.size === 0) return;
  await sleep(LOOKALIKE_RECHECK_MS);
  const persistent = [...(await findForeign(target)).values()].filter((entry) => first.get(entry.pid)?.startTime === entry.startTime);
  if (persistent.length > 0) {
    throw new ForeignInstanceError(target.id, target.cwd, persistent.map((entry) => ({ pid: entry.pid, name: entry.name, why: entry.why })));
  }
}

const LOOKALIKE_RECHECK_MS = 150;

async function findForeign(target: PreflightTarget): Promise<Map<number, { pid: number; name: string; why: string; startTime: number | undefined }>> {
  const table = await snapshot({ cmdline: true });
  const marked = new Set(findMarked(table).keys());
  const found = new Map<number, { pid: number; name: string; why: string; startTime: number | undefined }>();
  for (const entry of findLookalikes(table, { cwd: target.cwd, command: target.command }, marked)) {
    found.set(entry.pid, { pid: entry.pid, name: entry.name, why: entry.why, startTime: table.processes.get(entry.pid)?.startTime });
  }
  return found;
}
