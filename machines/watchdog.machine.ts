// The watchdog: ok → warning → critical → emergency, driven by SAMPLE events. It decides and tells; it never acts.
//
// Each SAMPLE is classified by `classifySample` (thresholds.ts) and the level moves by `nextLevel`: up at once,
// down only after `calmSamples` samples in a row below the current level. On every level change it sends its parent
// ALERT; on a rise to critical or emergency it also sends RUNAWAY. Both are `emit`ted too, for observers of a
// standalone watchdog (`actor.on('ALERT', ...)`).
import { assign, enqueueActions, setup } from 'xstate';
import { classifySample, levelRank, nextLevel, resolveThresholds } from './thresholds.js';
import type {
  ProcessCounts,
  RunawayEvent,
  SampleEvent,
  WatchdogAlert,
  WatchdogInput,
  WatchdogLevel,
  WatchdogThresholds,
} from './types.js';

/** What the watchdog knows: its settings, its level and the last sample. */
export interface WatchdogContext {
  thresholds: WatchdogThresholds;
  level: WatchdogLevel;
  previousLevel: WatchdogLevel;
  /** Samples in a row below `level`, and the highest level among them. */
  calmStreak: number;
  calmPeak: WatchdogLevel;
  reason: string;
  counts: ProcessCounts | null;
  perInstance: SampleEvent['perInstance'] | null;
  lastSampleAt: number | null;
}

/** The watchdog's only event. */
export type WatchdogEvent = SampleEvent;

const noCounts: ProcessCounts = { python: 0, shell: 0, total: 0, stale: 0, foreign: 0 };

// The level state after one sample (pure), with the reason worth reporting.
const afterSample = (context: WatchdogContext, sample: SampleEvent) => {
  const seen = classifySample(sample, context.thresholds);
  const next = nextLevel(context, seen.level, context.thresholds.calmSamples);
  const changed = next.level !== context.level;
  const stepDown = changed && levelRank(next.level) < levelRank(context.level);
  const reason = !changed
    ? context.reason
    : stepDown
      ? `calm for ${context.thresholds.calmSamples} samples: ${seen.reason}`
      : seen.reason;
  return { ...next, reason };
};

/** The watchdog machine. Input: thresholds (every field defaults to the design's seed values). */
export const watchdogMachine = setup({
  types: {} as {
    context: WatchdogContext;
    events: WatchdogEvent;
    input: WatchdogInput | undefined;
    emitted: WatchdogAlert | RunawayEvent;
  },
  guards: {
    // True when this sample moves the level to `params.level` (a different level than now).
    movesTo: ({ context, event }, params: { level: WatchdogLevel }) =>
      params.level !== context.level && afterSample(context, event).level === params.level,
  },
  actions: {
    recordSample: assign(({ context, event }) => {
      const next = afterSample(context, event);
      return {
        previousLevel: context.level,
        level: next.level,
        calmStreak: next.calmStreak,
        calmPeak: next.calmPeak,
        reason: next.reason,
        counts: event.counts,
        perInstance: event.perInstance ?? null,
        lastSampleAt: event.at,
      };
    }),
    // On a level change: ALERT to the parent (and emitted); on a rise to critical/emergency, RUNAWAY as well.
    tell: enqueueActions(({ context, self, enqueue }) => {
      if (context.level === context.previousLevel) return;
      const counts = context.counts ?? noCounts;
      const alert: WatchdogAlert = {
        type: 'ALERT',
        level: context.level,
        previous: context.previousLevel,
        counts,
        reason: context.reason,
      };
      enqueue.emit(alert);
      if (self._parent) enqueue.sendParent(alert);
      const rising = levelRank(context.level) > levelRank(context.previousLevel);
      if (rising && (context.level === 'critical' || context.level === 'emergency')) {
        const runaway: RunawayEvent = { type: 'RUNAWAY', level: context.level, counts, reason: context.reason };
        enqueue.emit(runaway);
        if (self._parent) enqueue.sendParent(runaway);
      }
    }),
  },
}).createMachine({
  id: 'watchdog',
  context: ({ input }) => ({
    thresholds: resolveThresholds(input ?? {}),
    level: 'ok',
    previousLevel: 'ok',
    calmStreak: 0,
    calmPeak: 'ok',
    reason: 'no sample yet',
    counts: null,
    perInstance: null,
    lastSampleAt: null,
  }),
  initial: 'ok',
  on: {
    SAMPLE: [
      { guard: { type: 'movesTo', params: { level: 'emergency' } }, target: '.emergency', actions: 'recordSample' },
      { guard: { type: 'movesTo', params: { level: 'critical' } }, target: '.critical', actions: 'recordSample' },
      { guard: { type: 'movesTo', params: { level: 'warning' } }, target: '.warning', actions: 'recordSample' },
      { guard: { type: 'movesTo', params: { level: 'ok' } }, target: '.ok', actions: 'recordSample' },
      { actions: 'recordSample' },
    ],
  },
  states: {
    ok: { entry: 'tell' },
    warning: { entry: 'tell' },
    critical: { entry: 'tell' },
    emergency: { entry: 'tell' },
  },
});
