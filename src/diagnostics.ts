// The diagnostic bundle: what an operator needs after an emergency, written as JSON files under stateDir/bundles/.
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
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

/** How many bundles are kept, and for how long: an emergency loop must not fill the disk. */
export interface BundleRetention {
  /** Newest bundles kept. Default 20. */
  keep?: number;
  /** Bundles older than this are deleted. Default 30 days. */
  maxAgeMs?: number;
}

const BUNDLE_NAME = /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/;
const PARTIAL_NAME = /^\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z\.partial$/;
const SECRET_KEY = /token|secret|passw|key|auth|cookie|credential/i;
const REDACTED = '[redacted]';

// The config as a bundle may show it: every environment value and every secret-looking field replaced, keys kept
// (a bundle is attached to bug reports; HF_TOKEN or an API key in an instance's env must not travel with it).
export function redactConfig(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((entry) => redactConfig(entry));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [field, inner] of Object.entries(value)) {
      if (field === 'env' && typeof inner === 'object' && inner !== null && !Array.isArray(inner)) {
        out[field] = Object.fromEntries(Object.keys(inner).map((name) => [name, REDACTED]));
      } else {
        out[field] = redactConfig(inner, field);
      }
    }
    return out;
  }
  return typeof value === 'string' && SECRET_KEY.test(key) ? REDACTED : value;
}

// Deletes bundles beyond the newest `keep` and older than `maxAgeMs`, and partial ones a crashed writer left
// (over an hour old). Only names Warden writes are touched; anything else in bundles/ stays.
export async function pruneBundles(stateDir: string, retention: BundleRetention = {}, now = new Date()): Promise<string[]> {
  const keep = retention.keep ?? 20;
  const maxAgeMs = retention.maxAgeMs ?? 30 * 24 * 3600 * 1000;
  const bundles = join(stateDir, 'bundles');
  let names: string[];
  try {
    names = await readdir(bundles);
  } catch {
    return [];
  }
  const removed: string[] = [];
  const complete = names.filter((name) => BUNDLE_NAME.test(name)).sort().reverse();
  for (const [index, name] of complete.entries()) {
    const path = join(bundles, name);
    // The name is the time it was written (…T21-06-06-123Z → …T21:06:06.123Z).
    const writtenAt = Date.parse(name.replace(/T(\d\d)-(\d\d)-(\d\d)-(\d{3})Z$/, 'T$1:$2:$3.$4Z'));
    if (index >= keep || now.getTime() - writtenAt > maxAgeMs) {
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  for (const name of names.filter((candidate) => PARTIAL_NAME.test(candidate))) {
    const path = join(bundles, name);
    const info = await stat(path).catch(() => undefined);
    if (info !== undefined && now.getTime() - info.mtimeMs > 3600 * 1000) {
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  return removed;
}

// Writes a bundle to `<stateDir>/bundles/<timestamp>/` (complete or not at all: written aside, then renamed),
// then prunes old ones. The config goes through redactConfig.
export async function writeDiagnosticBundle(stateDir: string, contents: BundleContents, now = new Date(), retention: BundleRetention = {}): Promise<string> {
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
    'config.json': redactConfig(contents.config),
    'log-tail.json': contents.logTail,
  };
  await Promise.all(Object.entries(files).map(([file, value]) => writeFile(join(partial, file), `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 })));
  await rename(partial, final);
  await pruneBundles(stateDir, retention, now);
  return final;
}
