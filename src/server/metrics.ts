// Prometheus metrics on an own registry: the incident report's `stablenew_processes_*` names plus per-instance state.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Subscription } from 'rxjs';
import type { InstanceStateName, WatchdogLevel } from '../../machines/index.js';
import type { Supervisor } from '../runtime/supervisor.js';

/** Every instance state, so `warden_instance_state` always has a 0 or 1 for each (the usual enum pattern). */
const STATES: readonly InstanceStateName[] = ['idle', 'spawning', 'running', 'stopping', 'crashed', 'failed'];
const LEVEL_VALUE: Readonly<Record<WatchdogLevel, number>> = { ok: 0, warning: 1, critical: 2, emergency: 3 };

/** The control server's metrics. */
export interface WardenMetrics {
  readonly registry: Registry;
  readonly contentType: string;
  /** Reads status() and renders the exposition text. */
  render(): Promise<string>;
  close(): void;
}

// Builds the registry; gauges are refreshed from status() at scrape time, the restart counter from transitions.
export function createMetrics(supervisor: Supervisor, options: { defaultMetrics?: boolean } = {}): WardenMetrics {
  const registry = new Registry();
  const registers = [registry];
  const python = new Gauge({ name: 'stablenew_processes_python_count', help: 'Python processes proven ours, over every instance (stale ones from earlier runs included).', registers });
  const shell = new Gauge({ name: 'stablenew_processes_cmd_count', help: 'Shell parents (cmd.exe, bash, sh) proven ours, over every instance (stale included).', registers });
  const restarts = new Counter({ name: 'stablenew_processes_webui_restarts_total', help: 'WebUI relaunches (after a crash or a restart command) seen since this server started.', labelNames: ['instance'], registers });
  const orphaned = new Counter({ name: 'stablenew_processes_orphaned_detected_total', help: 'Processes of ours from an earlier launch or run found still alive (and reaped) by the sampler.', registers });
  const stale = new Gauge({ name: 'warden_processes_stale_count', help: 'Processes carrying one of our markers that belong to no live launch, at the last sample.', registers });
  const foreign = new Gauge({ name: 'warden_processes_foreign_count', help: 'WebUI look-alikes not started by Warden (never killed), at the last sample.', registers });
  const state = new Gauge({ name: 'warden_instance_state', help: '1 for the state each instance is in, 0 for the others.', labelNames: ['instance', 'state'], registers });
  const instancePython = new Gauge({ name: 'warden_instance_python_count', help: 'Python processes of the instance at the last sample.', labelNames: ['instance'], registers });
  const instanceShell = new Gauge({ name: 'warden_instance_shell_count', help: 'Shell parents of the instance at the last sample.', labelNames: ['instance'], registers });
  const instanceRestarts = new Gauge({ name: 'warden_instance_restarts', help: 'Restarts counted against the instance\'s restart budget right now (drops back after resetAfterMs).', labelNames: ['instance'], registers });
  const level = new Gauge({ name: 'warden_watchdog_level', help: 'Watchdog level: 0 ok, 1 warning, 2 critical, 3 emergency.', registers });
  const containment = new Gauge({ name: 'warden_instance_containment', help: '1 for the containment backend each instance runs on (cgroup, subreaper, marker, job-object), chosen at start.', labelNames: ['instance', 'backend'], registers });
  const held = new Gauge({ name: 'warden_restarts_held', help: '1 while restarts are held after an emergency (until POST /api/reset).', registers });
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'warden_' });

  for (const instance of supervisor.config.instances) restarts.inc({ instance: instance.id }, 0);
  // A relaunch is `spawning` entered from `stopping` (restart) or `crashed` (after the backoff); a first start comes from idle.
  const subscription: Subscription = supervisor.events$.subscribe((event) => {
    if (event.type === 'transition' && event.to === 'spawning' && (event.from === 'stopping' || event.from === 'crashed')) {
      restarts.inc({ instance: event.instance });
    }
  });

  const refresh = (): void => {
    const status = supervisor.status();
    const counts = status.watchdog.counts;
    python.set(counts?.python ?? 0);
    shell.set(counts?.shell ?? 0);
    stale.set(counts?.stale ?? 0);
    foreign.set(counts?.foreign ?? 0);
    orphaned.reset();
    orphaned.inc(status.orphanedDetected);
    level.set(LEVEL_VALUE[status.watchdog.level] ?? 0);
    held.set(status.holdRestarts ? 1 : 0);
    for (const instance of status.instances) {
      for (const name of STATES) state.set({ instance: instance.id, state: name }, instance.state === name ? 1 : 0);
      instancePython.set({ instance: instance.id }, instance.counts.python);
      instanceShell.set({ instance: instance.id }, instance.counts.shell);
      instanceRestarts.set({ instance: instance.id }, instance.restarts);
      if (instance.containment !== null) containment.set({ instance: instance.id, backend: instance.containment.backend }, 1);
    }
  };

  return {
    registry,
    contentType: registry.contentType,
    async render() {
      refresh();
      return registry.metrics();
    },
    close() {
      subscription.unsubscribe();
      registry.clear();
    },
  };
}
