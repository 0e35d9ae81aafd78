// Warden's configuration: one zod schema is the source of truth for validation, defaults, the TypeScript types and
// the JSON Schema shipped for editors. Every problem is reported as `path: message (got <value>)`, all at once.
import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { DEFAULT_MAX_STOP_ATTEMPTS } from '../machines/instance.machine.js';
import { WardenError } from './process/errors.js';
import { MARKER_VARIABLE } from './process/types.js';
import { AUTO_PORT, parsePortRange } from './port-discovery.js';
import type { PortRange } from './port-discovery.js';
import { PROFILE_DEFINITIONS, WEBUI_PROFILES } from './profiles.js';
import type { WebuiProfile } from './profiles.js';

// ── Output types: what parseConfig returns (every default applied, every path absolute) ─────────────────────────

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

// ── Schema building blocks ────────────────────────────────────────────────────────────────────────────────────

/** Longest delay Node's timers honour (2^31 − 1 ms, about 24.8 days); a longer one would fire at once. */
const MAX_TIMER_MS = 2_147_483_647;
/** The instance id pattern; ids name log children, registry entries and bundle folders. */
const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Where A1111 listens for a polite stop, on the health URL's origin. */
const SERVER_STOP_PATH = '/sdapi/v1/server-stop';
/** What `instances[].port` may be. */
const PORT_SPEC_ERROR = 'must be a port 1-65535, "auto:LO-HI" (e.g. "auto:7860-7870") or null';
/** Probe timing of a health URL that a profile supplies (the health schema's defaults). */
const PROFILE_HEALTH_TIMING = { intervalMs: 2000, timeoutMs: 1000, failureThreshold: 3 };
/** How long the polite stop request may take by default. */
const SERVER_STOP_TIMEOUT_MS = 2000;

// Runs a cross-field rule only when the fields it compares passed their own checks (no noise from a broken field).
const whenValid = (...fields: string[]) => ({
  when: (payload: z.core.ParsePayload): boolean =>
    isRecord(payload.value) &&
    !payload.issues.some((issue) => {
      if (issue.code === 'unrecognized_keys') return false;
      const path = (issue.path ?? []).map(String).join('.');
      return path === '' || fields.some((field) => path === field || path.startsWith(`${field}.`));
    }),
});

const duration = (min: number, fallback: number, description: string) =>
  z.int().min(min).max(MAX_TIMER_MS).default(fallback).describe(description);

const count = (min: number, fallback: number, description: string) =>
  z.int().min(min).default(fallback).describe(description);

const httpUrl = (description: string) =>
  z
    .url({
      protocol: /^https?$/,
      error: (issue) => (issue.input === undefined ? 'required' : 'must be an http:// or https:// URL'),
    })
    .describe(description);

const healthSchema = z
  .strictObject({
    url: httpUrl('URL answered with 2xx once the WebUI is ready, e.g. http://127.0.0.1:7860/internal/ping.'),
    intervalMs: duration(50, 2000, 'Time between two probes, in ms (≥ 50).'),
    timeoutMs: duration(10, 1000, 'How long one probe may take, in ms; must be ≤ intervalMs.'),
    failureThreshold: count(1, 3, 'Consecutive failed probes that make a running instance unhealthy (≥ 1).'),
  })
  .superRefine((health, ctx) => {
    if (health.timeoutMs > health.intervalMs) {
      ctx.addIssue({ code: 'custom', path: ['timeoutMs'], message: 'must be ≤ intervalMs', input: health.timeoutMs });
    }
  }, whenValid('intervalMs', 'timeoutMs'));

const gracefulStopSchema = z.strictObject({
  url: httpUrl(`URL POSTed to ask the WebUI to exit. Default: the health URL's origin + ${SERVER_STOP_PATH}.`).optional(),
  timeoutMs: duration(10, SERVER_STOP_TIMEOUT_MS, 'How long the polite request may take before signals are used, in ms.'),
});

