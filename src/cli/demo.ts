// `warden demo`: supervises the bundled fake WebUI through a crash, a runaway and a shutdown, and proves nothing is left.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSupervisor } from '../runtime/supervisor.js';
import type { Supervisor, WardenEvent } from '../runtime/supervisor.js';
import { hasProcfs, readEnvironVariable, readStartTime } from '../process/posix/procfs.js';
import { resolveCommand, snapshotProcSync } from '../process/index.js';
import { MARKER_VARIABLE, STATE_DIR_VARIABLE } from '../process/types.js';
import { CliError, EXIT, describeError } from './exit.js';
import { createEventPrinter } from './events.js';
import { byRole, createOutput, duration, pidList, plural, stamp } from './output.js';
import type { Output } from './output.js';
import { fakeWebuiDir } from './package.js';

export interface DemoOptions {
  keepRunning?: boolean;
  json?: boolean;
  /** Instance id; default `webui-<4 hex>`, fresh per run, so this run's processes are easy to tell apart. */
  id?: string;
  workers?: number;
  runaway?: number;
}

/** One injected stray process: ours, because we spawned it and recorded its start time. */
interface Planted {
  pid: number;
  startTime: number | undefined;
}

const WAIT_MS = 20_000;
/** What the demo copies from examples/fake-webui into its own install dir. */
const FAKE_FILES = ['webui.sh', 'webui-user.sh', 'launch.py', 'worker.py'];

