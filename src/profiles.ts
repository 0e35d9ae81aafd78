// WebUI profiles: what Warden knows about A1111, Forge and ComfyUI (health and readiness URLs, the port flag, the
// polite stop, the restart protocol), and the launch plan of one start built from the config, a port and overrides.
import { WardenError } from './errors.js';
import { probeHealth } from './health.js';
import type { ProbeResult } from './health.js';

/** The WebUI kinds Warden knows; `generic` knows nothing (today's behaviour: only what the config says). */
export const WEBUI_PROFILES = ['a1111', 'forge', 'comfyui', 'generic'] as const;
/** One of WEBUI_PROFILES. */
export type WebuiProfile = (typeof WEBUI_PROFILES)[number];

/** What a profile supplies by default. */
export interface ProfileDefinition {
  /** The app's own default port, used when the config names no port and no health URL. */
  defaultPort: number | null;
  /** Liveness (and the first readiness step): GET answered with 2xx. */
  healthPath: string | null;
  /** Ready only when every one of these answers too. */
  readyPaths: string[];
  /** A line that also proves readiness, unless the launch asked for the API (then the API must answer). */
  readyLine: RegExp | null;
  /** Launch flags that make the API paths the only proof (the line is printed before the API is mounted). */
  apiFlags: string[];
  /** The first line of a (re)launched Python: the app restarts itself in place (A1111's tmp/restart loop). */
  relaunchLine: RegExp | null;
  /** POSTed to ask the app to exit before any signal. */
  gracefulStopPath: string | null;
  /** The app's port flag; appended with the instance's port unless the args carry it already. */
  portFlag: string | null;
  /** Added to the environment of launches that are restarts (no second browser tab from --autolaunch). */
  restartEnv: Record<string, string>;
}

const A1111: ProfileDefinition = {
  defaultPort: 7860,
  healthPath: '/internal/ping',
  readyPaths: ['/sdapi/v1/options', '/sdapi/v1/sd-models'],
  // Gradio's line, printed by A1111 and Forge: "Running on local URL:  http://127.0.0.1:7860".
  readyLine: /Running on local URL:/,
  apiFlags: ['--api', '--nowebui'],
  // launch_utils.start() prints this first, in every Python the wrapper (re)launches.
  relaunchLine: /^Launching Web UI with arguments:/,
  gracefulStopPath: '/sdapi/v1/server-stop',
  portFlag: '--port',
  restartEnv: { SD_WEBUI_RESTARTING: '1' },
};

/** The profiles by name. */
export const PROFILE_DEFINITIONS: Readonly<Record<WebuiProfile, ProfileDefinition>> = {
  a1111: A1111,
  forge: A1111,
  comfyui: {
    defaultPort: 8188,
    healthPath: '/system_stats',
    readyPaths: ['/object_info'],
    readyLine: null,
    apiFlags: [],
    relaunchLine: null,
    gracefulStopPath: null,
    portFlag: '--port',
    restartEnv: {},
  },
  generic: {
    defaultPort: null,
    healthPath: null,
    readyPaths: [],
    readyLine: null,
    apiFlags: [],
    relaunchLine: null,
    gracefulStopPath: null,
    portFlag: null,
    restartEnv: {},
  },
};

/** The variable that tells any app (every profile) which port Warden picked for it. */
export const PORT_VARIABLE = 'WARDEN_PORT';

/** Per-start overrides: `args` replace the configured args; a launch profile brings args and env. */
export interface StartOverrides {
  args?: readonly string[];
  launchProfile?: string;
}

/** What the plan needs from an instance's config. */
export interface PlanInput {
  profile: WebuiProfile;
  args: readonly string[];
  env: Readonly<Record<string, string>>;
  health: { url: string } | null;
  gracefulStop: { url: string } | null;
  launchProfiles: Readonly<Record<string, { args: readonly string[]; env: Readonly<Record<string, string>> }>>;
}

/** One start, fully decided: argv, env, port and the URLs that follow the port. */
export interface LaunchPlan {
  args: string[];
  env: Record<string, string>;
  port: number | null;
  /** The app's origin, e.g. `http://127.0.0.1:7861`, when a port or health URL is known. */
  url: string | null;
  healthUrl: string | null;
  readyUrls: string[];
  /** The readiness line counts (no API flag in the args). */
  readyLine: RegExp | null;
  relaunchLine: RegExp | null;
  stopUrl: string | null;
  launchProfile: string | null;
}

