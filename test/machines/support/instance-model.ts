// The instance machine as a test model: the events a path may take (commands, monitor reports, actor results,
// timers), a serializer that keeps only what changes behaviour, and a replay of a path on a real actor over a fake tree.
import { TestModel, getStateNodes } from 'xstate/graph';
import type { StatePath } from 'xstate/graph';
import type { ActorLogic, EventObject, SnapshotFrom } from 'xstate';
import { instanceMachine } from '../../../machines/index.js';
import type { InstanceInput } from '../../../machines/index.js';
import { flush, InstanceHarness, LAUNCH_OUTPUT, report } from './harness.js';

type Snapshot = SnapshotFrom<typeof instanceMachine>;
type ModelEvent = EventObject & Record<string, unknown>;
export type InstancePath = StatePath<Snapshot, ModelEvent> & { description: string };

/** Every event the model knows, by name; `after` timers are read from the machine itself. */
export const CATALOG: Record<string, ModelEvent> = {
  START: { type: 'START' },
  STOP: { type: 'STOP' },
  RESTART: { type: 'RESTART' },
  RESET: { type: 'RESET' },
  launched: { type: 'xstate.done.actor.launch', output: LAUNCH_OUTPUT },
  launchFailed: { type: 'xstate.error.actor.launch', error: 'spawn ENOENT' },
  HEALTHY: { type: 'HEALTHY' },
  PROCESS_EXITED: { type: 'PROCESS_EXITED', code: 1, signal: null },
  HEALTH_FAILED: { type: 'HEALTH_FAILED', reason: 'ping timed out' },
  PIDS_DISCOVERED: { type: 'PIDS_DISCOVERED', shellPid: 4100, pythonPid: 4102 },
  monitorFailed: { type: 'xstate.error.actor.monitor', error: 'monitor lost the process table' },
  treeDead: { type: 'xstate.done.actor.terminate', output: report(false) },
  survivor: { type: 'xstate.done.actor.terminate', output: report(true) },
  terminateFailed: { type: 'xstate.error.actor.terminate', error: 'EPERM reading /proc' },
  ...Object.fromEntries(
    getStateNodes(instanceMachine.root).flatMap((node) =>
      node.after.map((transition) => [`after:${transition.eventType.split('.')[2]}`, { type: transition.eventType }]),
    ),
  ),
};

/** Model input: tiny delays, a huge window (its expiries are tested on their own), a small restart budget. */
export function modelInput(maxRestarts: number): InstanceInput {
  return {
    id: 'webui',
    startupTimeoutMs: 1_000,
    retryStopDelayMs: 100,
    seed: 7,
    restart: { onCrash: true, baseDelayMs: 10, maxDelayMs: 100, maxRestarts, windowMs: 1e12, resetAfterMs: 5_000 },
  };
}

// What decides behaviour: the state, the intent, the restart count, and (only inside stopping) reason and attempt.
export function serialize(snapshot: Snapshot): string {
  const inStopping = snapshot.matches('stopping');
  const { desired, restarts, stopReason, attempt } = snapshot.context;
  return JSON.stringify({
    value: snapshot.value,
    desired,
    restarts,
    ...(inStopping ? { stopReason, attempt } : {}),
  });
}

export interface ModelOptions {
  maxRestarts: number;
  /** Highest terminate attempt that may still leave survivors or fail (bounds the retry loop). */
  maxAttempt: number;
  /** Catalog names the model may use. */
  events: string[];
}

// A TestModel over the instance machine with the given events and bounds.
export function instanceModel(options: ModelOptions) {
  const events = options.events.map((name) => {
    const event = CATALOG[name];
    if (!event) throw new Error(`unknown model event ${name}`);
    return event;
  });
  // The model sends xstate's own done/error/after events too, so its event type is wider than the machine's.
  const logic = instanceMachine as unknown as ActorLogic<Snapshot, ModelEvent, InstanceInput>;
  return new TestModel<Snapshot, ModelEvent, InstanceInput>(logic, {
    input: modelInput(options.maxRestarts),
    events,
    serializeState: serialize,
    filterEvents: (snapshot, event) => {
      const unsuccessful =
        event.type === 'xstate.error.actor.terminate' ||
        (event.type === 'xstate.done.actor.terminate' && (event['output'] as { survivors: unknown[] }).survivors.length > 0);
      if (unsuccessful && snapshot.context.attempt >= options.maxAttempt) return false;
      return snapshot.can(event as never);
    },
  });
}