// Runs the story; resolves with the exit code (0 only when nothing of the demo is left anywhere).
export async function demoCommand(options: DemoOptions): Promise<number> {
  if (process.platform === 'win32') {
    throw new CliError('warden demo runs the bash version of the fake WebUI and needs Linux or macOS (Windows: use `warden run` with examples/fake-webui/webui-user.bat)', EXIT.unavailable);
  }
  const fake = fakeWebuiDir();
  for (const tool of ['bash', 'python3']) {
    try {
      resolveCommand(tool, process.cwd(), process.env);
    } catch {
      throw new CliError(`warden demo needs ${tool} on PATH (the fake WebUI is a bash wrapper around a Python 3 script)`, EXIT.unavailable);
    }
  }
  const python = interpreter();
  // The supervisor's own logs would drown the story; WARDEN_LOG_LEVEL=info brings them back (on stderr).
  process.env.WARDEN_LOG_LEVEL ??= 'silent';

  const origin = performance.now();
  const out = createOutput();
  const say = options.json === true ? (): void => undefined : (text = ''): void => out.line(text);
  const { style } = out;
  const id = options.id ?? `webui-${randomBytes(2).toString('hex')}`;
  const workers = options.workers ?? 4;
  const runawayCount = options.runaway ?? 12;
  const root = mkdtempSync(join(tmpdir(), 'warden-demo-'));
  // The WebUI's own "install dir": a copy of the fake, so no other run of examples/fake-webui (a test, a second
  // demo) looks like this instance to the start-time look-alike check, and the config reads like a real one.
  const workDir = join(root, 'webui');
  mkdirSync(workDir);
  for (const file of FAKE_FILES) {
    copyFileSync(join(fake, file), join(workDir, file));
    chmodSync(join(workDir, file), file.endsWith('.md') ? 0o644 : 0o755);
  }
  const stateDir = join(root, 'state');
  const port = await freePort();
  const config = {
    stateDir,
    instances: [
      {
        id,
        command: './webui.sh',
        // -f: like A1111's webui.sh, the fake refuses to run as root without it.
        args: ['-f', '--port', String(port), '--workers', String(workers)],
        cwd: workDir,
        // webui.sh's python_cmd: the interpreter itself, so a version-manager shim (a bash script) never shows up in the counts.
        env: { FAKE_WEBUI_STATE_DIR: workDir, python_cmd: python },
        health: { url: `http://127.0.0.1:${port}/internal/ping`, intervalMs: 250, timeoutMs: 200, failureThreshold: 2 },
        startupTimeoutMs: 20_000,
        stopGraceMs: 1500,
        restart: { onCrash: true, baseDelayMs: 300, maxDelayMs: 2000, maxRestarts: 5, windowMs: 60_000 },
      },
    ],
    watchdog: { sampleIntervalMs: 250, calmSamples: 2, emergencyWindowMs: 60_000 },
    server: { host: '127.0.0.1', port: 0 },
  };
  const supervisor = createSupervisor(config, { baseDir: root });
  const story = new Story(supervisor, out, origin, id, options.json !== true);
  let shutdownAnnounced = false;
  const announceShutdown = (): void => {
    if (shutdownAnnounced) return;
    shutdownAnnounced = true;
    step(4, 'Shutdown', 'stop the watchdog, stop every instance (confirmed), release the lock');
  };
  // A shutdown asked for through the API (--keep-running) begins before the story's step 4: say so first.
  story.onShutdownBegins = announceShutdown;
  const steps: Array<{ step: number; title: string; atMs: number }> = [];
  const planted: Planted[] = [];
  const plantedMarker = `${id}:${randomBytes(8).toString('hex')}`;
  let bundle: string | undefined;
  let failure: string | undefined;
  let interrupted = false;
  let storyDone = false;
  let server: { url: string; token: string; close(): Promise<void> } | undefined;

  const step = (n: number, title: string, what: string): void => {
    steps.push({ step: n, title, atMs: Math.round(performance.now() - origin) });
    say();
    say(style.bold(`${n}/4  ${title}`) + style.dim(`  ${what}`));
  };
  const detail = (text: string): void => say(`${' '.repeat(10)}${text}`);
  const summary = (text: string): void => say(`  ${text}`);
  // On a terminal, a breath between steps, so a newcomer can read along; never when piped.
  const breathe = (): Promise<unknown> => (out.tty && options.json !== true && !interrupted ? sleep(900) : Promise.resolve());

  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      out.note(`warden: ${signal} again: still confirming every process dead (a force-quit leaves it to the sentinel)`);
      return;
    }
    interrupted = true;
    story.abort(`interrupted by ${signal}`);
    // Mid-story a start() may be pending: shutting down now settles it. After the story, step 4 does it in order.
    if (!storyDone) {
      out.note(`warden: ${signal}: stopping the demo (shutting down, confirmed)`);
      void supervisor.shutdown().catch((error: unknown) => out.note(`warden: shutdown failed: ${(error as Error).message}`));
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  say(style.bold('Warden demo') + style.dim(`  (${new Date().toISOString()})`));
  say('Warden supervises a Stable Diffusion WebUI: it starts the shell wrapper and its Python tree, proves which');
  say('processes are its own (a marker in the environment that every child inherits), counts them, and never starts');
  say('a new tree before the old one is read back dead from the process table. This demo runs the bundled fake');
  say(`WebUI (bash webui.sh → python3 launch.py → ${workers} workers; no GPU, no model) through a crash, a runaway and a shutdown.`);
  say();
  say(`  instance   ${style.cyan(id)}  (marker ${MARKER_VARIABLE}=${id}:<token>)`);
  say(`  command    ./webui.sh -f --port ${port} --workers ${workers}`);
  const shown = relative(process.cwd(), fake);
  say(`  in         ${workDir}  (a copy of ${shown === '' || shown.startsWith('..') ? fake : shown})`);
  say(`  state dir  ${stateDir}`);

  try {
    // ── 1. start ───────────────────────────────────────────────────────────────────────────────────────────
    step(1, 'Start', 'spawn the tree, wait until its health URL answers');
    await supervisor.start(id);
    const first = await story.freshCounts();
    detail(
      `healthy: shell pid ${first.shellPid ?? '?'} (bash) · python pid ${first.pythonPid ?? '?'} (launch.py) · ` +
        `${first.counts.python - 1} workers · counted python ${first.counts.python}, shell ${first.counts.shell}`,
    );

    await breathe();
    // ── 2. crash ───────────────────────────────────────────────────────────────────────────────────────────
    step(2, 'Crash', `Python dies on the spot and leaves its ${workers} workers orphaned, as a real crash does`);
    const beforeCrash = story.mark();
    detail(`POST http://127.0.0.1:${port}/sdapi/v1/server-kill  → ${await serverKill(port)}`);
    const crashReport = await story.waitFor(
      (event): event is Extract<WardenEvent, { type: 'termination' }> => event.type === 'termination' && event.reason === 'crash',
      beforeCrash,
      'the crashed tree to be confirmed dead',
    );
    if (crashReport.report.survivors.length === 0) {
      detail(style.green(`remains confirmed dead: ${byRole(crashReport.report.killed)} (the orphaned workers, found by marker), survivors 0`));
    }
    await story.waitFor((event) => event.type === 'transition' && event.to === 'running', beforeCrash, `${id} to run again after its backoff`);
    const second = await story.freshCounts();
    detail(
      `back: shell pid ${second.shellPid ?? '?'} (was ${first.shellPid ?? '?'}) · python pid ${second.pythonPid ?? '?'} ` +
        `(was ${first.pythonPid ?? '?'}) · restarts ${second.restarts} · counted python ${second.counts.python}, shell ${second.counts.shell}`,
    );

    await breathe();
    // ── 3. runaway ─────────────────────────────────────────────────────────────────────────────────────────
    if (!hasProcfs) {
      step(3, 'Runaway', 'skipped: finding strays by marker needs /proc (Linux)');
    } else {
      step(3, 'Runaway', `${runawayCount} stray Python processes carrying a stale marker of ${id}, outside its tree`);
      // One synchronous loop: spawn() returns once the child has exec'd (its marker is readable), and the sampler
      // runs on this event loop, so no sample can see only some of them.
      await story.waitFor((event) => event.type === 'sample', story.mark(), 'a process-table sample');
      const beforeRunaway = story.mark();
      story.watchStale = true;
      for (let index = 0; index < runawayCount; index += 1) planted.push(plant(python, workDir, plantedMarker, stateDir, index));
      detail(
        `injected ${runawayCount} × python3 worker.py (pids ${pidList(planted.map((entry) => entry.pid), 4)}) with ${MARKER_VARIABLE}=${plantedMarker}`,
      );
      detail(`and ${STATE_DIR_VARIABLE}=<state dir>, as a controller of this state dir that crashed earlier leaves them:`);
      detail('not in the tree, not in the registry; only the marker and the state dir say whose they are');
      await story.waitFor((event) => event.type === 'emergency', beforeRunaway, 'the watchdog to call an emergency');
      const bundleEvent = await story.waitFor(
        (event): event is Extract<WardenEvent, { type: 'bundle' }> => event.type === 'bundle',
        beforeRunaway,
        'the diagnostic bundle',
      );
      bundle = bundleEvent.path;
      await story.waitFor((event) => event.type === 'reap', beforeRunaway, 'the emergency reap');
      await story.until(() => supervisor.status().instances[0]?.state === 'idle', `${id} to be stopped by the emergency`);
      await story.until(() => planted.every((entry) => !alive(entry)), 'every injected stray to be dead');
      detail(style.green(`all ${runawayCount} strays and the instance's tree are gone; restarts stay held until reset()`));
      await story.until(() => {
        supervisor.reset();
        return !supervisor.status().holdRestarts;
      }, 'the emergency hold to be released');
      detail(`reset(): hold released; starting ${id} again`);
      await supervisor.start(id);
      const third = await story.freshCounts();
      detail(`recovered: shell pid ${third.shellPid ?? '?'} · python pid ${third.pythonPid ?? '?'} · counted python ${third.counts.python}, shell ${third.counts.shell}`);
      story.watchStale = false;
    }

    storyDone = true;
    if (options.keepRunning === true && !interrupted) {
      const { startControlServer } = await import('../server/index.js');
      server = await startControlServer(supervisor, {
        host: '127.0.0.1',
        port: 0,
        stateDir,
        // POST /api/shutdown (the dashboard's button) ends the demo like Ctrl-C does.
        onShutdown: () => onSignal('SIGTERM'),
      });
      say();
      say(style.bold('Still supervising') + style.dim('  (--keep-running)'));
      detail(`dashboard and API  ${server.url}`);
      detail(`token              ${server.token}  (also in ${join(stateDir, 'token')})`);
      detail(`try                curl -H "Authorization: Bearer ${server.token}" ${server.url}/api/status`);
      detail('Ctrl-C stops the demo: shutdown, confirmed, then the summary.');
      if (options.json === true) out.json({ type: 'server', url: server.url, token: server.token, stateDir });
      await story.aborted;
    }
  } catch (error) {
    if (!interrupted) failure = describeError(error).join('; ');
  }

  // ── 4. shutdown (always, also after a failure or Ctrl-C) ─────────────────────────────────────────────────
  announceShutdown();
  const shutdown = await supervisor.shutdown();
  await server?.close().catch(() => undefined);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);

  // The demo's own strays, if the story stopped before Warden reaped them: we spawned them, we end them.
  const strays = planted.filter(alive);
  for (const entry of strays) killPlanted(entry, plantedMarker);

  const leftovers = await leftoversOf(id);
  const survivors = [
    ...story.survivors(),
    ...shutdown.survivors.map((survivor) => ({ pid: survivor.pid, name: survivor.name, role: survivor.role })),
  ];
  // With --keep-running, Ctrl-C after the story is the normal end.
  const cut = interrupted && !(storyDone && options.keepRunning === true);
  const ok = failure === undefined && !cut && shutdown.ok && survivors.length === 0 && leftovers.length === 0 && strays.length === 0;
  const elapsedMs = performance.now() - origin;
  const spawned = story.spawnedByLaunches();
  const killed = story.killedPids();
  const exitCode = ok ? EXIT.ok : cut ? EXIT.interrupted : EXIT.failure;

  if (options.json === true) {
    out.json({
      ok,
      exitCode,
      instanceId: id,
      stateDir,
      bundle: bundle ?? null,
      elapsedMs: Math.round(elapsedMs),
      launches: story.launches(),
      spawned: { byLaunches: spawned, injected: planted.length },
      killed: killed.size,
      survivors,
      leftovers,
      strays: strays.map((entry) => entry.pid),
      failure: failure ?? (cut ? 'interrupted' : null),
      steps,
      events: story.events().filter((event) => event.type !== 'sample'),
    });
    return exitCode;
  }

  say();
  say(style.bold('Summary'));
  summary(`processes spawned: ${spawned} by Warden's ${plural(story.launches(), 'launch', 'launches')} + ${planted.length} injected strays (seen in /proc by marker)`);
  summary(`processes killed: ${killed.size} (each read back dead from the process table)`);
  summary(`survivors: ${survivors.length}${survivors.length === 0 ? '' : `  ${survivors.map((entry) => `${entry.pid} ${entry.name}`).join(', ')}`}`);
  summary(`left in /proc: ${leftovers.length === 0 ? `no process carries a ${id} marker` : style.red(leftovers.map((entry) => `${entry.pid} ${entry.name}`).join(', '))}`);
  if (strays.length > 0) detail(style.red(`injected strays Warden did not reap (the demo killed them itself): ${pidList(strays.map((entry) => entry.pid))}`));
  summary(`diagnostic bundle: ${bundle ?? 'none written'}`);
  summary(`elapsed: ${duration(elapsedMs)}`);
  say();
  if (ok) say(style.green(`Every process the demo started is gone. Exit 0.`));
  else if (cut) say(style.yellow(`Interrupted; ${leftovers.length === 0 && survivors.length === 0 ? 'nothing was left behind' : 'see what survived above'}. Exit ${exitCode}.`));
  else say(style.red(`Demo failed: ${failure ?? 'something survived (see above)'}. Exit ${exitCode}.`));
  if (ok) say(style.dim(`The state dir (bundle, registry) stays for you to read: ${root}`));
  return exitCode;
}

