// The watchdog: thresholds, the doubling rule, hysteresis, and what it tells its parent.
import { describe, expect, test } from 'vitest';
import { createActor, createMachine, sendTo } from 'xstate';
import type { AnyEventObject } from 'xstate';
import {
  DEFAULT_THRESHOLDS,
  classifySample,
  isDoubling,
  nextLevel,
  resolveThresholds,
  watchdogMachine,
} from '../../machines/index.js';
import type { ProcessCounts, SampleEvent, WatchdogLevel } from '../../machines/index.js';

const counts = (python: number, shell: number, extra: Partial<ProcessCounts> = {}): ProcessCounts => ({
  python,
  shell,
  total: python + shell,
  stale: 0,
  foreign: 0,
  ...extra,
});
const sample = (python: number, shell: number, rest: Partial<SampleEvent> = {}): SampleEvent => ({
  type: 'SAMPLE',
  at: 600_000,
  counts: counts(python, shell),
  ...rest,
});
const levelOf = (s: SampleEvent) => classifySample(s, DEFAULT_THRESHOLDS).level;

describe('thresholds', () => {
  test('seed defaults: warning at python > 5 or shell > 2, critical at python > 10 or shell > 3', () => {
    expect(levelOf(sample(5, 2))).toBe('ok');
    expect(levelOf(sample(6, 0))).toBe('warning');
    expect(levelOf(sample(0, 3))).toBe('warning');
    expect(levelOf(sample(10, 3))).toBe('warning');
    expect(levelOf(sample(11, 0))).toBe('critical');
    expect(levelOf(sample(1, 4))).toBe('critical');
  });

  test('thresholds come from the input, field by field', () => {
    const thresholds = resolveThresholds({ warning: { python: 1, shell: 9 }, calmSamples: 5 });
    expect(thresholds).toEqual({ ...DEFAULT_THRESHOLDS, warning: { python: 1, shell: 9 }, calmSamples: 5 });
    expect(classifySample(sample(2, 0), thresholds).level).toBe('warning');
  });

  test('foreign look-alikes never raise the level', () => {
    expect(levelOf({ ...sample(1, 1), counts: counts(1, 1, { foreign: 40 }) })).toBe('ok');
  });

  test('emergency: the total doubled within 5 minutes while at warning or above', () => {
    const doubled = sample(6, 2, { windowMin: { total: 4, at: 400_000 } });
    expect(isDoubling(doubled, DEFAULT_THRESHOLDS)).toBe(true);
    expect(classifySample(doubled, DEFAULT_THRESHOLDS)).toEqual({
      level: 'emergency',
      reason: 'total 8 doubled from 4 within 200s (python 6 > 5)',
    });
  });

  test('no emergency when the count is within limits, the minimum is older than the window, or it did not double', () => {
    expect(levelOf(sample(4, 2, { windowMin: { total: 2, at: 500_000 } }))).toBe('ok');
    expect(levelOf(sample(6, 2, { windowMin: { total: 4, at: 299_999 } }))).toBe('warning');
    expect(levelOf(sample(6, 2, { windowMin: { total: 5, at: 500_000 } }))).toBe('warning');
    expect(levelOf(sample(6, 2, { windowMin: { total: 0, at: 500_000 } }))).toBe('warning');
  });

  test('hysteresis: up at once, down only after calmSamples samples below, to the highest of them', () => {
    let state = { level: 'ok' as WatchdogLevel, calmStreak: 0, calmPeak: 'ok' as WatchdogLevel };
    const feed = (level: WatchdogLevel) => (state = nextLevel(state, level, 3)).level;
    expect(feed('critical')).toBe('critical');
    expect([feed('warning'), feed('ok'), feed('ok')]).toEqual(['critical', 'critical', 'warning']);
    expect([feed('ok'), feed('warning'), feed('ok'), feed('ok'), feed('ok')]).toEqual([
      'warning', 'warning', 'warning', 'warning', 'ok',
    ]);
  });
});

// Runs the watchdog under a parent that records everything the watchdog sends it.
function underParent() {
  const received: AnyEventObject[] = [];
  const parent = createMachine({
    types: {} as { events: AnyEventObject },
    invoke: { id: 'watchdog', src: watchdogMachine, input: {} },
    on: {
      SAMPLE: { actions: sendTo('watchdog', ({ event }) => event) },
      '*': { actions: ({ event }) => void received.push(event) },
    },
  });
  const actor = createActor(parent).start();
  const watchdog = () => actor.getSnapshot().children['watchdog']?.getSnapshot();
  return { actor, received, level: () => watchdog()?.value as WatchdogLevel };
}

describe('watchdog machine', () => {
  test('it escalates on the first bad sample and tells its parent ALERT, plus RUNAWAY at critical', () => {
    const { actor, received, level } = underParent();
    actor.send(sample(6, 0));
    expect(level()).toBe('warning');
    actor.send(sample(12, 0));
    expect(level()).toBe('critical');
    expect(received.map((e) => [e.type, e['level']])).toEqual([
      ['ALERT', 'warning'],
      ['ALERT', 'critical'],
      ['RUNAWAY', 'critical'],
    ]);
    expect(received[2]).toMatchObject({ counts: counts(12, 0), reason: 'python 12 > 10' });
  });

  test('it does not flap: a noisy count around the threshold stays at the higher level', () => {
    const { actor, received, level } = underParent();
    for (const python of [6, 4, 6, 4, 4, 6, 4, 4, 6]) actor.send(sample(python, 0));
    expect(level()).toBe('warning');
    expect(received.map((e) => e['level'])).toEqual(['warning']);
    for (let i = 0; i < 3; i++) actor.send(sample(1, 0));
    expect(level()).toBe('ok');
    expect(received.map((e) => [e['level'], e['previous']])).toEqual([
      ['warning', 'ok'],
      ['ok', 'warning'],
    ]);
    expect(received[1]?.['reason']).toBe('calm for 3 samples: python 1, shell 0 within limits');
  });

  test('doubling within the window is an emergency, reported once as RUNAWAY emergency', () => {
    const { actor, received, level } = underParent();
    actor.send(sample(3, 1, { at: 0 }));
    actor.send(sample(8, 2, { at: 120_000, windowMin: { total: 4, at: 0 } }));
    expect(level()).toBe('emergency');
    expect(received.map((e) => [e.type, e['level']])).toEqual([
      ['ALERT', 'emergency'],
      ['RUNAWAY', 'emergency'],
    ]);
  });

  test('stepping down from emergency to critical is an ALERT, not a new RUNAWAY', () => {
    const { actor, received, level } = underParent();
    actor.send(sample(8, 2, { at: 120_000, windowMin: { total: 4, at: 0 } }));
    for (let i = 0; i < 3; i++) actor.send(sample(11, 0));
    expect(level()).toBe('critical');
    expect(received.map((e) => [e.type, e['level']])).toEqual([
      ['ALERT', 'emergency'],
      ['RUNAWAY', 'emergency'],
      ['ALERT', 'critical'],
    ]);
  });

  test('standalone, it emits the same events and keeps the last sample in context', () => {
    const actor = createActor(watchdogMachine, { input: { critical: { python: 2, shell: 9 } } }).start();
    const emitted: string[] = [];
    actor.on('*', (event) => emitted.push(`${event.type}:${event.level}`));
    actor.send(sample(3, 0));
    expect(emitted).toEqual(['ALERT:critical', 'RUNAWAY:critical']);
    expect(actor.getSnapshot().context).toMatchObject({ level: 'critical', counts: counts(3, 0), lastSampleAt: 600_000 });
  });
});
