// Test support for the machines: a simulated clock that can step timer by timer, a fake process tree that records
// liveness, and fake launchTree / monitorTree / terminateTree actors that drive it.
import { createActor, fromCallback, fromPromise, SimulatedClock } from 'xstate';
import type { Actor, AnyActorRef, EventObject } from 'xstate';
import { instanceMachine } from '../../../machines/index.js';
import type {
  InstanceAlert,
  InstanceInput,
  LaunchInput,
  LaunchOutput,
  MonitorEvent,
  MonitorInput,
  RestartPolicy,
  TerminateInput,
  TerminationReport,
} from '../../../machines/index.js';

// Lets promise callbacks (fromPromise resolutions, deferred sends) run.
export async function flush(rounds = 1): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

// xstate's SimulatedClock, plus knowledge of when each pending timer is due, so tests can step timer by timer.
export class TestClock extends SimulatedClock {
  private readonly due = new Map<number, number>();

  override setTimeout(fn: (...args: unknown[]) => void, timeout: number): number {
    const id: number = super.setTimeout(() => {
      this.due.delete(id);
      fn();
    }, timeout);
    this.due.set(id, this.now() + timeout);
    return id;
  }

  override clearTimeout(id: number): void {
    this.due.delete(id);
    super.clearTimeout(id);
  }

  /** When the earliest pending timer fires, or undefined when none is pending. */
  nextDue(): number | undefined {
    const times = [...this.due.values()];
    return times.length === 0 ? undefined : Math.min(...times);
  }

  /** Fires the earliest pending timer (and any due at the same instant), then lets promises settle. */
  async fireNext(): Promise<number> {
    const due = this.nextDue();
    if (due === undefined) throw new Error('no timer is pending');
    this.set(Math.max(due, this.now()));
    await flush();
    return due;
  }

  /** Moves time forward by ms, firing timers one instant at a time and letting promises settle in between. */
  async advance(ms: number): Promise<void> {
    const target = this.now() + ms;
    for (let due = this.nextDue(); due !== undefined && due <= target; due = this.nextDue()) {
      this.set(Math.max(due, this.now()));
      await flush();
    }
    this.set(target);
    await flush();
  }
}

/** A fake WebUI tree: a shell parent and a Python child, each alive or not. */
export class FakeTree {
  shell = false;
  python = false;
  launches = 0;
  readonly violations: string[] = [];

  get alive(): boolean {
    return this.shell || this.python;
  }

  spawn(): void {
    if (this.alive) this.violations.push(`launch #${this.launches + 1} while the previous tree was still alive`);
    this.launches += 1;
    this.shell = true;
    this.python = true;
  }

  /** Python exits; the shell parent stays (the incident's respawn loop). */
  pythonExits(): void {
    this.python = false;
  }

  kill(): void {
    this.shell = false;
    this.python = false;
  }
}

export const LAUNCH_OUTPUT: LaunchOutput = { pid: 4100, pgid: 4100, shellPid: 4100, pythonPid: 4101, marker: 'webui:t0k3n', startedAt: 0 };
export const SURVIVOR = { pid: 4100, name: 'bash', role: 'shell' as const, reason: 'still alive after SIGKILL' };

// A report of a terminate attempt, with or without the shell surviving.
export function report(survived: boolean): TerminationReport {
  return {
    survivors: survived ? [SURVIVOR] : [],
    killed: survived
      ? [{ pid: 4101, name: 'python3', role: 'python', signal: 'SIGKILL' }]
      : [
          { pid: 4100, name: 'bash', role: 'shell', signal: 'SIGKILL' },
          { pid: 4101, name: 'python3', role: 'python', signal: 'SIGTERM' },
        ],
    escalated: survived,
    durationMs: 12,
  };
}

interface Pending<T, I> {
  input: I;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

/** What a terminate attempt does in automatic mode. */
export type TerminateOutcome = 'dead' | 'survivor' | 'error';

export interface HarnessOptions {
  input?: Omit<Partial<InstanceInput>, 'restart'> & { restart?: Partial<RestartPolicy> };
  /** Launches resolve at once (default) or wait for resolveLaunch(). */
  autoLaunch?: boolean;
  /** Decides each terminate attempt at once; absent: wait for resolveTerminate()/rejectTerminate(). */
  terminate?: (input: TerminateInput) => TerminateOutcome;
}

export const POLICY: RestartPolicy = {
  onCrash: true,
  baseDelayMs: 1000,
  maxDelayMs: 60_000,
  maxRestarts: 5,
  windowMs: 300_000,
  resetAfterMs: 600_000,
  jitter: 0.1,
};

// An instance machine actor on a TestClock with fake actors over a FakeTree, plus a log of what happened.
export class InstanceHarness {
  readonly clock = new TestClock();
  readonly tree = new FakeTree();
  readonly log: string[] = [];
  readonly alerts: InstanceAlert[] = [];
  readonly launchTimes: number[] = [];
  /** The AbortSignal each launch got: aborted when the machine cancels the launch. */
  readonly launchSignals: AbortSignal[] = [];
  readonly terminates: TerminateInput[] = [];
  pendingLaunch: Pending<LaunchOutput, LaunchInput> | null = null;
  pendingTerminate: Pending<TerminationReport, TerminateInput> | null = null;
  monitor: { phase: MonitorInput['phase']; sendBack: (event: MonitorEvent) => void } | null = null;
  readonly input: InstanceInput;
  readonly actor: Actor<typeof instanceMachine>;

