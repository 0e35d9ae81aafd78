// The restart policy as pure functions: backoff sequence, jitter bounds and determinism, the budget window.
import { describe, expect, test } from 'vitest';
import {
  backoffDelay,
  budgetExceeded,
  exponentialDelay,
  mulberry32,
  restartBudgetSpent,
  restartPolicyProblems,
  restartsInWindow,
  seedFromId,
} from '../../machines/index.js';
import type { RestartPolicy } from '../../machines/index.js';

const policy: RestartPolicy = {
  onCrash: true,
  baseDelayMs: 1000,
  maxDelayMs: 60_000,
  maxRestarts: 5,
  windowMs: 300_000,
  resetAfterMs: 600_000,
};

describe('backoff', () => {
  test('the un-jittered delay doubles from baseDelayMs and stops at maxDelayMs', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 50, 5000].map((n) => exponentialDelay(n, policy))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000,
    ]);
  });

  test('jitter only shortens a delay, by at most the jitter fraction, for every n and many seeds', () => {
    for (const jitter of [0, 0.1, 0.5, 1]) {
      for (let seed = 0; seed < 200; seed++) {
        for (let n = 0; n < 10; n++) {
          const ceiling = exponentialDelay(n, policy);
          const delay = backoffDelay(n, { ...policy, jitter }, seed);
          expect(delay).toBeLessThanOrEqual(ceiling);
          expect(delay).toBeGreaterThanOrEqual(Math.round((1 - jitter) * ceiling));
        }
      }
    }
  });

  test('the default jitter is 10 % and it actually varies the delays', () => {
    const delays = Array.from({ length: 100 }, (_, seed) => backoffDelay(0, policy, seed));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(900);
    expect(Math.max(...delays)).toBeLessThanOrEqual(1000);
    expect(new Set(delays).size).toBeGreaterThan(50);
  });

  test('the same seed gives the same delays; another seed gives others', () => {
    const sequence = (seed: number) => Array.from({ length: 8 }, (_, n) => backoffDelay(n, policy, seed));
    expect(sequence(42)).toEqual(sequence(42));
    expect(sequence(42)).not.toEqual(sequence(43));
    expect(mulberry32(7)()).toBe(mulberry32(7)());
  });

  test('seeds from ids are stable and differ between instances', () => {
    expect(seedFromId('webui')).toBe(seedFromId('webui'));
    expect(seedFromId('webui')).not.toBe(seedFromId('webui-2'));
  });
});

describe('restart budget', () => {
  test('a restart counts for windowMs: inside at windowMs - 1, outside at windowMs', () => {
    expect(restartsInWindow([0], 299_999, 300_000)).toBe(1);
    expect(restartsInWindow([0], 300_000, 300_000)).toBe(0);
    expect(restartsInWindow([100, 200, 400_000], 400_001, 300_000)).toBe(1);
  });

  test('maxRestarts restarts in the window are allowed; the crash that needs one more is over budget', () => {
    const times = [10_000, 20_000, 30_000, 40_000];
    expect(budgetExceeded(times, 50_000, policy)).toBe(false);
    expect(budgetExceeded([...times, 45_000], 50_000, policy)).toBe(true);
    expect(budgetExceeded([...times, 45_000], 310_001, policy)).toBe(false);
    expect(restartBudgetSpent(4, policy)).toBe(false);
    expect(restartBudgetSpent(5, policy)).toBe(true);
  });

  test('maxRestarts 0 means no restart at all', () => {
    expect(budgetExceeded([], 0, { ...policy, maxRestarts: 0 })).toBe(true);
  });

  test('policy problems name the field and the value received', () => {
    expect(restartPolicyProblems(policy)).toEqual([]);
    expect(restartPolicyProblems({ ...policy, windowMs: Number.NaN, onCrash: 'yes' as never })).toEqual([
      'restart.onCrash must be a boolean, received "yes"',
      'restart.windowMs must be a finite number >= 0, received NaN',
    ]);
  });
});