// One path per transition of the model: the shortest path to its source state, then the transition itself.
// Shortest and simple paths never take an edge back to a state already on the path; these paths take every edge.
export function transitionPaths(model: ReturnType<typeof instanceModel>): InstancePath[] {
  const shortest = new Map(model.getShortestPaths({ allowDuplicatePaths: true }).map((path) => [serialize(path.state), path]));
  const paths: InstancePath[] = [];
  for (const [key, { transitions }] of Object.entries(model.getAdjacencyMap())) {
    const head = shortest.get(key);
    if (!head) throw new Error(`no path reaches ${key}`);
    for (const { event, state } of Object.values(transitions) as Array<{ event: ModelEvent; state: Snapshot }>) {
      paths.push({
        state,
        steps: [...head.steps, { event, state }],
        weight: head.weight + 1,
        description: `${head.description} ⇒ ${event.type}`,
      });
    }
  }
  return paths;
}

// Drops every path whose event sequence is a prefix of another path's (its replay is part of the longer one).
// Same result as TestModel's own de-duplication, in linear time.
export function dropPrefixPaths<P extends { steps: Array<{ event: EventObject }> }>(paths: P[]): P[] {
  const keyOf = (path: P): string[] => {
    const keys: string[] = [];
    let key = '';
    for (const step of path.steps) {
      key += `${JSON.stringify(step.event)}\n`;
      keys.push(key);
    }
    return keys;
  };
  const prefixes = new Set<string>();
  const full = paths.map((path) => {
    const keys = keyOf(path);
    keys.slice(0, -1).forEach((key) => prefixes.add(key));
    return keys.at(-1) ?? '';
  });
  const seen = new Set<string>();
  return paths.filter((_, index) => {
    const key = full[index] as string;
    if (prefixes.has(key) || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

// Makes the harness produce one model event the way the real world would.
async function apply(h: InstanceHarness, event: ModelEvent): Promise<void> {
  switch (event.type) {
    case 'START':
    case 'STOP':
    case 'RESTART':
    case 'RESET':
      return h.send({ type: event.type });
    case 'HEALTHY':
    case 'PROCESS_EXITED':
    case 'HEALTH_FAILED':
    case 'PIDS_DISCOVERED':
      return h.report(event as never);
    case 'xstate.done.actor.launch':
      return h.resolveLaunch();
    case 'xstate.error.actor.launch':
      return h.rejectLaunch(new Error(String(event['error'])));
    case 'xstate.error.actor.monitor':
      return h.failMonitor();
    case 'xstate.done.actor.terminate':
      return h.resolveTerminate(event['output'] as ReturnType<typeof report>);
    case 'xstate.error.actor.terminate':
      return h.rejectTerminate(new Error(String(event['error'])));
    default:
      if (event.type.startsWith('xstate.after.')) {
        await h.clock.fireNext();
        return;
      }
      throw new Error(`the replay does not know how to produce ${event.type}`);
  }
}

// Replays one path on a fresh actor; throws when the actor disagrees with the model or the fake tree saw a violation.
export async function replay(path: InstancePath, input: InstanceInput): Promise<void> {
  const h = new InstanceHarness({ input, autoLaunch: false });
  try {
    for (const [index, step] of path.steps.entries()) {
      if (step.event.type === 'xstate.init') {
        h.start();
        await flush();
      } else {
        await apply(h, step.event as ModelEvent);
      }
      const actual = serialize(h.actor.getSnapshot());
      const expected = serialize(step.state);
      if (actual !== expected) {
        throw new Error(`step ${index} (${step.event.type}): expected ${expected}, actor is ${actual}`);
      }
      if (h.tree.violations.length > 0) throw new Error(`step ${index} (${step.event.type}): ${h.tree.violations.join('; ')}`);
    }
  } catch (error) {
    (error as Error).message += `\n  path: ${path.description}\n  log: ${h.log.join(' | ')}`;
    throw error;
  } finally {
    h.actor.stop();
  }
}
