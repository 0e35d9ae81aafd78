// What the CLI reads from a state directory without changing it: the lock holder, the registry, the server file.
import { closeSync, constants, existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfigFile } from '../config/index.js';
import type { WardenConfig } from '../config/index.js';
import { identityHoldsNow } from '../process/identity.js';
import { openNoFollowSync } from '../process/state/statedir.js';
import type { LaunchRecord } from '../process/state/registry.js';
import { CliError, EXIT } from './exit.js';

/** The state directory used without `--config` or `--state-dir`: `.warden` in the current directory. */
export const DEFAULT_STATE_DIR = '.warden';

/** Where a command looks: the config (if any) and the state directory it resolves to. */
export interface Target {
  config: WardenConfig | undefined;
  /** The config file, absolute, when one was given. */
  configFile: string | undefined;
  stateDir: string;
  /** How the state directory was chosen, for messages. */
  from: 'config' | 'flag' | 'default';
}

// Loads `--config` (ConfigError → exit 64) or falls back to `--state-dir`, then `.warden` in the current directory.
export async function resolveTarget(options: { config?: string; stateDir?: string }): Promise<Target> {
  if (options.config !== undefined) {
    const config = await loadConfigFile(options.config);
    if (options.stateDir !== undefined && resolve(options.stateDir) !== config.stateDir) {
      throw new CliError(`--state-dir ${options.stateDir} contradicts the config's stateDir ${config.stateDir}; give one of them`, EXIT.usage);
    }
    return { config, configFile: resolve(options.config), stateDir: config.stateDir, from: 'config' };
  }
  if (options.stateDir !== undefined) return { config: undefined, configFile: undefined, stateDir: resolve(options.stateDir), from: 'flag' };
  return { config: undefined, configFile: undefined, stateDir: resolve(DEFAULT_STATE_DIR), from: 'default' };
}

/** The supervisor named in `<stateDir>/supervisor.lock`, and whether it still runs. */
export interface LockHolderInfo {
  pid: number;
  startTime: number | undefined;
  hostname: string;
  startedAt: string;
  /** `live`: that exact process runs here; `dead`: it exited or its pid was reused; `unknown`: another host. */
  status: 'live' | 'dead' | 'unknown';
}

// Reads the lock file without taking it; undefined when there is none (or it is unreadable: a half-written file).
export function readLockHolder(stateDir: string): LockHolderInfo | undefined {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(join(stateDir, 'supervisor.lock'), 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.pid !== 'number' || !Number.isInteger(v.pid) || v.pid <= 0 || typeof v.hostname !== 'string') return undefined;
  const startTime = typeof v.startTime === 'number' ? v.startTime : undefined;
  const local = v.hostname === hostname();
  const alive = local && identityHoldsNow({ pid: v.pid, startTime, clock: 'proc' });
  return {
    pid: v.pid,
    startTime,
    hostname: v.hostname,
    startedAt: typeof v.startedAt === 'string' ? v.startedAt : '?',
    status: !local ? 'unknown' : alive ? 'live' : 'dead',
  };
}

// The registry's records, read-only (the supervisor's Registry.open may create, clean or move files; audit must not).
export function readRegistryRecords(stateDir: string): { records: LaunchRecord[]; problem: string | undefined } {
  const path = join(stateDir, 'registry.json');
  if (!existsSync(path)) return { records: [], problem: undefined };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    return { records: [], problem: `${path} is not readable JSON (${(error as Error).message})` };
  }
  const records = (parsed as { records?: unknown } | null)?.records;
  if (!Array.isArray(records)) return { records: [], problem: `${path} has no "records" list` };
  const valid = records.filter(
    (record): record is LaunchRecord =>
      typeof record === 'object' &&
      record !== null &&
      typeof (record as LaunchRecord).marker === 'string' &&
      typeof (record as LaunchRecord).instanceId === 'string' &&
      typeof (record as LaunchRecord).root?.pid === 'number',
  );
  const problem = valid.length === records.length ? undefined : `${path}: ${records.length - valid.length} malformed record(s) ignored`;
  return { records: valid, problem };
}

/** What `warden run`'s control server leaves in the state directory for `warden status`. */
export interface ServerInfo {
  url: string;
  pid: number | undefined;
  token: string | undefined;
}

// Reads `<stateDir>/server.json` ({ url, pid }) and `<stateDir>/token`; undefined when no server file exists.
export function readServerInfo(stateDir: string): ServerInfo | undefined {
  const file = join(stateDir, 'server.json');
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(`${file} is unreadable (${(error as Error).message}); is a \`warden run\` starting right now?`, EXIT.unavailable);
  }
  const v = (value ?? {}) as Record<string, unknown>;
  if (typeof v.url !== 'string') throw new CliError(`${file} has no "url"`, EXIT.unavailable);
  let token: string | undefined;
  try {
    // Never through a symlink: the token is only read from the state directory's own file.
    const fd = openNoFollowSync(join(stateDir, 'token'), constants.O_RDONLY);
    try {
      token = readFileSync(fd, 'utf8').trim();
    } finally {
      closeSync(fd);
    }
  } catch {
    token = undefined;
  }
  return { url: v.url.replace(/\/+$/, ''), pid: typeof v.pid === 'number' ? v.pid : undefined, token };
}
