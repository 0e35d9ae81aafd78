// The building blocks every section schema uses: bounded durations and counts, URLs, and the cross-field guard.
import { isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';

/** Longest delay Node's timers honour (2^31 − 1 ms, about 24.8 days); a longer one would fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;
/** The instance id pattern; ids name log children, registry entries and bundle folders. */
export const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Where A1111 listens for a polite stop, on the health URL's origin. */
export const SERVER_STOP_PATH = '/sdapi/v1/server-stop';
/** What `instances[].port` may be. */
export const PORT_SPEC_ERROR = 'must be a port 1-65535, "auto:LO-HI" (e.g. "auto:7860-7870") or null';
/** Probe timing of a health URL that a profile supplies (the health schema's defaults). */
export const PROFILE_HEALTH_TIMING = { intervalMs: 2000, timeoutMs: 1000, failureThreshold: 3 };
/** How long the polite stop request may take by default. */
export const SERVER_STOP_TIMEOUT_MS = 2000;

// Runs a cross-field rule only when the fields it compares passed their own checks (no noise from a broken field).
export const whenValid = (...fields: string[]) => ({
  when: (payload: z.core.ParsePayload): boolean =>
    isRecord(payload.value) &&
    !payload.issues.some((issue) => {
      if (issue.code === 'unrecognized_keys') return false;
      const path = (issue.path ?? []).map(String).join('.');
      return path === '' || fields.some((field) => path === field || path.startsWith(`${field}.`));
    }),
});

export const duration = (min: number, fallback: number, description: string) =>
  z.int().min(min).max(MAX_TIMER_MS).default(fallback).describe(description);

export const count = (min: number, fallback: number, description: string) =>
  z.int().min(min).default(fallback).describe(description);

export const httpUrl = (description: string) =>
  z
    .url({
      protocol: /^https?$/,
      error: (issue) => (issue.input === undefined ? 'required' : 'must be an http:// or https:// URL'),
    })
    .describe(description);

// True for 127.0.0.0/8, ::1 (also IPv4-mapped 127.x) and localhost: the only hosts the unauthenticated API may use.
export function isLoopback(host: string): boolean {
  const name = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (name === 'localhost') return true;
  if (isIPv4(name)) return name.startsWith('127.');
  const address = name.replace(/%.*$/, ''); // a zone id (`::1%lo`) does not change the address
  if (!isIPv6(address)) return false;
  const normal = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  return normal === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(normal);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
