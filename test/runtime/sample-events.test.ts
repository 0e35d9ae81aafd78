// A steady supervisor's per-sample cost: every sample is published on events$, but the machines get a SAMPLE only
// when its figures changed (at watchdog level ok); a change (a stop) reaches them at the next sample.
import type { InspectionEvent } from 'xstate';
import { describe, expect, test } from 'vitest';
import type { WardenEvent } from '../../src/index.js';
import { fakeInstance, makeSupervisor, withDecoysUntouched } from '../support/runtime.js';

withDecoysUntouched();

const nextSamples = (events: WardenEvent[], count: number): Promise<void> =>
  new Promise((resolveWait) => {
    const start = events.filter((event) => event.type === 'sample').length;
    const timer = setInterval(() => {
      if (events.filter((event) => event.type === 'sample').length >= start + count) {
        clearInterval(timer);
        resolveWait();
      }
    }, 20);
  });

describe('samples into the machines', () => {
  test('a steady table sends no SAMPLE event; a stopped instance sends one with its new counts', async () => {
    const instance = await fakeInstance({ args: ['--workers', '1'], health: false });
    const delivered: Array<{ python: number; total: number }> = [];
    const supervisor = makeSupervisor([instance], {}, {
      inspect: (event: InspectionEvent) => {
        if (event.type !== '@xstate.event' || event.event.type !== 'SAMPLE') return;
        // Only the events sent from outside (the sampler), not the root forwarding them to the watchdog.
        if (event.sourceRef !== undefined) return;
        const counts = (event.event as unknown as { counts: { python: number; total: number } }).counts;
        delivered.push({ python: counts.python, total: counts.total });
      },
    });
    const events: WardenEvent[] = [];
    supervisor.events$.subscribe((event) => events.push(event));
    await supervisor.start(instance.id);
    // Let the tree settle (the worker and Python found), then watch a steady stretch.
    await nextSamples(events, 5);
    const steadyFrom = delivered.length;
    await nextSamples(events, 6);
    const steadyCounts = events.flatMap((event) => (event.type === 'sample' ? [JSON.stringify(event.sample.counts)] : [])).slice(-6);

    // The figures really were steady (shell, Python, one worker), and none of those samples reached the machines.
    expect(new Set(steadyCounts).size).toBe(1);
    expect(JSON.parse(steadyCounts[0] as string)).toMatchObject({ shell: 1, python: 2, total: 3 });
    expect(delivered.length - steadyFrom).toBe(0);
    expect(delivered.length).toBeGreaterThan(0);

    await supervisor.stop(instance.id);
    await nextSamples(events, 2);
    expect(delivered.at(-1)).toEqual({ python: 0, total: 0 });
  }, 60_000);
});