/** The story's view of the supervisor's events: recorded, printed live, waited on. */
class Story {
  watchStale = false;
  /** Called once, before the first line about an instance stopping for shutdown. */
  onShutdownBegins: (() => void) | undefined;
  readonly aborted: Promise<never>;
  private readonly recorded: WardenEvent[] = [];
  private readonly waiters = new Set<() => void>();
  private abortReason: string | undefined;
  private rejectAborted: (error: Error) => void = () => undefined;
  private readonly seen = new Map<string, Set<string>>();
  private readonly killed = new Set<number>();
  private readonly reportSurvivors: Array<{ pid: number; name: string; role: string }> = [];
  private readonly launchMarkers = new Set<string>();
  private staleShown = false;

  constructor(
    private readonly supervisor: Supervisor,
    out: Output,
    origin: number,
    private readonly id: string,
    live: boolean,
  ) {
    this.aborted = new Promise<never>((_, reject) => {
      this.rejectAborted = reject;
    });
    this.aborted.catch(() => undefined);
    const print = live ? createEventPrinter(supervisor, out, { origin }) : () => undefined;
    supervisor.events$.subscribe((event) => {
      this.recorded.push(event);
      this.account(event);
      if (live && event.type === 'sample' && this.watchStale && !this.staleShown && event.sample.counts.stale > 0) {
        this.staleShown = true;
        const { counts } = event.sample;
        const markers = event.sample.stale.map((group) => group.marker).join(', ');
        out.line(
          `${out.style.dim(stamp(origin))} ${out.style.bold('sampler'.padEnd(Math.max(8, id.length)))} ` +
            `${counts.stale} stale processes (marker ${markers}, no live launch) → python ${counts.python} · shell ${counts.shell} · total ${counts.total}`,
        );
      }
      if (event.type === 'transition' && event.to === 'stopping' && event.from !== 'stopping') {
        if (supervisor.status().instances.find((instance) => instance.id === event.instance)?.stopReason === 'shutdown') {
          this.onShutdownBegins?.();
          this.onShutdownBegins = undefined;
        }
      }
      print(event);
      for (const waiter of [...this.waiters]) waiter();
    });
  }