const restartSchema = z
  .strictObject({
    onCrash: z.boolean().default(true).describe('Restart after a crash at all; false sends a crashed instance to `failed`.'),
    baseDelayMs: duration(0, 1000, 'Delay before the first restart, in ms; doubles for each further restart.'),
    maxDelayMs: duration(0, 60000, 'Upper bound of the restart delay, in ms; must be ≥ baseDelayMs.'),
    maxRestarts: count(0, 5, 'At most this many restarts within windowMs; one more crash ends in `failed`.'),
    windowMs: duration(1, 300000, 'The window the restart budget is counted over, in ms.'),
    resetAfterMs: duration(0, 600000, 'After this long running, the restart count and backoff start over, in ms.'),
  })
  .superRefine((restart, ctx) => {
    if (restart.maxDelayMs < restart.baseDelayMs) {
      ctx.addIssue({ code: 'custom', path: ['maxDelayMs'], message: 'must be ≥ baseDelayMs', input: restart.maxDelayMs });
    }
  }, whenValid('baseDelayMs', 'maxDelayMs'));

const envSchema = z.record(z.string(), z.string()).superRefine(
  (env, ctx) => {
    for (const [name, value] of Object.entries(env)) {
      if (name === '' || name.includes('=') || name.includes('\0')) {
        ctx.addIssue({ code: 'custom', path: [name], message: 'is not a valid variable name (empty, or contains "=")', input: value });
      } else if (name.toUpperCase() === MARKER_VARIABLE) {
        ctx.addIssue({ code: 'custom', path: [name], message: 'is reserved: Warden sets it to prove which processes are ours', input: value });
      }
    }
  },
  { when: (payload) => isRecord(payload.value) },
);

const instanceSchema = z
  .strictObject({
    id: z
      .string()
      .regex(INSTANCE_ID, { error: 'must be 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit' })
      .describe('Unique name of the instance (letters, digits, ".", "_", "-"; at most 64).'),
    command: z
      .string()
      .min(1)
      .describe('What to run, without a shell: an executable on PATH, or a path (relative to cwd) such as ./webui.sh.'),
    args: z.array(z.string()).default(() => []).describe('Arguments passed to command, as given (no shell expansion).'),
    cwd: z
      .string()
      .min(1)
      .optional()
      .describe('Working directory; relative to the config file\'s folder. Default: that folder.'),
    env: envSchema.default(() => ({})).describe(`Variables added to the inherited environment (${MARKER_VARIABLE} is reserved).`),
    health: healthSchema
      .nullable()
      .optional()
      .describe('HTTP readiness and liveness probe. Without it the instance is ready once launched and alive while its process runs.'),
    gracefulStop: z
      .union([z.literal(false), z.null(), gracefulStopSchema], {
        error: 'must be an object { url, timeoutMs }, false (disabled) or null',
      })
      .optional()
      .describe(`Polite stop before signals. Default: on when health.url is set (its origin + ${SERVER_STOP_PATH}); false disables.`),
    profile: z
      .enum(WEBUI_PROFILES)
      .default('generic')
      .describe('Which WebUI: a1111, forge, comfyui (default health/readiness URLs, --port, polite stop, restart protocol) or generic (only what this config says).'),
    port: z
      .union([z.int().min(1).max(65535), z.string().regex(AUTO_PORT, { error: PORT_SPEC_ERROR }), z.null()], { error: PORT_SPEC_ERROR })
      .optional()
      .describe('Port the WebUI listens on (start is refused when it already answers), or "auto:LO-HI" to pick the first free one at each start. Default: the port of health.url, else the profile\'s (a1111/forge 7860, comfyui 8188).'),
    launchProfiles: z
      .record(
        z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { error: 'must be 1 to 64 letters, digits, ".", "_" or "-"' }),
        z.strictObject({
          args: z.array(z.string()).describe('The arguments of this launch profile; they replace instances[].args.'),
          env: envSchema.optional().describe('Variables added on top of instances[].env.'),
        }),
      )
      .default(() => ({}))
      .describe('Named argument sets a start may ask for: start(id, { launchProfile: "lowvram" }).'),
    logs: z
      .strictObject({
        maxBytes: count(1024, 10 * 1024 * 1024, 'A log file is rotated to .1 when it would grow past this many bytes (≥ 1024).'),
        keepFiles: count(1, 10, 'How many starts\' log files are kept; older ones are deleted.'),
      })
      .prefault({})
      .describe('Per-start output log files in <stateDir>/logs/<id>/.'),
    startupTimeoutMs: duration(100, 180000, 'From launch to healthy, in ms; longer counts as a failed start.'),
    stopGraceMs: duration(0, 5000, 'Between SIGTERM and SIGKILL when stopping, in ms.'),
    maxStopAttempts: z
      .int()
      .min(1)
      .max(100)
      .default(DEFAULT_MAX_STOP_ATTEMPTS)
      .describe(`Terminate attempts in one stop (the first, then escalated SIGKILL retries) before the instance stops retrying and waits in stopping.stuck, reported with its survivors (1–100; default ${DEFAULT_MAX_STOP_ATTEMPTS}).`),
    restart: restartSchema.prefault({}).describe('Restart after a crash: exponential backoff and a restart budget.'),
    windowsJob: z
      .boolean()
      .default(true)
      .describe('Windows only: run the tree inside a kill-on-close Job Object, so the kernel ends all of it when Warden dies. false: tracker, taskkill and the guard only.'),
    containment: z
      .enum(['auto', 'cgroup', 'subreaper', 'marker'])
      .default('auto')
      .describe('How the kernel holds the tree: cgroup (v2, writable), subreaper (PR_SET_CHILD_SUBREAPER shim), marker (environment marker only); auto picks the first available. An explicit one that is unavailable fails start before anything spawns.'),
  })
  .superRefine(
    (instance, ctx) => {
      const range = typeof instance.port === 'string' ? parsePortRange(instance.port) : undefined;
      if (range !== undefined && (range.from < 1 || range.to > 65535 || range.from > range.to)) {
        ctx.addIssue({ code: 'custom', path: ['port'], message: 'must be "auto:LO-HI" with 1 ≤ LO ≤ HI ≤ 65535', input: instance.port });
      }
      const stop: unknown = instance.gracefulStop;
      if (isRecord(stop) && stop.url === undefined && instance.health == null && (instance.health === null || instance.profile === 'generic')) {
        ctx.addIssue({
          code: 'custom',
          path: ['gracefulStop', 'url'],
          message: 'required when there is no health.url to derive it from',
          input: undefined,
        });
      }
    },
    { when: (payload) => isRecord(payload.value) },
  );

