// Watchdog policy as pure functions: which level a sample is at, and how the level moves (hysteresis).
import type { ProcessCounts, SampleEvent, WatchdogInput, WatchdogLevel, WatchdogThresholds } from './types.js';

/** The levels, lowest first. */
export const LEVELS: readonly WatchdogLevel[] = ['ok', 'warning', 'critical', 'emergency'];

/** The design's seed thresholds. */
export const DEFAULT_THRESHOLDS: WatchdogThresholds = {
  warning: { python: 5, shell: 2 },
  critical: { python: 10, shell: 3 },
  emergencyWindowMs: 5 * 60_000,
  calmSamples: 3,
};

// Fills every missing watchdog setting with its default.
export function resolveThresholds(input: WatchdogInput = {}): WatchdogThresholds {
  return {
    warning: { ...DEFAULT_THRESHOLDS.warning, ...input.warning },
    critical: { ...DEFAULT_THRESHOLDS.critical, ...input.critical },
    emergencyWindowMs: input.emergencyWindowMs ?? DEFAULT_THRESHOLDS.emergencyWindowMs,
    calmSamples: Math.max(1, Math.floor(input.calmSamples ?? DEFAULT_THRESHOLDS.calmSamples)),
  };
}

// The position of a level in LEVELS, for comparisons.
export function levelRank(level: WatchdogLevel): number {
  return LEVELS.indexOf(level);
}

// The level the python/shell counts alone reach (never `emergency`), with the reason.
export function countLevel(counts: ProcessCounts, thresholds: WatchdogThresholds): { level: WatchdogLevel; reason: string } {
  for (const level of ['critical', 'warning'] as const) {
    const limit = thresholds[level];
    if (counts.python > limit.python) return { level, reason: `python ${counts.python} > ${limit.python}` };
    if (counts.shell > limit.shell) return { level, reason: `shell ${counts.shell} > ${limit.shell}` };
  }
  return { level: 'ok', reason: `python ${counts.python}, shell ${counts.shell} within limits` };
}

// The doubling rule: total at least twice the window's minimum (a minimum of 1 or more, seen within emergencyWindowMs).
export function isDoubling(sample: Pick<SampleEvent, 'at' | 'counts' | 'windowMin'>, thresholds: WatchdogThresholds): boolean {
  const min = sample.windowMin;
  if (!min || min.total < 1) return false;
  const age = sample.at - min.at;
  return age >= 0 && age <= thresholds.emergencyWindowMs && sample.counts.total >= 2 * min.total;
}

// The level one sample is at: `emergency` when the count doubled within the window while at warning or above,
// otherwise the count level. Foreign look-alikes never raise the level (they are never ours to act on).
export function classifySample(
  sample: Pick<SampleEvent, 'at' | 'counts' | 'windowMin'>,
  thresholds: WatchdogThresholds,
): { level: WatchdogLevel; reason: string } {
  const byCount = countLevel(sample.counts, thresholds);
  if (byCount.level !== 'ok' && isDoubling(sample, thresholds)) {
    const min = sample.windowMin as { total: number; at: number };
    const seconds = Math.round((sample.at - min.at) / 1000);
    return {
      level: 'emergency',
      reason: `total ${sample.counts.total} doubled from ${min.total} within ${seconds}s (${byCount.reason})`,
    };
  }
  return byCount;
}

/** The watchdog's level with its calm streak: how many samples in a row were below the level, and the highest of them. */
export interface LevelState {
  level: WatchdogLevel;
  calmStreak: number;
  calmPeak: WatchdogLevel;
}

// Moves the level for one sample: up at once; down only after `calmSamples` samples in a row below the current
// level, and then only to the highest level those calm samples reached (so it never flaps).
export function nextLevel(state: LevelState, sampleLevel: WatchdogLevel, calmSamples: number): LevelState {
  const current = levelRank(state.level);
  const seen = levelRank(sampleLevel);
  if (seen >= current) {
    return { level: seen > current ? sampleLevel : state.level, calmStreak: 0, calmPeak: 'ok' };
  }
  const calmStreak = state.calmStreak + 1;
  const calmPeak = calmStreak === 1 || seen > levelRank(state.calmPeak) ? sampleLevel : state.calmPeak;
  if (calmStreak >= calmSamples) {
    return { level: calmPeak, calmStreak: 0, calmPeak: 'ok' };
  }
  return { level: state.level, calmStreak, calmPeak };
}