// A user mistake in a start's overrides (unknown launch profile), refused before anything is spawned.
export class LaunchOverrideError extends WardenError {
  constructor(readonly instanceId: string, readonly launchProfile: string, readonly known: string[]) {
    super('UNKNOWN_LAUNCH_PROFILE', `Unknown launch profile "${launchProfile}" for "${instanceId}" (known: ${known.length > 0 ? known.join(', ') : 'none; configure instances[].launchProfiles'}).`);
  }
}

// Throws LaunchOverrideError when `overrides` names a launch profile the instance does not have.
export function checkOverrides(instanceId: string, input: Pick<PlanInput, 'launchProfiles'>, overrides: StartOverrides | undefined): void {
  const name = overrides?.launchProfile;
  if (name !== undefined && !Object.hasOwn(input.launchProfiles, name)) {
    throw new LaunchOverrideError(instanceId, name, Object.keys(input.launchProfiles));
  }
}

// Builds one start's plan. `port` is the port of this start (fixed or discovered), null when unknown; only a
// `discovered` one (from an auto range) replaces the port of the configured URLs, which name it otherwise.
export function planLaunch(
  instanceId: string,
  input: PlanInput,
  port: number | null,
  overrides: StartOverrides | undefined,
  restarting: boolean,
  discovered = false,
): LaunchPlan {
  checkOverrides(instanceId, input, overrides);
  const definition = PROFILE_DEFINITIONS[input.profile];
  const chosen = overrides?.launchProfile === undefined ? undefined : input.launchProfiles[overrides.launchProfile];
  const args = [...(overrides?.args ?? chosen?.args ?? input.args)];
  const env: Record<string, string> = { ...input.env, ...chosen?.env };
  if (port !== null) {
    env[PORT_VARIABLE] = String(port);
    if (definition.portFlag !== null && !hasFlag(args, definition.portFlag)) args.push(definition.portFlag, String(port));
  }
  if (restarting) Object.assign(env, definition.restartEnv);
  const urlPort = discovered ? port : null;
  const healthUrl = input.health === null ? null : withPort(input.health.url, urlPort);
  const origin = port !== null ? `http://${healthUrl === null ? '127.0.0.1' : new URL(healthUrl).hostname}:${port}` : healthUrl !== null ? new URL(healthUrl).origin : null;
  const apiAsked = definition.apiFlags.some((flag) => hasFlag(args, flag));
  return {
    args,
    env,
    port,
    url: origin,
    healthUrl,
    readyUrls: origin === null ? [] : definition.readyPaths.map((path) => origin + path),
    readyLine: apiAsked ? null : definition.readyLine,
    relaunchLine: definition.relaunchLine,
    stopUrl: input.gracefulStop === null ? null : withPort(input.gracefulStop.url, urlPort),
    launchProfile: overrides?.launchProfile ?? null,
  };
}

// Whether argv carries `--flag` or `--flag=value`.
function hasFlag(args: readonly string[], flag: string): boolean {
  return args.some((arg) => arg === flag || arg.startsWith(`${flag}=`));
}

// The URL with its port replaced by `port` (a discovered port; the configured URL names the path and host).
function withPort(url: string, port: number | null): string {
  if (port === null) return url;
  const parsed = new URL(url);
  parsed.port = String(port);
  return parsed.toString();
}

// Readiness beyond liveness: every ready URL answers, or (no API asked) the ready line was printed.
export async function probeReadiness(plan: LaunchPlan, lineSeen: boolean, timeoutMs: number): Promise<ProbeResult> {
  if (plan.readyUrls.length === 0) return { ok: true, durationMs: 0 };
  if (lineSeen && plan.readyLine !== null) return { ok: true, durationMs: 0 };
  const started = performance.now();
  for (const url of plan.readyUrls) {
    const result = await probeHealth(url, timeoutMs);
    if (!result.ok) return { ...result, durationMs: performance.now() - started };
  }
  return { ok: true, durationMs: performance.now() - started };
}