const countLimit = (python: number, shell: number, level: string) =>
  z
    .strictObject({
      python: count(0, python, `${level} when more than this many Python processes are ours.`),
      shell: count(0, shell, `${level} when more than this many shell parents are ours.`),
    })
    .prefault({})
    .describe(`Counts above which the watchdog reaches ${level.toLowerCase()}.`);

// The rule that a critical limit is not below the warning one, for one role.
function atLeastWarning(role: 'python' | 'shell') {
  return (watchdog: { warning: CountLimitConfig; critical: CountLimitConfig }, ctx: z.RefinementCtx) => {
    if (watchdog.critical[role] < watchdog.warning[role]) {
      ctx.addIssue({ code: 'custom', path: ['critical', role], message: `must be ≥ warning.${role}`, input: watchdog.critical[role] });
    }
  };
}

const watchdogSchema = z
  .strictObject({
    sampleIntervalMs: duration(50, 1000, 'How often the process table is sampled, in ms (≥ 50).'),
    warning: countLimit(5, 2, 'Warning'),
    critical: countLimit(10, 3, 'Critical'),
    emergencyWindowMs: duration(50, 300000, 'Emergency when the owned count doubles within this window, in ms; must be ≥ sampleIntervalMs.'),
    calmSamples: count(1, 3, 'Consecutive calmer samples needed before the watchdog steps a level down.'),
  })
  .superRefine(atLeastWarning('python'), whenValid('warning.python', 'critical.python'))
  .superRefine(atLeastWarning('shell'), whenValid('warning.shell', 'critical.shell'))
  .superRefine((watchdog, ctx) => {
    if (watchdog.emergencyWindowMs < watchdog.sampleIntervalMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['emergencyWindowMs'],
        message: 'must be ≥ sampleIntervalMs',
        input: watchdog.emergencyWindowMs,
      });
    }
  }, whenValid('sampleIntervalMs', 'emergencyWindowMs'));

