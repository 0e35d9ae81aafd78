// The schema of `watchdog`: sampling and the count thresholds, a critical limit never below its warning one.
import { z } from 'zod';

import type { CountLimitConfig } from '../types.js';
import { count, duration, whenValid } from './common.js';

export const countLimit = (python: number, shell: number, level: string) =>
  z
    .strictObject({
      python: count(0, python, `${level} when more than this many Python processes are ours.`),
      shell: count(0, shell, `${level} when more than this many shell parents are ours.`),
    })
    .prefault({})
    .describe(`Counts above which the watchdog reaches ${level.toLowerCase()}.`);

// The rule that a critical limit is not below the warning one, for one role.
export function atLeastWarning(role: 'python' | 'shell') {
  return (watchdog: { warning: CountLimitConfig; critical: CountLimitConfig }, ctx: z.RefinementCtx) => {
    if (watchdog.critical[role] < watchdog.warning[role]) {
      ctx.addIssue({ code: 'custom', path: ['critical', role], message: `must be ≥ warning.${role}`, input: watchdog.critical[role] });
    }
  };
}

export const watchdogSchema = z
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
