// The state one supervisor's modules share: config, logger, the event history, per-instance runtimes, durable state.
import { Subject } from 'rxjs';
import type { Actor } from 'xstate';
import type { InstanceStateName, supervisorMachine } from '../../machines/index.js';
import type { InstanceConfig, WardenConfig } from '../config/index.js';
import { UnknownInstanceError, WardenError } from '../errors.js';
import type { LogTail, Logger } from '../logging.js';
import type { TreeHandle } from '../process/index.js';
import type { Lock } from '../process/state/lock.js';
import type { Registry } from '../process/state/registry.js';
import type { ContainmentChoice } from '../process/containment.js';
import type { WindowsGuard } from '../process/windows/index.js';
import type { Sentinel } from '../process/state/sentinel.js';
import type { RoleCounts, Sample } from '../sampler.js';
import { WebuiSession } from '../webui-session.js';
import type { WardenEvent } from './types.js';

/** Per-instance runtime state that must not live in machine context (OS handles). */
export interface InstanceRuntime {
  config: InstanceConfig;
  logger: Logger;
  handle: TreeHandle | undefined;
  /** The launch in flight, so a STOP during spawning waits for whatever it started. */
  launching: Promise<unknown> | undefined;
  /** A marker handed to a launch that has not returned yet: never stale. */
  pendingMarker: string | undefined;
  /** Why the last launch was refused before spawning (port in use, foreign instance). */
  refusal: WardenError | undefined;
  /** Sends PIDS_DISCOVERED to the current monitor, if one runs. */
  notifyRoles: ((shellPid?: number, pythonPid?: number) => void) | undefined;
  counts: RoleCounts;
  /** Windows: the tracker's `adoptions` when its record last went to the registry (-1: write it again). */
  windowsPersisted: number;
  /** Plan, output log, readiness and crash hints of the current start. */
  session: WebuiSession;
  /** The containment backend chosen in ready() (before anything spawns). */
  containment: ContainmentChoice | undefined;
}

/** What every runtime module reads and writes; one per supervisor, created by createSupervisor. */
export interface SupervisorCore {
  config: WardenConfig;
  logger: Logger;
  logTail: LogTail;
  events: Subject<WardenEvent>;
  history: WardenEvent[];
  /** The last samples, apart: one a second would otherwise push every transition and report out of `history`. */
  recentSamples: WardenEvent[];
  publish(event: WardenEvent): void;
  runtimes: Map<string, InstanceRuntime>;
  runtimeOf(id: string): InstanceRuntime;
  registry: Registry | undefined;
  lock: Lock | undefined;
  sentinel: Sentinel | undefined;
  /** Windows: the sentinel's counterpart (Windows has no environment markers to read, so it tracks pid trees). */
  windowsGuard: WindowsGuard | undefined;
  /** A second signal or Ctrl-C: stops skip the polite wait and the grace. */
  hurry: boolean;
  lastSample: Sample | undefined;
  orphanedDetected: number;
  /** One port pick at a time: two instances sharing a range must not both bind-test the same free port. */
  portPicks: Promise<unknown>;
  liveMarkers(): Set<string>;
}

/** The root supervisor actor, as the sampler and the facade drive it. */
export type SupervisedActor = Actor<typeof supervisorMachine>;

export const EVENT_HISTORY = 200;
/** The most lines `logs()` answers (the in-memory tail's size). */
export const MAX_TAIL = 10_000;
/** Samples kept for the diagnostic bundle (a minute at the default 1 Hz), apart from the event history. */
export const SAMPLE_HISTORY = 60;
export const emptyCounts = (): RoleCounts => ({ python: 0, shell: 0, other: 0, total: 0 });
export const topState = (value: unknown): InstanceStateName =>
  (typeof value === 'string' ? value : Object.keys(value as object)[0]) as InstanceStateName;
export const statePath = (value: unknown): string => {
  if (typeof value === 'string') return value;
  const [key, inner] = Object.entries(value as Record<string, unknown>)[0] ?? ['?', ''];
  return `${key}.${statePath(inner)}`;
};

// The shared state of a new supervisor over a parsed config: the event history and one runtime per instance.
export function createCore(config: WardenConfig, logger: Logger, logTail: LogTail): SupervisorCore {
  const events = new Subject<WardenEvent>();
  const history: WardenEvent[] = [];
  const recentSamples: WardenEvent[] = [];
  const runtimes = new Map<string, InstanceRuntime>();
  for (const instance of config.instances) {
    runtimes.set(instance.id, {
      config: instance,
      logger: logger.child({ instance: instance.id }),
      handle: undefined,
      launching: undefined,
      pendingMarker: undefined,
      refusal: undefined,
      notifyRoles: undefined,
      counts: emptyCounts(),
      windowsPersisted: -1,
      session: new WebuiSession(instance, config.stateDir, logger.child({ instance: instance.id })),
      containment: undefined,
    });
  }
  return {
    config,
    logger,
    logTail,
    events,
    history,
    recentSamples,
    publish: (event) => {
      const kept = event.type === 'sample' ? recentSamples : history;
      kept.push(event);
      if (kept.length > (event.type === 'sample' ? SAMPLE_HISTORY : EVENT_HISTORY)) kept.shift();
      events.next(event);
    },
    runtimes,
    runtimeOf: (id) => {
      const runtime = runtimes.get(id);
      if (runtime === undefined) throw new UnknownInstanceError(id, [...runtimes.keys()]);
      return runtime;
    },
    registry: undefined,
    lock: undefined,
    sentinel: undefined,
    windowsGuard: undefined,
    hurry: false,
    lastSample: undefined,
    orphanedDetected: 0,
    portPicks: Promise.resolve(),
    liveMarkers: () => {
      const markers = new Set<string>();
      for (const runtime of runtimes.values()) {
        if (runtime.handle !== undefined) markers.add(runtime.handle.marker);
        if (runtime.pendingMarker !== undefined) markers.add(runtime.pendingMarker);
      }
      return markers;
    },
  };
}
