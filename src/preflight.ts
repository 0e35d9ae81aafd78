// Start safety: refuses to spawn a duplicate when the port answers or a foreign look-alike runs in the cwd.
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
    const holders = listeningPids(target.port).map((pid) => ({ pid, name: table.processes.get(pid)?.name ?? '?' }));
    throw new PortInUseError(target.id, target.port, holders);
  }
  const table = await snapshot({ cmdline: true });
  const marked = new Set(findMarked(table).keys());
  const lookalikes = findLookalikes(table, { cwd: target.cwd, command: target.command }, marked);
  if (lookalikes.length > 0) {
    throw new ForeignInstanceError(target.id, target.cwd, lookalikes.map((entry) => ({ pid: entry.pid, name: entry.name })));
  }
}