const serverSchema = z.strictObject({
  host: z
    .string()
    .refine(isLoopback, {
      error: 'must be a loopback address (127.0.0.0/8, ::1 or localhost): the control API has no authentication',
    })
    .default('127.0.0.1')
    .meta({
      description: 'Address the control API and dashboard listen on; loopback only (127.0.0.0/8, ::1, localhost).',
      examples: ['127.0.0.1', '::1', 'localhost'],
    }),
  port: z.int().min(0).max(65535).default(7870).describe('Port of the control API; 0 picks a free one.'),
});

// ── The schema ────────────────────────────────────────────────────────────────────────────────────────────────

// The config file's schema (input side: what a user writes); parseConfig adds resolution and derived fields.
export const wardenConfigSchema = z
  .strictObject({
    $schema: z.string().optional().describe('Path or URL of this JSON Schema, for editors; ignored by Warden.'),
    stateDir: z
      .string()
      .min(1)
      .default('.warden')
      .describe('Folder for the lock, the process registry and diagnostic bundles; relative to the config file\'s folder.'),
    instances: z
      .array(instanceSchema)
      .min(1, { error: 'must list at least one instance' })
      .superRefine((instances, ctx) => checkInstanceList(instances, (issue) => ctx.addIssue({ code: 'custom', ...issue })), {
        when: (payload) => Array.isArray(payload.value),
      })
      .describe('The WebUI instances to supervise (at least one; ids and ports unique).'),
    watchdog: watchdogSchema.prefault({}).describe('Process-count watchdog: sampling and thresholds.'),
    server: serverSchema.prefault({}).describe('Control API and dashboard of `warden run`.'),
  })
  .superRefine((config, ctx) => checkServerPort(config, (issue) => ctx.addIssue({ code: 'custom', ...issue })), {
    when: (payload) => isRecord(payload.value),
  })
  .meta({
    title: 'Warden configuration',
    description: 'warden.config.json: the Stable Diffusion WebUI instances Warden supervises, and how.',
  });

// What a config may look like before parsing (every defaulted field optional).
export type WardenConfigInput = z.input<typeof wardenConfigSchema>;

// ── Cross-field rules that span instances (run even when other fields are broken, so all problems show at once) ──

type Report = (issue: { path: PropertyKey[]; message: string; input: unknown }) => void;

interface PortClaim {
  index: number;
  port: number;
  /** Where the port comes from inside the instance: `port`, or `health.url` when derived. */
  from: string;
}

function checkInstanceList(instances: readonly unknown[], report: Report): void {
  const ids = new Map<string, { index: number; id: string }>();
  const ports = new Map<number, PortClaim>();
  instances.forEach((instance, index) => {
    if (!isRecord(instance)) return;
    const id = instance.id;
    if (typeof id === 'string' && INSTANCE_ID.test(id)) {
      const first = ids.get(id.toLowerCase());
      if (!first) ids.set(id.toLowerCase(), { index, id });
      else {
        const message =
          first.id === id
            ? `duplicate id ${JSON.stringify(id)} (also instances[${first.index}].id)`
            : `differs only in case from instances[${first.index}].id ${JSON.stringify(first.id)} (ids name files, and file systems may ignore case)`;
        report({ path: [index, 'id'], message, input: id });
      }
    }
    const claim = portClaim(instance, index);
    if (!claim) return;
    const first = ports.get(claim.port);
    if (!first) ports.set(claim.port, claim);
    else {
      const derived = claim.from === 'port' ? '' : ', derived from this URL';
      report({
        path: [index, ...claim.from.split('.')],
        message: `duplicate port ${claim.port}${derived} (also instances[${first.index}].${first.from})`,
        input: claim.from === 'port' ? claim.port : (instance.health as Record<string, unknown>).url,
      });
    }
  });
}

function checkServerPort(config: unknown, report: Report): void {
  if (!isRecord(config) || !isRecord(config.server) || !Array.isArray(config.instances)) return;
  const port = config.server.port;
  if (typeof port !== 'number' || port === 0) return;
  const clash = config.instances.map((instance, index) => portClaim(instance, index)).find((claim) => claim?.port === port);
  if (!clash) return;
  report({ path: ['server', 'port'], message: `conflicts with instances[${clash.index}].${clash.from}`, input: port });
}

