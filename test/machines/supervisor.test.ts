// The supervisor: shutdown ordering and honesty, emergency response, command routing, child errors.
import { describe, expect, test } from 'vitest';
import { createActor, fromCallback, fromPromise } from 'xstate';
import type { AnyActorRef, EventObject } from 'xstate';
import { instanceMachine, supervisorMachine } from '../../machines/index.js';
import type {
  EmergencyInput,
  InstanceInput,
  LaunchInput,
  LaunchOutput,
  MonitorEvent,
  MonitorInput,
  SupervisorEmitted,
  TerminateInput,
  TerminationReport,
} from '../../machines/index.js';
import { FakeTree, flush, LAUNCH_OUTPUT, POLICY, report, SURVIVOR, TestClock } from './support/harness.js';

const instance = (id: string): InstanceInput => ({ id, startupTimeoutMs: 60_000, retryStopDelayMs: 1000, restart: POLICY });

interface Options {
  ids?: string[];
  /** Instances whose terminate always leaves the shell alive. */
  stuck?: string[];
  /** Instances whose shell refuses our signals (EPERM): every terminate reports it alive and denied. */
  denied?: string[];
  /** Instances whose machine errors on launch (a broken action). */
  broken?: string[];
  /** Makes writeDiagnosticBundle wait until this promise settles. */
  bundleGate?: Promise<void>;
}

// A supervisor over fake trees, with a record of the order in which things happened.
function supervise(options: Options = {}) {
  const ids = options.ids ?? ['webui', 'webui-2'];
  const clock = new TestClock();
  const trees = new Map(ids.map((id) => [id, new FakeTree()]));
  const monitors = new Map<string, (event: MonitorEvent) => void>();
  const order: string[] = [];
  const emitted: SupervisorEmitted[] = [];
  const emergencyInputs: Array<[string, EmergencyInput]> = [];
  let watchdogRef: AnyActorRef | undefined;

  const instanceLogic = instanceMachine.provide({
    actors: {
      launchTree: fromPromise<LaunchOutput, LaunchInput>(async ({ input }) => {
        trees.get(input.id)?.spawn();
        return LAUNCH_OUTPUT;
      }),
      monitorTree: fromCallback<EventObject, MonitorInput>(({ sendBack, input }) => {
        monitors.set(input.id, (event) => sendBack(event));
      }),
      terminateTree: fromPromise<TerminationReport, TerminateInput>(async ({ input }) => {
        order.push(`terminate ${input.id} (${input.reason}, attempt ${input.attempt}; watchdog ${watchdogRef?.getSnapshot().status})`);
        const tree = trees.get(input.id) as FakeTree;
        if (options.denied?.includes(input.id)) {
          tree.pythonExits();
          return { ...report(true), survivors: [{ ...SURVIVOR, reason: 'EPERM', denied: true }] };
        }
        if (options.stuck?.includes(input.id)) {
          tree.pythonExits();
          return report(true);
        }
        tree.kill();
        return report(false);
      }),
    },
    actions: {
      recordLaunch: ({ context }) => {
        if (options.broken?.includes(context.id)) throw new Error(`broken bookkeeping in ${context.id}`);
      },
    },
  });
  const machine = supervisorMachine.provide({
    actors: {
      instance: instanceLogic,
      reapOrphans: fromPromise<unknown, EmergencyInput>(async ({ input }) => {
        emergencyInputs.push(['reapOrphans', input]);
        return { reaped: [4242] };
      }),
      writeDiagnosticBundle: fromPromise<unknown, EmergencyInput>(async ({ input }) => {
        emergencyInputs.push(['writeDiagnosticBundle', input]);
        await options.bundleGate;
        return { path: '.warden/diagnostics/1.tar' };
      }),
    },
  });
  const actor = createActor(machine, { input: { instances: ids.map(instance), watchdog: {} }, clock });
  actor.on('*', (event) => emitted.push(event));
  actor.start();
  watchdogRef = actor.system.get('watchdog');

  const child = (id: string) => actor.system.get(`instance:${id}`) as AnyActorRef | undefined;
  return {
    actor,
    clock,
    trees,
    order,
    emitted,
    emergencyInputs,
    watchdog: () => watchdogRef,
    child,
    stateOf: (id: string) => child(id)?.getSnapshot().value,
    async send(event: Parameters<typeof actor.send>[0]) {
      actor.send(event);
      await flush(3);
    },
    async healthy(id: string) {
      monitors.get(id)?.({ type: 'HEALTHY' });
      await flush(3);
    },
  };
}