  // Index of the next event, to wait for what happens after now.
  mark(): number {
    return this.recorded.length;
  }

  events(): WardenEvent[] {
    return [...this.recorded];
  }

  abort(reason: string): void {
    this.abortReason = reason;
    this.rejectAborted(new CliError(reason, EXIT.interrupted));
    for (const waiter of [...this.waiters]) waiter();
  }

  // Resolves with the first event since `from` that passes `test`; rejects after WAIT_MS or on abort.
  waitFor<T extends WardenEvent>(test: ((event: WardenEvent) => event is T) | ((event: WardenEvent) => boolean), from: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let index = from;
      const timer = setTimeout(() => finish(() => reject(new CliError(`timed out after ${WAIT_MS / 1000} s waiting for ${what}`))), WAIT_MS);
      const finish = (action: () => void): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        action();
      };
      const check = (): void => {
        if (this.abortReason !== undefined) return finish(() => reject(new CliError(this.abortReason as string, EXIT.interrupted)));
        for (; index < this.recorded.length; index += 1) {
          const event = this.recorded[index] as WardenEvent;
          if (test(event)) return finish(() => resolve(event as T));
        }
      };
      this.waiters.add(check);
      check();
    });
  }

  // Polls a condition every 50 ms until it holds; rejects after WAIT_MS or on abort.
  async until(condition: () => boolean, what: string): Promise<void> {
    const deadline = performance.now() + WAIT_MS;
    while (!condition()) {
      if (this.abortReason !== undefined) throw new CliError(this.abortReason, EXIT.interrupted);
      if (performance.now() > deadline) throw new CliError(`timed out after ${WAIT_MS / 1000} s waiting for ${what}`);
      await sleep(50);
    }
  }

  // The instance's status once a sample taken after now has counted its processes.
  async freshCounts(): Promise<ReturnType<Supervisor['status']>['instances'][number]> {
    await this.waitFor((event) => event.type === 'sample' && (event.sample.perInstance[this.id]?.python ?? 0) > 0, this.mark(), 'a sample of the running tree');
    return this.supervisor.status().instances.find((instance) => instance.id === this.id) as ReturnType<Supervisor['status']>['instances'][number];
  }

  launches(): number {
    return this.launchMarkers.size;
  }

  // Distinct processes seen carrying the markers of Warden's own launches.
  spawnedByLaunches(): number {
    let count = 0;
    for (const marker of this.launchMarkers) count += this.seen.get(marker)?.size ?? 0;
    return count;
  }

  killedPids(): Set<number> {
    return this.killed;
  }

  survivors(): Array<{ pid: number; name: string; role: string }> {
    return this.reportSurvivors;
  }

  // Keeps the numbers the summary prints: what each launch spawned (seen by marker), what every report killed.
  private account(event: WardenEvent): void {
    if (event.type === 'launch') this.launchMarkers.add(event.marker);
    if (event.type === 'sample' || event.type === 'launch') this.observe();
    const reports =
      event.type === 'termination' || event.type === 'stale-reaped'
        ? [event.report]
        : event.type === 'reap'
          ? event.report.entries.map((entry) => ({ killed: entry.killed, survivors: entry.survivors }))
          : [];
    for (const report of reports) {
      for (const entry of report.killed) this.killed.add(entry.pid);
    }
    // Survivors of a stop that was retried until confirmed are not survivors: only the final word counts.
    if (event.type === 'termination' && event.report.survivors.length > 0) {
      for (const survivor of event.report.survivors) this.reportSurvivors.push({ pid: survivor.pid, name: survivor.name, role: survivor.role });
    }
    if (event.type === 'termination' && event.report.survivors.length === 0) {
      const gone = new Set(event.report.killed.map((entry) => entry.pid));
      for (let i = this.reportSurvivors.length - 1; i >= 0; i -= 1) if (gone.has(this.reportSurvivors[i]?.pid ?? -1)) this.reportSurvivors.splice(i, 1);
    }
  }

  // Records every live process carrying one of this demo's markers (pid:start time, so a reused pid counts anew).
  private observe(): void {
    if (!hasProcfs) return;
    const prefix = `${this.id}:`;
    for (const info of snapshotProcSync(false).processes.values()) {
      if (info.state === 'Z') continue;
      const marker = readEnvironVariable(info.pid, MARKER_VARIABLE);
      if (marker === undefined || !marker.startsWith(prefix)) continue;
      let set = this.seen.get(marker);
      if (set === undefined) this.seen.set(marker, (set = new Set()));
      set.add(`${info.pid}:${info.startTime ?? '?'}`);
    }
  }
}