// The port an instance claims: explicit, or derived from its health URL.
function portClaim(instance: unknown, index: number): PortClaim | undefined {
  if (!isRecord(instance)) return undefined;
  const { port, health } = instance;
  if (typeof port === 'number') {
    return Number.isInteger(port) && port >= 1 && port <= 65535 ? { index, port, from: 'port' } : undefined;
  }
  if (typeof port === 'string') return undefined;
  if (port != null || !isRecord(health) || typeof health.url !== 'string') return undefined;
  const derived = portOfUrl(health.url);
  return derived === undefined ? undefined : { index, port: derived, from: 'health.url' };
}

function portOfUrl(url: string): number | undefined {
  try {
    const parsed = new URL(url);
    if (parsed.port) return Number(parsed.port);
    return parsed.protocol === 'https:' ? 443 : parsed.protocol === 'http:' ? 80 : undefined;
  } catch {
    return undefined;
  }
}

// True for 127.0.0.0/8, ::1 (also IPv4-mapped 127.x) and localhost: the only hosts the unauthenticated API may use.
function isLoopback(host: string): boolean {
  const name = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (name === 'localhost') return true;
  if (isIPv4(name)) return name.startsWith('127.');
  const address = name.replace(/%.*$/, ''); // a zone id (`::1%lo`) does not change the address
  if (!isIPv6(address)) return false;
  const normal = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  return normal === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(normal);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ── Messages ──────────────────────────────────────────────────────────────────────────────────────────────────

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'an integer',
  int: 'an integer',
  boolean: 'true or false',
  array: 'an array',
  object: 'an object',
  record: 'an object',
  null: 'null',
};

// Words for zod's issue kinds, used for every issue whose schema does not say it better itself.
const errorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? 'required' : `must be ${TYPE_NAMES[issue.expected] ?? issue.expected}`;
    case 'too_small': {
      const min = Number(issue.minimum);
      if (issue.origin === 'string') return min <= 1 ? 'must not be empty' : `must be at least ${min} characters`;
      if (issue.origin === 'array') return `must have at least ${min} item${min === 1 ? '' : 's'}`;
      return `must be ${issue.inclusive === false ? '>' : '≥'} ${min}`;
    }
    case 'too_big': {
      const max = Number(issue.maximum);
      if (issue.origin === 'string') return `must be at most ${max} characters`;
      if (issue.origin === 'array') return `must have at most ${max} items`;
      return `must be ${issue.inclusive === false ? '<' : '≤'} ${max}`;
    }
    case 'invalid_value':
      return `must be ${issue.values.map((value) => JSON.stringify(value)).join(' or ')}`;
    case 'invalid_format':
      return `must be a valid ${issue.format}`;
    case 'unrecognized_keys':
      return 'unknown key';
    case 'invalid_union':
      return 'has the wrong type';
    case 'invalid_key':
      return 'is not a valid name (1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit)';
    default:
      return undefined;
  }
};

// Turns zod's issues into one ConfigIssue per problem: unknown keys one by one (with a hint), unions flattened.
function toConfigIssues(issues: readonly z.core.$ZodIssue[], input: unknown, prefix: readonly PropertyKey[] = []): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push({ path: formatPath([...path, key]), message: unknownKeyMessage(path, key), received: valueAt(input, [...path, key]) });
      }
      continue;
    }
    if (issue.code === 'invalid_union') {
      // The branch whose type matched holds the useful issues; zod usually flattens this already.
      const matched = issue.errors.filter((branch) => !branch.some((inner) => inner.path.length === 0 && isTypeMismatch(inner)));
      if (matched.length === 1 && matched[0]) {
        out.push(...toConfigIssues(matched[0], input, path));
        continue;
      }
    }
    out.push({ path: formatPath(path), message: issue.message, received: 'input' in issue ? issue.input : valueAt(input, path) });
  }
  return out;
}