async function startAll(s: ReturnType<typeof supervise>, ids: string[]) {
  await s.send({ type: 'START' });
  for (const id of ids) await s.healthy(id);
  for (const id of ids) expect(s.stateOf(id)).toBe('running');
}

describe('supervisor', () => {
  test('it spawns one instance actor per configured instance (id and systemId instance:<id>) and the watchdog', () => {
    const s = supervise();
    expect(Object.keys(s.actor.getSnapshot().children).sort()).toEqual(['instance:webui', 'instance:webui-2', 'watchdog']);
    expect(s.child('webui')?.id).toBe('instance:webui');
    expect(s.watchdog()?.id).toBe('watchdog');
  });

  test('commands go to one instance by id, or to all; an unknown id is refused', async () => {
    const s = supervise();
    await s.send({ type: 'START', id: 'webui-2' });
    expect(s.stateOf('webui')).toBe('idle');
    expect(s.stateOf('webui-2')).toEqual({ spawning: 'awaitingHealth' });
    await s.send({ type: 'STOP', id: 'nope' });
    expect(s.emitted).toContainEqual({ type: 'COMMAND_REFUSED', command: 'STOP', id: 'nope', reason: 'no instance "nope" is configured' });
    expect(s.actor.getSnapshot().context.instances['webui-2']?.state).toBe('spawning');
  });

  test('shutdown stops the watchdog first, then every instance, and ends with each confirmed report', async () => {
    const s = supervise();
    await startAll(s, ['webui', 'webui-2']);
    await s.send({ type: 'SHUTDOWN' });
    expect(s.watchdog()?.getSnapshot().status).toBe('stopped');
    expect(s.order).toEqual([
      'terminate webui (shutdown, attempt 0; watchdog stopped)',
      'terminate webui-2 (shutdown, attempt 0; watchdog stopped)',
    ]);
    const snapshot = s.actor.getSnapshot();
    expect(snapshot.status).toBe('done');
    expect(snapshot.output).toEqual({
      ok: true,
      instances: ['webui', 'webui-2'].map((id) => ({
        id,
        state: 'idle',
        confirmedDead: true,
        stuck: false,
        survivors: [],
        lastReport: report(false),
        lastError: null,
      })),
    });
    for (const tree of s.trees.values()) expect(tree.alive).toBe(false);
  });

  test('an instance whose terminate keeps reporting a survivor keeps shutdown waiting while it retries, then is reported stuck, never stopped', async () => {
    const s = supervise({ stuck: ['webui-2'] });
    await startAll(s, ['webui', 'webui-2']);
    const stuckChild = s.child('webui-2') as AnyActorRef;
    await s.send({ type: 'SHUTDOWN' });
    // Attempts 0 to 3 leave a retry pending: shutdown waits, naming who is left.
    for (let i = 0; i < 3; i++) await s.clock.fireNext();
    expect(s.actor.getSnapshot().value).toBe('shuttingDown');
    expect(s.actor.getSnapshot().context.awaiting).toEqual(['webui-2']);
    expect(s.actor.getSnapshot().context.stuck).toEqual(['webui-2']);
    // The fifth attempt (the default maxStopAttempts) gives up: no retry is coming, so shutdown completes at once.
    await s.clock.fireNext();
    await expect(s.clock.fireNext()).rejects.toThrow('no timer is pending');
    const snapshot = s.actor.getSnapshot();
    expect(snapshot.status).toBe('done');
    expect(snapshot.value).toBe('stopped');
    expect(snapshot.output?.ok).toBe(false);
    expect(snapshot.output?.instances.find((i) => i.id === 'webui-2')).toMatchObject({
      state: 'stopping',
      confirmedDead: false,
      stuck: true,
      survivors: [SURVIVOR],
    });
    expect(snapshot.output?.instances.find((i) => i.id === 'webui')).toMatchObject({ state: 'idle', confirmedDead: true, stuck: false, survivors: [] });
    // The instance never left stopping unconfirmed, and nothing was launched: it was stopped where it gave up.
    expect(stuckChild.getSnapshot().value).toEqual({ stopping: 'stuck' });
    expect(s.trees.get('webui-2')?.shell).toBe(true);
    expect(s.trees.get('webui-2')?.launches).toBe(1);
    expect(s.order.filter((line) => line.startsWith('terminate webui-2')).map((line) => /attempt (\d)/.exec(line)?.[1])).toEqual([
      '0', '1', '2', '3', '4',
    ]);
    const alerts = s.emitted.filter((e) => e.type === 'INSTANCE_ALERT');
    expect(alerts).toHaveLength(5);
    expect(alerts[0]).toMatchObject({ id: 'webui-2', alert: { kind: 'survivors', survivors: [{ pid: 4100, role: 'shell' }] } });
    expect(alerts[4]).toMatchObject({ id: 'webui-2', alert: { kind: 'stop-stuck', survivors: [{ pid: 4100, role: 'shell' }] } });
  });

  test('a survivor that refuses our signals (EPERM) ends shutdown after one attempt, reported stuck with that survivor', async () => {
    const s = supervise({ denied: ['webui'] });
    await startAll(s, ['webui', 'webui-2']);
    await s.send({ type: 'SHUTDOWN' });
    await expect(s.clock.fireNext()).rejects.toThrow('no timer is pending');
    const snapshot = s.actor.getSnapshot();
    expect(snapshot.status).toBe('done');
    expect(snapshot.output?.ok).toBe(false);
    expect(snapshot.output?.instances.find((i) => i.id === 'webui')).toMatchObject({
      state: 'stopping',
      confirmedDead: false,
      stuck: true,
      survivors: [{ pid: 4100, role: 'shell', denied: true }],
    });
    expect(s.order.filter((line) => line.startsWith('terminate webui ')).length).toBe(1);
  });

  test('an instance that gave up before shutdown gets a fresh round: confirmed dead when it now dies, stuck when it gives up again', async () => {
    const stuck = ['webui'];
    const s = supervise({ stuck });
    await startAll(s, ['webui', 'webui-2']);
    await s.send({ type: 'STOP', id: 'webui' });
    for (let i = 0; i < 4; i++) await s.clock.fireNext();
    expect(s.stateOf('webui')).toEqual({ stopping: 'stuck' });
    // The earlier give-up does not end the shutdown by itself: the shutdown STOP starts new attempts.
    stuck.splice(0);
    await s.send({ type: 'SHUTDOWN' });
    const snapshot = s.actor.getSnapshot();
    expect(snapshot.status).toBe('done');
    expect(snapshot.output?.ok).toBe(true);
    expect(snapshot.output?.instances.find((i) => i.id === 'webui')).toMatchObject({ state: 'idle', confirmedDead: true, stuck: false });

    const again = supervise({ stuck: ['webui'] });
    await startAll(again, ['webui', 'webui-2']);
    await again.send({ type: 'STOP', id: 'webui' });
    for (let i = 0; i < 4; i++) await again.clock.fireNext();
    await again.send({ type: 'SHUTDOWN' });
    expect(again.actor.getSnapshot().value).toBe('shuttingDown');
    for (let i = 0; i < 4; i++) await again.clock.fireNext();
    expect(again.actor.getSnapshot().status).toBe('done');
    expect(again.actor.getSnapshot().output?.instances.find((i) => i.id === 'webui')).toMatchObject({ confirmedDead: false, stuck: true });
  });

  test('shutdown of instances that never started completes at once (each acknowledges STOP)', async () => {
    const s = supervise();
    await s.send({ type: 'SHUTDOWN' });
    expect(s.actor.getSnapshot().status).toBe('done');
    expect(s.actor.getSnapshot().output?.ok).toBe(true);
    expect(s.order).toEqual([]);
  });

  test('START during shutdown is refused', async () => {
    const s = supervise({ stuck: ['webui'] });
    await startAll(s, ['webui', 'webui-2']);
    await s.send({ type: 'SHUTDOWN' });
    await s.send({ type: 'START', id: 'webui-2' });
    expect(s.stateOf('webui-2')).toBe('idle');
    expect(s.emitted).toContainEqual({ type: 'COMMAND_REFUSED', command: 'START', id: 'webui-2', reason: 'shutting down' });
  });

  test('a runaway count stops every instance, reaps orphans, writes diagnostics and holds restarts until RESET', async () => {
    const s = supervise();
    await startAll(s, ['webui', 'webui-2']);
    await s.send({ type: 'SAMPLE', at: 1000, counts: { python: 14, shell: 2, total: 16, stale: 3, foreign: 1 } });
    const context = s.actor.getSnapshot().context;
    expect(s.actor.getSnapshot().value).toEqual({ supervising: 'holding' });
    expect(context.holdRestarts).toBe(true);
    expect(context.watchdogLevel).toBe('critical');
    expect(s.order).toEqual([
      'terminate webui (emergency, attempt 0; watchdog active)',
      'terminate webui-2 (emergency, attempt 0; watchdog active)',
    ]);
    expect(s.stateOf('webui')).toBe('idle');
    expect(s.emergencyInputs.map(([name, input]) => [name, input.level, input.reason])).toEqual([
      ['reapOrphans', 'critical', 'python 14 > 10'],
      ['writeDiagnosticBundle', 'critical', 'python 14 > 10'],
    ]);
    expect(context.emergency).toMatchObject({ reaped: { reaped: [4242] }, bundle: { path: '.warden/diagnostics/1.tar' }, errors: [] });

    await s.send({ type: 'START', id: 'webui' });
    expect(s.stateOf('webui')).toBe('idle');
    expect(s.emitted).toContainEqual(expect.objectContaining({ type: 'COMMAND_REFUSED', command: 'START', id: 'webui' }));

    await s.send({ type: 'RESET', id: 'webui' });
    expect(s.actor.getSnapshot().context.holdRestarts).toBe(true);
    await s.send({ type: 'RESET' });
    expect(s.actor.getSnapshot().value).toEqual({ supervising: 'normal' });
    await s.send({ type: 'START', id: 'webui' });
    expect(s.stateOf('webui')).toEqual({ spawning: 'awaitingHealth' });
  });

  test('a RESET sent while the emergency still reaps and writes its bundle is honoured when they finish', async () => {
    let open = (): void => undefined;
    const bundleGate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const s = supervise({ bundleGate });
    await startAll(s, ['webui', 'webui-2']);
    await s.send({ type: 'SAMPLE', at: 1000, counts: { python: 14, shell: 2, total: 16, stale: 3, foreign: 1 } });
    expect(s.actor.getSnapshot().value).toMatchObject({ supervising: { emergency: expect.anything() } });

    await s.send({ type: 'RESET' });
    expect(s.actor.getSnapshot().context.holdRestarts).toBe(true);
    open();
    await s.send({ type: 'SAMPLE', at: 2000, counts: { python: 0, shell: 0, total: 0, stale: 0, foreign: 0 } });

    expect(s.actor.getSnapshot().value).toEqual({ supervising: 'normal' });
    expect(s.actor.getSnapshot().context.holdRestarts).toBe(false);
    await s.send({ type: 'START', id: 'webui' });
    expect(s.stateOf('webui')).toEqual({ spawning: 'awaitingHealth' });
  });

  test('an instance actor that errors is recorded and refused; the root and the other instances carry on', async () => {
    const s = supervise({ broken: ['webui-2'] });
    await s.send({ type: 'START' });
    await s.healthy('webui');
    expect(s.actor.getSnapshot().status).toBe('active');
    expect(s.actor.getSnapshot().context.childErrors).toEqual({ 'instance:webui-2': 'broken bookkeeping in webui-2' });
    expect(s.emitted).toContainEqual({ type: 'CHILD_FAILED', child: 'instance:webui-2', error: 'broken bookkeeping in webui-2' });
    expect(s.stateOf('webui')).toBe('running');

    await s.send({ type: 'RESTART', id: 'webui-2' });
    expect(s.emitted).toContainEqual(expect.objectContaining({ type: 'COMMAND_REFUSED', command: 'RESTART', id: 'webui-2' }));

    await s.send({ type: 'SHUTDOWN' });
    const output = s.actor.getSnapshot().output;
    expect(output?.ok).toBe(false);
    expect(output?.instances.find((i) => i.id === 'webui-2')).toMatchObject({
      confirmedDead: false,
      lastError: 'instance actor errored: broken bookkeeping in webui-2',
    });
    expect(output?.instances.find((i) => i.id === 'webui')).toMatchObject({ confirmedDead: true, state: 'idle' });
  });

  test('a duplicate instance id is refused with its name', () => {
    const actor = createActor(supervisorMachine, { input: { instances: [instance('a'), instance('a')] } });
    let error: unknown;
    actor.subscribe({ error: (e) => (error = e) });
    actor.start();
    expect(String(error)).toContain('instance id "a" is configured twice');
  });
});