// Asks the fake WebUI to die on the spot (A1111's stop_program: os._exit, workers left behind).
async function serverKill(port: number): Promise<string> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/sdapi/v1/server-kill`, { method: 'POST', signal: AbortSignal.timeout(2000) });
    return `${response.status} ${(await response.text()).trim()}`;
  } catch (error) {
    // The process may exit before the reply is complete; the crash happened either way.
    return `no reply (${(error as Error).message}); Python exited`;
  }
}

// Starts one stray: `python3 worker.py` with a stale marker (and the state dir a supervisor hands down beside it),
// in its own session, as an earlier run from this state dir would leave it.
function plant(python: string, cwd: string, marker: string, stateDir: string, index: number): Planted {
  const env: NodeJS.ProcessEnv = { ...process.env, [MARKER_VARIABLE]: marker, [STATE_DIR_VARIABLE]: stateDir };
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: pid + start time recorded here; the stale marker in its environment.
  // Cleanup handled by: the supervisor (stale-marker reaping and the emergency reap); killPlanted() at the end of
  //   the demo for any the story did not get to (pid + start time + marker re-checked before the signal).
  // Known risks: none beyond the demo's lifetime; the marker's instance id is unique to this demo run.
  const child = spawn(python, [join(cwd, 'worker.py'), '--index', String(100 + index)], { cwd, env, detached: true, stdio: 'ignore' });
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new CliError('could not start python3 for the runaway step');
  return { pid, startTime: readStartTime(pid)?.startTime };
}

// Whether the exact process we planted still runs (not a zombie, not a reused pid).
function alive(entry: Planted): boolean {
  const now = readStartTime(entry.pid);
  if (now === undefined || now.state === 'Z' || now.state === 'X') return false;
  return entry.startTime === undefined || now.startTime === entry.startTime;
}

// SIGKILLs a stray we planted, after re-proving it is ours (start time and marker).
function killPlanted(entry: Planted, marker: string): void {
  if (!alive(entry) || readEnvironVariable(entry.pid, MARKER_VARIABLE) !== marker) return;
  try {
    process.kill(entry.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

// Live processes that carry any marker of this demo's instance id, after giving exits a moment to land.
async function leftoversOf(id: string): Promise<Array<{ pid: number; name: string }>> {
  if (!hasProcfs) return [];
  const prefix = `${id}:`;
  const scan = (): Array<{ pid: number; name: string }> => {
    const found: Array<{ pid: number; name: string }> = [];
    for (const info of snapshotProcSync(false).processes.values()) {
      if (info.state === 'Z' || info.state === 'X') continue;
      if (readEnvironVariable(info.pid, MARKER_VARIABLE)?.startsWith(prefix) === true) found.push({ pid: info.pid, name: info.name });
    }
    return found;
  };
  const deadline = performance.now() + 3000;
  let found = scan();
  while (found.length > 0 && performance.now() < deadline) {
    await sleep(100);
    found = scan();
  }
  return found;
}

// The real Python 3 binary behind `python3` (pyenv and friends put a bash shim on PATH).
function interpreter(): string {
  try {
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: synchronous child, awaited here.   Cleanup handled by: it exits by itself (10 s timeout kills it).   Known risks: none.
    const path = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8', timeout: 10_000 }).trim();
    return path === '' ? 'python3' : path;
  } catch {
    return 'python3';
  }
}

// A port nobody listens on right now, on loopback.
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