// Groups the issues by top-level key (schema order, unknown keys first), then by instance, keeping zod's order inside.
function inInputOrder(issues: ConfigIssue[]): ConfigIssue[] {
  const topLevel = Object.keys(wardenConfigSchema.shape);
  const rank = (issue: ConfigIssue): [number, number] => {
    const match = /^([^.[]+)(?:\[(\d+)\])?/.exec(issue.path);
    return [topLevel.indexOf(match?.[1] ?? ''), Number(match?.[2] ?? -1)];
  };
  return issues
    .map((issue, index) => ({ issue, index, rank: rank(issue) }))
    .sort((a, b) => a.rank[0] - b.rank[0] || a.rank[1] - b.rank[1] || a.index - b.index)
    .map(({ issue }) => issue);
}

function isTypeMismatch(issue: z.core.$ZodIssue): boolean {
  return issue.code === 'invalid_type' || issue.code === 'invalid_value' || issue.code === 'invalid_union';
}

function unknownKeyMessage(path: readonly PropertyKey[], key: string): string {
  const known = keysAt(path);
  const hint = closest(key, known);
  if (hint) return `unknown key (did you mean ${JSON.stringify(hint)}?)`;
  return known.length > 0 ? `unknown key (allowed: ${known.join(', ')})` : 'unknown key';
}

// The keys the schema allows at a path of the input (for "did you mean").
function keysAt(path: readonly PropertyKey[]): string[] {
  let node: z.ZodType | undefined = wardenConfigSchema;
  for (const segment of path) {
    const current: z.ZodType = unwrap(node);
    if (current instanceof z.ZodObject) node = (current.shape as Record<string, z.ZodType>)[String(segment)];
    else if (current instanceof z.ZodArray) node = current.element as z.ZodType;
    else if (current instanceof z.ZodRecord) node = current.valueType as z.ZodType;
    else node = undefined;
    if (!node) return [];
  }
  const target = unwrap(node);
  return target instanceof z.ZodObject ? Object.keys(target.shape) : [];
}

function unwrap(node: z.ZodType): z.ZodType {
  let current = node;
  for (;;) {
    if (
      current instanceof z.ZodDefault ||
      current instanceof z.ZodPrefault ||
      current instanceof z.ZodOptional ||
      current instanceof z.ZodNullable
    ) {
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodUnion) {
      const options = current.options as readonly z.ZodType[];
      const object = options.map((option) => unwrap(option)).find((option) => option instanceof z.ZodObject);
      return object ?? current;
    } else {
      return current;
    }
  }
}

// The known key closest to a mistyped one (case slip or a couple of typos), if any is close enough.
function closest(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const sameLetters = known.find((candidate) => candidate.toLowerCase() === lower);
  if (sameLetters) return sameLetters;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.min(3, Math.floor(best.length / 4))) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      row.push(Math.min((previous[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, substitution));
    }
    previous = row;
  }
  return previous[b.length] ?? 0;
}

// `instances[0].restart.maxDelayMs`; keys that are not identifiers are quoted: `env["MY VAR"]`.
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else {
      const key = String(segment);
      out += /^[A-Za-z_$][\w$]*$/.test(key) ? `${out ? '.' : ''}${key}` : `[${JSON.stringify(key)}]`;
    }
  }
  return out || '(root)';
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current = input;
  for (const segment of path) {
    if (Array.isArray(current) && typeof segment === 'number') current = current[segment];
    else if (isRecord(current) && typeof segment === 'string' && Object.hasOwn(current, segment)) current = current[segment];
    else return undefined;
  }
  return current;
}

