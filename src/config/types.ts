// What parseConfig returns: every default applied, every path absolute.

import { parsePortRange } from '../port-discovery.js';
import type { PortRange } from '../port-discovery.js';
import type { WebuiProfile } from '../profiles.js';

/** HTTP probe of a running WebUI: readiness during startup, liveness while running. */
export interface HealthConfig {
  url: string;
  intervalMs: number;
  timeoutMs: number;
  failureThreshold: number;
}

/** The polite stop asked before any signal (A1111's `POST /sdapi/v1/server-stop`). */
export interface GracefulStopConfig {
  url: string;
  timeoutMs: number;
}

/** Crash restarts: exponential backoff and a budget of `maxRestarts` per `windowMs`. */
export interface RestartConfig {
  onCrash: boolean;
  baseDelayMs: number;
  maxDelayMs: number;
  maxRestarts: number;
  windowMs: number;
  resetAfterMs: number;
}

/** A port range as the config spells it: each start picks the first free port from LO to HI. */
export type AutoPort = `auto:${number}-${number}`;

// The range of a `port: "auto:LO-HI"` instance; null for a fixed or unknown port.
export function portRangeOf(instance: Pick<InstanceConfig, 'port'>): PortRange | null {
  return typeof instance.port === 'string' ? (parsePortRange(instance.port) ?? null) : null;
}

/** Named argv (and env) a start may ask for: `start(id, { launchProfile })`. */
export interface LaunchProfileConfig {
  args: string[];
  env: Record<string, string>;
}

/** Per-start output log files: rotated to `.1` past `maxBytes`, the newest `keepFiles` starts kept. */
export interface LogsConfig {
  maxBytes: number;
  keepFiles: number;
}

/** One supervised WebUI, resolved: `cwd` is absolute, `port` is derived from `health.url` when not given. */
export interface InstanceConfig {
  id: string;
  /** Which WebUI this is: its default health/readiness URLs, port flag, polite stop and restart protocol. */
  profile: WebuiProfile;
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** `null`: no probe; the instance is ready once launched and alive while its process runs. */
  health: HealthConfig | null;
  /** `null`: disabled (set `false`), or not configurable (no `health.url` to derive it from). */
  gracefulStop: GracefulStopConfig | null;
  /**
   * `null`: unknown, so the start-time "port already answers" check is skipped. `"auto:LO-HI"`: each start picks the
   * first free port of the range (portRangeOf() reads it).
   */
  port: number | AutoPort | null;
  launchProfiles: Record<string, LaunchProfileConfig>;
  logs: LogsConfig;
  startupTimeoutMs: number;
  stopGraceMs: number;
  /** Terminate attempts in one stop before the instance gives up retrying and waits in `stopping.stuck` (1–100). */
  maxStopAttempts: number;
  restart: RestartConfig;
  /** Windows only: run the tree inside a kill-on-close Job Object (through Warden's job launcher). */
  windowsJob: boolean;
  /** POSIX: how the kernel holds the tree (src/process/containment.ts); `auto` picks the strongest available. */
  containment: 'auto' | 'cgroup' | 'subreaper' | 'marker';
}

/** Process-count limits; a level is reached when either count is above its limit. */
export interface CountLimitConfig {
  python: number;
  shell: number;
}

/** The watchdog's sampling and thresholds. */
export interface WatchdogConfig {
  sampleIntervalMs: number;
  warning: CountLimitConfig;
  critical: CountLimitConfig;
  emergencyWindowMs: number;
  calmSamples: number;
}

/** The control API and dashboard (loopback only). `port` 0 picks a free port. */
export interface ServerConfig {
  host: string;
  port: number;
}

/** A validated Warden config: fully defaulted, `stateDir` and every `cwd` absolute. */
export interface WardenConfig {
  stateDir: string;
  instances: InstanceConfig[];
  watchdog: WatchdogConfig;
  server: ServerConfig;
}

/** One problem found in a config: where (`instances[0].restart.maxDelayMs`), what, and the value received. */
export interface ConfigIssue {
  path: string;
  message: string;
  received: unknown;
}
