// The diagnostic bundle: what an operator needs after an emergency, written as JSON files under stateDir/bundles/.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProcessTable } from './process/index.js';

/** Everything a bundle holds; each field becomes one JSON file. */
export interface BundleContents {
  reason: string;
  table: ProcessTable;
  machines: unknown;
  events: unknown[];
  config: unknown;
  logTail: string[];
}

// Writes a bundle to `<stateDir>/bundles/<timestamp>/` (complete or not at all: written aside, then renamed).
export async function writeDiagnosticBundle(stateDir: string, contents: BundleContents, now = new Date()): Promise<string> {
  const bundles = join(stateDir, 'bundles');
  const name = now.toISOString().replace(/[:.]/g, '-');
  const final = join(bundles, name);
  const partial = join(bundles, `.${name}.partial`);
  await mkdir(partial, { recursive: true, mode: 0o700 });
  const files: Record<string, unknown> = {
    'summary.json': { reason: contents.reason, writtenAt: now.toISOString(), processCount: contents.table.processes.size, pid: process.pid },
    'process-table.json': { backend: contents.table.backend, takenAt: contents.table.takenAt, processes: [...contents.table.processes.values()] },
    'machines.json': contents.machines,
    'events.json': contents.events,
    'config.json': contents.config,
    'log-tail.json': contents.logTail,
  };
  await Promise.all(Object.entries(files).map(([file, value]) => writeFile(join(partial, file), `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 })));
  await rename(partial, final);
  return final;
}
