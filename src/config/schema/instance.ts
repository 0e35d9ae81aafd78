// The schema of one `instances[]` entry: command, health, graceful stop, restart policy, env, logs, ports, containment.
import { z } from 'zod';
import { DEFAULT_MAX_STOP_ATTEMPTS } from '../../../machines/instance.machine.js';
import { MARKER_VARIABLE } from '../../process/types.js';
import { AUTO_PORT, parsePortRange } from '../../port-discovery.js';
import { WEBUI_PROFILES } from '../../profiles.js';
import { INSTANCE_ID, PORT_SPEC_ERROR, SERVER_STOP_PATH, SERVER_STOP_TIMEOUT_MS, count, duration, httpUrl, isRecord, whenValid } from './common.js';

export const healthSchema = z
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

export const gracefulStopSchema = z.strictObject({
  url: httpUrl(`URL POSTed to ask the WebUI to exit. Default: the health URL's origin + ${SERVER_STOP_PATH}.`).optional(),
  timeoutMs: duration(10, SERVER_STOP_TIMEOUT_MS, 'How long the polite request may take before signals are used, in ms.'),
});

export const restartSchema = z
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

export const envSchema = z.record(z.string(), z.string()).superRefine(
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

export const instanceSchema = z
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
