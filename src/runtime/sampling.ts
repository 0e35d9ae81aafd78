// The sampler wired to the supervisor: every table feeds the launches' identities, the machines see only samples that change something.
import type { Subscription } from 'rxjs';
import type { WatchdogLevel } from '../../machines/index.js';
import type { TreeHandle } from '../process/index.js';
import { createSampler } from '../sampler.js';
import type { RoleCounts, Sample, StaleGroup } from '../sampler.js';
import type { InstanceRuntime, SupervisedActor, SupervisorCore } from './core.js';

// Starts sampling the process table for one supervisor; the subscription ends it.
export function startSampling(core: SupervisorCore, actor: SupervisedActor, persistWindowsTree: (runtime: InstanceRuntime, handle: TreeHandle) => void, reapStale: (group: StaleGroup) => Promise<void>): Subscription {
  // Whether the machines must see this sample. At level ok the watchdog decides from counts, per-instance counts
  // and the window minimum alone, so the same figures again change nothing: no event through the actor system
  // (most of a steady supervisor's per-sample cost). Above ok every sample counts (calm samples in a row).
  let lastSent: Sample | undefined;
  const sampleChangesAnything = (sample: Sample): boolean => {
    const level = (actor.getSnapshot().context as { watchdogLevel?: WatchdogLevel }).watchdogLevel ?? 'ok';
    if (level === 'ok' && lastSent !== undefined && sameFigures(lastSent, sample)) return false;
    lastSent = sample;
    return true;
  };

  return createSampler({
      intervalMs: core.config.watchdog.sampleIntervalMs,
      emergencyWindowMs: core.config.watchdog.emergencyWindowMs,
      instances: () =>
        [...core.runtimes.values()].map((runtime) => ({
          id: runtime.config.id,
          owner: runtime.handle,
          windows: runtime.handle?.windows,
          profile: { cwd: runtime.config.cwd, command: runtime.config.command },
        })),
      liveMarkers: core.liveMarkers,
      stateDir: core.config.stateDir,
      onTable: (table, ownedById, sampled) => {
        for (const runtime of core.runtimes.values()) {
          const handle = runtime.handle;
          // Only a launch that existed when this table's read began: an older table may lack its root, and a
          // Windows tracker fed one would take the root for dead and every child for foreign.
          if (handle === undefined || !sampled.some((instance) => instance.owner === handle)) continue;
          const owned = ownedById.get(runtime.config.id);
          handle.identify(table, owned === undefined ? {} : { owned });
          persistWindowsTree(runtime, handle);
        }
      },
      onSampleError: (error) => core.logger.warn({ err: error }, 'a process-table sample failed; sampling goes on at the next tick'),
    }).subscribe({
      next: (sample) => {
        core.lastSample = sample;
        for (const [id, counts] of Object.entries(sample.perInstance)) {
          const runtime = core.runtimes.get(id);
          if (runtime !== undefined) runtime.counts = counts;
        }
        core.publish({ type: 'sample', at: sample.at, sample });
        for (const group of sample.stale) void reapStale(group);
        if (!sampleChangesAnything(sample)) return;
        actor.send({
          type: 'SAMPLE',
          at: sample.at,
          counts: sample.counts,
          perInstance: sample.perInstance,
          windowMin: sample.windowMin,
        });
      },
      error: (error: unknown) => core.logger.error({ err: error }, 'sampler failed'),
    });
}

// Whether two samples carry the same figures the watchdog decides from: totals, per-instance counts, window minimum.
// Compared field by field, without serialising: this runs once a second.
function sameFigures(a: Sample, b: Sample): boolean {
  if (a.windowMin.total !== b.windowMin.total || !sameCounts(a.counts, b.counts)) return false;
  const ids = Object.keys(b.perInstance);
  if (Object.keys(a.perInstance).length !== ids.length) return false;
  for (const id of ids) {
    const before = a.perInstance[id];
    if (before === undefined || !sameCounts(before, b.perInstance[id] as RoleCounts)) return false;
  }
  return true;
}

// The same numbers under the same keys (RoleCounts and the sample's totals, which add stale and foreign).
function sameCounts(a: object, b: object): boolean {
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  let count = 0;
  for (const key in right) {
    count += 1;
    if (left[key] !== right[key]) return false;
  }
  for (const _ in left) count -= 1;
  return count === 0;
}
