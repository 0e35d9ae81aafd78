// Restart policy as pure functions: the backoff delay and the restart budget (no clock, no I/O).
import type { RestartPolicy } from './types.js';

/** Default jitter: up to 10 % taken off each delay. */
export const DEFAULT_JITTER = 0.1;

// A small, fast 32-bit PRNG: the same seed always gives the same sequence.
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A stable 32-bit seed from an instance id (FNV-1a), so two instances never share a jitter sequence.
export function seedFromId(id: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

// The un-jittered delay before restart number n (0-based): min(base · 2ⁿ, max).
export function exponentialDelay(n: number, policy: Pick<RestartPolicy, 'baseDelayMs' | 'maxDelayMs'>): number {
  const exponent = Math.max(0, Math.floor(n));
  return Math.min(policy.baseDelayMs * 2 ** exponent, policy.maxDelayMs);
}

// The delay before restart number n: the exponential delay minus up to `jitter` of it, drawn from mulberry32(seed + n).
// Always within [round((1 - jitter) · d), d] where d = exponentialDelay(n), so maxDelayMs is a true maximum.
export function backoffDelay(n: number, policy: RestartPolicy, seed: number): number {
  const delay = exponentialDelay(n, policy);
  const jitter = Math.min(1, Math.max(0, policy.jitter ?? DEFAULT_JITTER));
  const draw = mulberry32((seed + Math.max(0, Math.floor(n))) >>> 0)();
  return Math.round(delay * (1 - jitter * draw));
}

// How many of the recorded restart times fall inside the window that ends at `now` (a restart counts for windowMs).
export function restartsInWindow(restartTimes: readonly number[], now: number, windowMs: number): number {
  return restartTimes.filter((at) => at <= now && now - at < windowMs).length;
}

// True when `restartsInWindow` restarts already happened in the window: one more would exceed maxRestarts.
export function restartBudgetSpent(restartsInWindow: number, policy: Pick<RestartPolicy, 'maxRestarts'>): boolean {
  return restartsInWindow >= policy.maxRestarts;
}

// The budget rule over timestamps: true when another restart at `now` would make more than maxRestarts within windowMs.
export function budgetExceeded(restartTimes: readonly number[], now: number, policy: RestartPolicy): boolean {
  return restartBudgetSpent(restartsInWindow(restartTimes, now, policy.windowMs), policy);
}

// A value as a message shows it: numbers as written (NaN stays NaN), the rest as JSON.
const show = (value: unknown): string => (typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value)));

// Every problem with a restart policy, each naming the field and the value received; empty when the policy is valid.
export function restartPolicyProblems(policy: RestartPolicy): string[] {
  const problems: string[] = [];
  const nonNegative = (field: keyof RestartPolicy, value: unknown): void => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      problems.push(`restart.${field} must be a finite number >= 0, received ${show(value)}`);
    }
  };
  if (typeof policy.onCrash !== 'boolean') {
    problems.push(`restart.onCrash must be a boolean, received ${show(policy.onCrash)}`);
  }
  nonNegative('baseDelayMs', policy.baseDelayMs);
  nonNegative('maxDelayMs', policy.maxDelayMs);
  nonNegative('maxRestarts', policy.maxRestarts);
  nonNegative('windowMs', policy.windowMs);
  nonNegative('resetAfterMs', policy.resetAfterMs);
  if (policy.jitter !== undefined && (typeof policy.jitter !== 'number' || !(policy.jitter >= 0 && policy.jitter <= 1))) {
    problems.push(`restart.jitter must be a fraction between 0 and 1, received ${show(policy.jitter)}`);
  }
  return problems;
}
