// The watchdog's emergency response as actors: reap what no live launch owns, write a diagnostic bundle.
import { fromPromise } from 'xstate';
import type {
  EmergencyInput } from '../../machines/index.js';
import { writeDiagnosticBundle } from '../diagnostics.js';
import { snapshot } from '../process/index.js';
import { reapLeftovers } from '../process/state/reap.js';
import type { SupervisorCore } from './core.js';

// The reapOrphans and writeDiagnosticBundle actors; `machines` reads the actor system's persisted snapshot for the bundle.
export function createEmergencyActors(core: SupervisorCore, machines: () => unknown) {
  const reapOrphans = fromPromise<unknown, EmergencyInput>(async () => {
    if (core.registry === undefined) return { entries: 0 };
    const report = await reapLeftovers({ registry: core.registry, instanceIds: core.runtimes.keys(), liveMarkers: core.liveMarkers(), graceMs: 1000, stateDir: core.config.stateDir });
    core.publish({ type: 'reap', at: Date.now(), report });
    return { reaped: report.entries.filter((entry) => entry.action === 'reaped').length, survivors: report.survivors.length };
  });

  const writeBundle = fromPromise<unknown, EmergencyInput>(async ({ input }) => {
    const path = await writeDiagnosticBundle(core.config.stateDir, {
      reason: `${input.level}: ${input.reason}`,
      table: await snapshot({ cmdline: true }),
      machines: machines(),
      events: [...core.history, ...core.recentSamples].sort((a, b) => a.at - b.at),
      config: core.config,
      logTail: core.logTail.lines(),
    });
    core.publish({ type: 'bundle', at: Date.now(), path });
    core.logger.error({ path }, 'diagnostic bundle written');
    return { path };
  });

  return { reapOrphans, writeBundle };
}