  constructor(options: HarnessOptions = {}) {
    const autoLaunch = options.autoLaunch ?? true;
    this.input = {
      id: 'webui',
      startupTimeoutMs: 60_000,
      retryStopDelayMs: 1000,
      seed: 42,
      ...options.input,
      restart: { ...POLICY, ...options.input?.restart },
    };
    const machine = instanceMachine.provide({
      actors: {
        launchTree: fromPromise<LaunchOutput, LaunchInput>(({ input, signal }) => {
          this.tree.spawn();
          this.launchSignals.push(signal);
          this.launchTimes.push(this.clock.now());
          this.log.push(`launch(attempt ${input.attempt})`);
          const output = { ...LAUNCH_OUTPUT, startedAt: this.clock.now() };
          if (autoLaunch) return Promise.resolve(output);
          return new Promise((resolve, reject) => {
            this.pendingLaunch = { input, resolve, reject };
          });
        }),
        monitorTree: fromCallback<EventObject, MonitorInput>(({ sendBack, receive, input }) => {
          const entry = { phase: input.phase, sendBack: (event: MonitorEvent) => sendBack(event) };
          this.monitor = entry;
          receive((event) => {
            if (event.type === 'FAIL') throw new Error('monitor lost the process table');
          });
          return () => {
            if (this.monitor === entry) this.monitor = null;
          };
        }),
        terminateTree: fromPromise<TerminationReport, TerminateInput>(({ input }) => {
          this.terminates.push(input);
          this.log.push(`terminate(${input.reason}, attempt ${input.attempt})`);
          const decide = options.terminate;
          if (decide) {
            const outcome = decide(input);
            if (outcome === 'error') return Promise.reject(new Error('EPERM reading /proc'));
            if (outcome === 'dead') this.tree.kill();
            else this.tree.pythonExits();
            return Promise.resolve(report(outcome === 'survivor'));
          }
          return new Promise((resolve, reject) => {
            this.pendingTerminate = { input, resolve, reject };
          });
        }),
      },
    });
    this.actor = createActor(machine, { input: this.input, clock: this.clock });
    this.actor.on('ALERT', (alert) => this.alerts.push(alert));
    let last = '';
    this.actor.subscribe((snapshot) => {
      const value = JSON.stringify(snapshot.value);
      const top = typeof snapshot.value === 'string' ? snapshot.value : Object.keys(snapshot.value)[0];
      if ((top === 'idle' || top === 'crashed' || top === 'failed') && this.tree.alive) {
        this.tree.violations.push(`entered ${value} while the tree was alive (shell ${this.tree.shell}, python ${this.tree.python})`);
      }
      if (value !== last) this.log.push(value);
      last = value;
    });
  }

  start(): this {
    this.actor.start();
    return this;
  }

  get value(): unknown {
    return this.actor.getSnapshot().value;
  }

  get context() {
    return this.actor.getSnapshot().context;
  }

  async send(event: Parameters<Actor<typeof instanceMachine>['send']>[0]): Promise<void> {
    this.actor.send(event);
    await flush();
  }

  /** What the monitor would send; fails the test when no monitor is running. */
  async report(event: MonitorEvent): Promise<void> {
    if (!this.monitor) throw new Error(`no monitor is running (state ${JSON.stringify(this.value)})`);
    if (event.type === 'PROCESS_EXITED') this.tree.pythonExits();
    this.monitor.sendBack(event);
    await flush();
  }

  async failMonitor(): Promise<void> {
    const child = this.actor.getSnapshot().children['monitor'] as AnyActorRef | undefined;
    if (!child) throw new Error('no monitor child');
    child.send({ type: 'FAIL' });
    await flush();
  }

  async resolveLaunch(output: LaunchOutput = LAUNCH_OUTPUT): Promise<void> {
    const pending = this.takeLaunch();
    pending.resolve(output);
    await flush();
  }

  async rejectLaunch(error: unknown = new Error('spawn ENOENT')): Promise<void> {
    this.takeLaunch().reject(error);
    await flush();
  }

  async resolveTerminate(result: TerminationReport): Promise<void> {
    const pending = this.takeTerminate();
    if (Array.isArray(result.survivors) && result.survivors.length === 0) this.tree.kill();
    else this.tree.pythonExits();
    pending.resolve(result);
    await flush();
  }

  async rejectTerminate(error: unknown = new Error('EPERM reading /proc')): Promise<void> {
    this.takeTerminate().reject(error);
    await flush();
  }

  private takeLaunch(): Pending<LaunchOutput, LaunchInput> {
    const pending = this.pendingLaunch;
    if (!pending) throw new Error(`no launch is pending (state ${JSON.stringify(this.value)})`);
    this.pendingLaunch = null;
    return pending;
  }

  private takeTerminate(): Pending<TerminationReport, TerminateInput> {
    const pending = this.pendingTerminate;
    if (!pending) throw new Error(`no terminate is pending (state ${JSON.stringify(this.value)})`);
    this.pendingTerminate = null;
    return pending;
  }
}