// The received value as JSON, shortened; `undefined` (a missing field) has no JSON and is written as such.
export function formatReceived(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

// ── Errors ────────────────────────────────────────────────────────────────────────────────────────────────────

// A config that cannot be used: `issues` lists every bad field (empty when the file itself is missing or not JSON).
export class ConfigError extends WardenError {
  readonly issues: ConfigIssue[];
  /** The config file, when the config came from one. */
  readonly file: string | undefined;
  constructor(message: string, issues: ConfigIssue[] = [], options: { file?: string; cause?: unknown } = {}) {
    super('CONFIG_INVALID', message, options.cause === undefined ? undefined : { cause: options.cause });
    this.issues = issues;
    this.file = options.file;
  }
}

// ── Parsing and loading ───────────────────────────────────────────────────────────────────────────────────────

/** Options of parseConfig. */
export interface ParseConfigOptions {
  /** Relative `stateDir` and `cwd` resolve against this folder. Default: `process.cwd()`. */
  baseDir?: string;
  /** Where the config came from (a file name), for the error message. */
  source?: string;
}

// Validates a config and returns it fully defaulted and resolved; throws a ConfigError listing every problem.
export function parseConfig(input: unknown, options: ParseConfigOptions = {}): WardenConfig {
  const result = wardenConfigSchema.safeParse(input, { error: errorMap, reportInput: true });
  if (!result.success) {
    const issues = inInputOrder(toConfigIssues(result.error.issues, input));
    const count = `${issues.length} problem${issues.length === 1 ? '' : 's'}`;
    const head = `Invalid Warden config${options.source ? ` in ${options.source}` : ''}: ${count}`;
    const lines = issues.map((issue) => `${issue.path}: ${issue.message} (got ${formatReceived(issue.received)})`);
    throw new ConfigError([head, ...lines].join('\n'), issues, options.source ? { file: options.source } : {});
  }
  return resolveConfig(result.data, resolve(options.baseDir ?? process.cwd()));
}

// Reads and validates a JSON config file; relative paths in it resolve against the file's folder.
export async function loadConfigFile(path: string): Promise<WardenConfig> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`Config file ${file} ${readFailure(error)}`, [], { file, cause: error });
  }
  text = text.replace(/^\uFEFF/, '');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`Config file ${file} is not valid JSON ${describeJsonError(text, error)}`, [], { file, cause: error });
  }
  return parseConfig(json, { baseDir: dirname(file), source: file });
}

function readFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EISDIR') return 'is a directory, not a file';
  if (code === 'EACCES' || code === 'EPERM') return 'cannot be read (permission denied)';
  return `cannot be read: ${error instanceof Error ? error.message : String(error)}`;
}

// `at line 3, column 12: Unexpected token 'x'`, then the line and a caret under the column.
function describeJsonError(text: string, error: unknown): string {
  const reason = (error instanceof Error ? error.message : String(error))
    .replace(/ in JSON at position \d+.*$/s, '')
    .replace(/, .*is not valid JSON$/s, '');
  const offset = jsonErrorOffset(text) ?? Number(/at position (\d+)/.exec(String(error))?.[1] ?? text.length);
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const lineStart = before.lastIndexOf('\n') + 1;
  const column = offset - lineStart + 1;
  if (text.trim() === '') return `at line ${line}, column ${column}: the file is empty`;
  const source = (text.slice(lineStart).split('\n')[0] ?? '').replace(/\r$/, '').replace(/\t/g, ' ');
  const gutter = `${line} | `;
  const shown = column > 100 ? `…${source.slice(column - 60, column + 40)}` : source.slice(0, 140);
  const caret = column > 100 ? 61 : column;
  return [
    `at line ${line}, column ${column}: ${reason}`,
    `${gutter}${shown}`,
    `${' '.repeat(gutter.length - 2)}| ${' '.repeat(caret - 1)}^`,
  ].join('\n');
}

// Offset of the first character that makes `text` invalid JSON (V8 does not always say), or undefined if valid.
function jsonErrorOffset(text: string): number | undefined {
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  let i = 0;
  const fail = (at = i): never => {
    throw new JsonSyntaxAt(at);
  };
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i] ?? '')) i++;
  };
  const string = () => {
    i++;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) return void i++;
      if (c < 0x20) fail();
      if (c === 0x5c) {
        const next = text[i + 1] ?? '';
        if (next === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
        else if (next !== '' && next !== 'u' && '"\\/bfnrt'.includes(next)) i += 2;
        else fail(i + 1);
      } else i++;
    }
    fail();
  };
  const value = (): void => {
    space();
    const c = text[i];
    if (c === '{') {
      i++;
      space();
      if (text[i] === '}') return void i++;
      for (;;) {
        space();
        if (text[i] !== '"') fail();
        string();
        space();
        if (text[i] !== ':') fail();
        i++;
        value();
        space();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return void i++;
        else fail();
      }
    }
    if (c === '[') {
      i++;
      space();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        space();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return void i++;
        else fail();
      }
    }
    if (c === '"') return string();
    for (const word of ['true', 'false', 'null']) {
      if (c === word[0]) return void (text.startsWith(word, i) ? (i += word.length) : fail());
    }
    NUMBER.lastIndex = i;
    const number = NUMBER.exec(text);
    if (!number) fail();
    else i += number[0].length;
  };
  try {
    value();
    space();
    if (i < text.length) fail();
    return undefined;
  } catch (error) {
    if (error instanceof JsonSyntaxAt) return error.offset;
    throw error;
  }
}

