// Model-based tests of the instance machine: every generated path is replayed on a fresh actor over a fake tree
// that records liveness. On every path, the tree is dead whenever the machine is idle, crashed or failed, and no
// launch ever starts while a previous tree is alive.
import { describe, expect, test } from 'vitest';
import { dropPrefixPaths, instanceModel, modelInput, replay, transitionPaths } from './support/instance-model.js';
import type { InstancePath, ModelOptions } from './support/instance-model.js';

const EVERY_EVENT = [
  'START', 'STOP', 'RESTART', 'RESET',
  'launched', 'launchFailed', 'HEALTHY', 'PROCESS_EXITED', 'HEALTH_FAILED', 'PIDS_DISCOVERED', 'monitorFailed',
  'treeDead', 'survivor', 'terminateFailed',
  'after:startupTimeout', 'after:backoff', 'after:retryStop', 'after:resetAfter',
];

// Crash, cleanup and restart: how the tree dies and how the budget runs out.
const CRASH_EVENTS = [
  'START', 'STOP', 'RESET', 'launched', 'launchFailed', 'HEALTHY', 'PROCESS_EXITED', 'treeDead', 'survivor',
  'after:startupTimeout', 'after:backoff', 'after:retryStop', 'after:resetAfter',
];

// Intent: START / STOP / RESTART arriving in every state, with survivors delaying the stop.
const INTENT_EVENTS = [
  'START', 'STOP', 'RESTART', 'launched', 'HEALTHY', 'PROCESS_EXITED', 'treeDead', 'survivor',
  'after:backoff', 'after:retryStop',
];

const FULL: ModelOptions = { maxRestarts: 2, maxAttempt: 2, events: EVERY_EVENT };

async function replayAll(paths: InstancePath[], options: ModelOptions): Promise<void> {
  const input = modelInput(options.maxRestarts);
  for (const path of paths) await replay(path, input);
}

describe('instance machine, model-based', () => {
  test('shortest paths reach every state (all events, budget 2, two escalations) and replay without a violation', async () => {
    const paths = instanceModel(FULL).getShortestPaths({ allowDuplicatePaths: true }) as InstancePath[];
    console.log(`instance model: ${paths.length} shortest paths (one per reachable state)`);
    expect(paths.length).toBeGreaterThanOrEqual(100);
    await replayAll(paths, FULL);
  }, 120_000);

  test('every transition of the full model, taken after the shortest path to its source, replays without a violation', async () => {
    const paths = transitionPaths(instanceModel(FULL));
    console.log(`instance model: ${paths.length} transition paths (one per edge)`);
    expect(paths.length).toBeGreaterThanOrEqual(500);
    await replayAll(paths, FULL);
  }, 120_000);

  test('simple paths through crash, cleanup, backoff and budget (budget 1, one escalation) replay without a violation', async () => {
    const options = { maxRestarts: 1, maxAttempt: 1, events: CRASH_EVENTS };
    const paths = dropPrefixPaths(instanceModel(options).getSimplePaths({ allowDuplicatePaths: true }) as InstancePath[]);
    console.log(`instance model: ${paths.length} simple paths (crash, cleanup, budget)`);
    expect(paths.length).toBeGreaterThanOrEqual(1000);
    await replayAll(paths, options);
  }, 120_000);

  test('simple paths through START / STOP / RESTART intent (budget 1, one escalation) replay without a violation', async () => {
    const options = { maxRestarts: 1, maxAttempt: 1, events: INTENT_EVENTS };
    const paths = dropPrefixPaths(instanceModel(options).getSimplePaths({ allowDuplicatePaths: true }) as InstancePath[]);
    console.log(`instance model: ${paths.length} simple paths (intent)`);
    expect(paths.length).toBeGreaterThanOrEqual(1000);
    await replayAll(paths, options);
  }, 120_000);
});
