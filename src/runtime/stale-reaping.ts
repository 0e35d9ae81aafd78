// Stale trees (our marker, no live launch) are reaped as soon as a sample sees them, one reap per marker at a time.
import { terminate } from '../process/index.js';
import { launchCgroupOf } from '../process/posix/cgroup.js';
import type { StaleGroup } from '../sampler.js';
import type { SupervisorCore } from './core.js';

// The reaper the sampler calls fire-and-forget for each stale group.
export function createStaleReaper(core: SupervisorCore): (group: StaleGroup) => Promise<void> {
  const reapingStale = new Set<string>();
  // Stale = carries one of our instances' markers, belongs to no live launch: reaped as soon as it is seen.
  const reapStale = async (group: StaleGroup): Promise<void> => {
    if (reapingStale.has(group.marker)) return;
    reapingStale.add(group.marker);
    try {
      core.orphanedDetected += group.processes.length;
      const oldest = [...group.processes].sort((a, b) => (a.startTime ?? 0) - (b.startTime ?? 0))[0];
      if (oldest === undefined) return;
      // A stale tree still in its launch cgroup is stopped by the cgroup (its clean-environment members too).
      const cgroup = group.processes.map((entry) => launchCgroupOf(entry.pid, group.marker)).find((path) => path !== undefined);
      const report = await terminate(
        { instanceId: group.instanceId, marker: group.marker, root: { pid: oldest.pid, startTime: oldest.startTime, clock: 'proc' }, ...(cgroup !== undefined && { cgroup }) },
        { graceMs: 1000 },
      );
      core.publish({ type: 'stale-reaped', at: Date.now(), instance: group.instanceId, marker: group.marker, pids: group.processes.map((entry) => entry.pid), report });
      core.logger.warn({ marker: group.marker, killed: report.killed.length, survivors: report.survivors.length }, 'reaped stale processes');
    } catch (error) {
      // Called fire-and-forget from the sampler: a failure is logged, and the next sample tries again.
      core.logger.error({ err: error, marker: group.marker }, 'reaping stale processes failed; retried at the next sample');
    } finally {
      reapingStale.delete(group.marker);
    }
  };
  return reapStale;
}