class JsonSyntaxAt {
  constructor(readonly offset: number) {}
}

// ── Resolution: defaults derived from other fields, absolute paths ──────────────────────────────────────────────

type ParsedConfig = z.output<typeof wardenConfigSchema>;
type ParsedInstance = ParsedConfig['instances'][number];

function resolveConfig(parsed: ParsedConfig, baseDir: string): WardenConfig {
  const { watchdog, server } = parsed;
  return {
    stateDir: resolve(baseDir, parsed.stateDir),
    instances: parsed.instances.map((instance) => resolveInstance(instance, baseDir)),
    watchdog: {
      sampleIntervalMs: watchdog.sampleIntervalMs,
      warning: { python: watchdog.warning.python, shell: watchdog.warning.shell },
      critical: { python: watchdog.critical.python, shell: watchdog.critical.shell },
      emergencyWindowMs: watchdog.emergencyWindowMs,
      calmSamples: watchdog.calmSamples,
    },
    server: { host: server.host, port: server.port },
  };
}

function resolveInstance(instance: ParsedInstance, baseDir: string): InstanceConfig {
  const profile = PROFILE_DEFINITIONS[instance.profile];
  const portRange = typeof instance.port === 'string' ? (parsePortRange(instance.port) ?? null) : null;
  const fixedPort = typeof instance.port === 'number' ? instance.port : null;
  // A profile's health URL is built from the port (a range's first port; each start substitutes its own).
  const profilePort = fixedPort ?? portRange?.from ?? (instance.health ? null : profile.defaultPort);
  let health = instance.health ? { ...instance.health } : null;
  if (instance.health === undefined && profile.healthPath !== null && profilePort !== null) {
    health = { url: `http://127.0.0.1:${profilePort}${profile.healthPath}`, ...PROFILE_HEALTH_TIMING };
  }
  const stop = instance.gracefulStop;
  const origin = health ? new URL(health.url).origin : undefined;
  // Generic keeps the historical default (A1111's server-stop whenever there is a health URL); a profile says it.
  const stopPath = instance.profile === 'generic' ? SERVER_STOP_PATH : profile.gracefulStopPath;
  let gracefulStop: GracefulStopConfig | null = null;
  if (stop === undefined && origin && stopPath !== null) gracefulStop = { url: origin + stopPath, timeoutMs: SERVER_STOP_TIMEOUT_MS };
  else if (stop) gracefulStop = { url: stop.url ?? `${origin ?? ''}${SERVER_STOP_PATH}`, timeoutMs: stop.timeoutMs };
  const launchProfiles: Record<string, LaunchProfileConfig> = {};
  for (const [name, entry] of Object.entries(instance.launchProfiles)) launchProfiles[name] = { args: [...entry.args], env: { ...entry.env } };
  return {
    id: instance.id,
    profile: instance.profile,
    command: instance.command,
    args: [...instance.args],
    cwd: resolve(baseDir, instance.cwd ?? '.'),
    env: { ...instance.env },
    health,
    gracefulStop,
    port: portRange !== null ? (`auto:${portRange.from}-${portRange.to}` as AutoPort) : (fixedPort ?? (health ? (portOfUrl(health.url) ?? null) : profile.defaultPort)),
    launchProfiles,
    logs: { maxBytes: instance.logs.maxBytes, keepFiles: instance.logs.keepFiles },
    startupTimeoutMs: instance.startupTimeoutMs,
    stopGraceMs: instance.stopGraceMs,
    maxStopAttempts: instance.maxStopAttempts,
    restart: { ...instance.restart },
    windowsJob: instance.windowsJob,
    containment: instance.containment,
  };
}

// ── JSON Schema ───────────────────────────────────────────────────────────────────────────────────────────────

// The config file's JSON Schema (draft 2020-12), generated from wardenConfigSchema; shipped for editors.
export function configJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(wardenConfigSchema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' });
  const { $schema, title, description, ...rest } = generated as Record<string, unknown>;
  return { $schema, title, description, ...rest };
}
