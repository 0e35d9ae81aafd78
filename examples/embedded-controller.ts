// A StableNew-style controller that embeds Warden: it starts the WebUI, keeps it supervised, and on SIGINT/SIGTERM
// runs the shutdown sequence (stop sampling, stop every instance, confirmed dead), prints the report and exits
// non-zero if anything survived.
//
//   npx tsx examples/embedded-controller.ts                  # the bundled fake WebUI on port 7860; Ctrl-C shuts down
//   npx tsx examples/embedded-controller.ts --once           # start, wait until healthy, shut down, exit (smoke test)
//   npx tsx examples/embedded-controller.ts --webui /opt/stable-diffusion-webui --port 7860
//
// Runs from this repository with tsx. In an application, import from the published package instead:
//   import { createSupervisor } from 'webui-warden';
import { execFileSync } from 'node:child_process';
import { mkdirSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import type { InspectionEvent, Observer } from 'xstate';
import { createSupervisor } from '../src/index.js';
import type { ShutdownReport, Supervisor, WardenEvent } from '../src/index.js';

/** What the controller runs and how. */
export interface ControllerOptions {
  /** The instance id (default `webui`); the marker every process of the tree carries starts with it. */
  id: string;
  /** The WebUI's port (default 7860); health is `http://127.0.0.1:<port>/internal/ping`. */
  port: number;
  /** Warden's state directory: registry, lock, sentinel socket (default `.warden`). */
  stateDir: string;
  /** A real AUTOMATIC1111 (or fork) checkout; absent: the bundled fake WebUI. */
  webui: string | undefined;
  /** Worker processes of the fake WebUI (default 2). */
  workers: number;
  /** Start, wait until healthy, shut down and return, instead of supervising until a signal. */
  once: boolean;
  /** Passed to createSupervisor (the Stately inspector; see examples/inspect.ts). */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** Called once the instance is healthy and counted (examples/inspect.ts adds its own check). */
  onHealthy?: (supervisor: Supervisor) => Promise<void> | void;
}

const FAKE_WEBUI = resolve(import.meta.dirname, 'fake-webui/webui.sh');

// Reads the command line; unknown flags are an error that names them.
export function parseControllerArgs(argv: string[], extra: ParseArgsConfig['options'] = {}): { options: ControllerOptions; values: Record<string, unknown> } {
  const { values } = parseArgs({
    args: argv,
    options: {
      once: { type: 'boolean', default: false },
      id: { type: 'string', default: 'webui' },
      port: { type: 'string', default: '7860' },
      'state-dir': { type: 'string', default: '.warden' },
      webui: { type: 'string' },
      workers: { type: 'string', default: '2' },
      ...extra,
    },
  });
  const port = Number(values.port);
  const workers = Number(values.workers);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port must be an integer from 1 to 65535 (got "${String(values.port)}")`);
  if (!Number.isInteger(workers) || workers < 0) throw new Error(`--workers must be a whole number (got "${String(values.workers)}")`);
  return {
    options: {
      id: String(values.id),
      port,
      stateDir: resolve(String(values['state-dir'])),
      webui: values.webui === undefined ? undefined : resolve(String(values.webui)),
      workers,
      once: values.once === true,
    },
    values,
  };
}

// The Warden config for one WebUI: a real checkout's webui.sh, or the bundled fake.
export function controllerConfig(options: ControllerOptions): Record<string, unknown> {
  const health = { url: `http://127.0.0.1:${options.port}/internal/ping`, intervalMs: 2000, timeoutMs: 1000, failureThreshold: 3 };
  if (options.webui !== undefined) {
    // -f (first): A1111's webui.sh refuses to run as root without it; as any other user it is ignored.
    return {
      stateDir: options.stateDir,
      instances: [{ id: options.id, command: join(options.webui, 'webui.sh'), args: ['-f', '--api', '--port', String(options.port)], cwd: options.webui, health, startupTimeoutMs: 180_000 }],
    };
  }
  // The fake keeps its tmp/restart under FAKE_WEBUI_STATE_DIR; python_cmd is the interpreter itself, so a version
  // manager's shim (a bash script) never shows up as an extra shell in the counts.
  const cwd = join(options.stateDir, 'fake-webui');
  mkdirSync(cwd, { recursive: true });
  return {
    stateDir: options.stateDir,
    instances: [{
      id: options.id,
      command: FAKE_WEBUI,
      // -f (first): A1111's webui.sh, and so the fake, refuses to run as root without it; harmless otherwise.
      args: ['-f', '--port', String(options.port), '--workers', String(options.workers)],
      cwd,
      env: { FAKE_WEBUI_STATE_DIR: cwd, python_cmd: pythonInterpreter() },
      health,
      startupTimeoutMs: 30_000,
      stopGraceMs: 3000,
    }],
    watchdog: { sampleIntervalMs: 500 },
  };
}

// Runs the controller; resolves with the exit status: 0 when every tree was confirmed dead, 1 otherwise.
export async function runController(options: ControllerOptions): Promise<number> {
  const started = performance.now();
  const say = (text: string): void => {
    process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(2).padStart(6)}s] ${text}\n`);
  };
  const supervisor = createSupervisor(controllerConfig(options), options.inspect === undefined ? {} : { inspect: options.inspect });
  supervisor.events$.subscribe((event) => {
    const line = describeEvent(event, options.id);
    if (line !== undefined) say(line);
  });

  // The shutdown sequence, once: stop sampling, stop every instance (confirmed dead), release the lock and sentinel.
  let shutdown: Promise<number> | undefined;
  const shutDown = (why: string): Promise<number> => {
    shutdown ??= (async () => {
      say(`shutting down (${why}): every tree is stopped and read back dead before this process exits`);
      const report = await supervisor.shutdown();
      return printShutdown(report, say);
    })();
    return shutdown;
  };
  let signalled: ((code: number) => void) | undefined;
  const bySignal = new Promise<number>((resolveSignal) => {
    signalled = resolveSignal;
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    if (shutdown !== undefined) {
      say(`${signal} again: the shutdown is already under way (if this process is killed, the sentinel stops the tree)`);
      return;
    }
    void shutDown(signal).then((code) => signalled?.(code));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    say(`starting "${options.id}" (${options.webui ?? 'the bundled fake WebUI'}), state in ${options.stateDir}`);
    try {
      const status = await supervisor.start(options.id);
      say(`"${options.id}" is healthy: shell pid ${status.shellPid ?? '?'}, python pid ${status.pythonPid ?? '?'}`);
    } catch (error) {
      if (shutdown !== undefined) return await shutdown;
      say(`could not start: ${(error as Error).message}`);
      await shutDown('the start failed');
      return 1;
    }
    const counts = await countedTree(supervisor, options.id);
    if (counts !== undefined) say(`"${options.id}" processes: python ${counts.python}, shell ${counts.shell}, total ${counts.total}`);
    await options.onHealthy?.(supervisor);
    if (options.once) return await shutDown('--once');
    say('supervising; Ctrl-C or SIGTERM runs the shutdown sequence');
    return await bySignal;
  } catch (error) {
    // Whatever went wrong here, the WebUI's tree must not outlive the controller.
    say(`error: ${error instanceof Error ? error.message : String(error)}`);
    await shutDown('an error');
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

// The instance's counts from the first sample that has seen its Python processes (samples lag a start a little).
function countedTree(supervisor: Supervisor, id: string, timeoutMs = 5000): Promise<{ python: number; shell: number; total: number } | undefined> {
  return new Promise((resolveCounts) => {
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    const subscription = supervisor.events$.subscribe((event) => {
      const counts = event.type === 'sample' ? event.sample.perInstance[id] : undefined;
      if (counts !== undefined && counts.python > 0) finish(counts);
    });
    function finish(counts: { python: number; shell: number; total: number } | undefined): void {
      clearTimeout(timer);
      subscription.unsubscribe();
      resolveCounts(counts);
    }
  });
}

// One line per event worth telling a StableNew user about; samples are summarised elsewhere.
function describeEvent(event: WardenEvent, id: string): string | undefined {
  switch (event.type) {
    case 'transition':
      return event.from === event.to ? undefined : `${event.instance}: ${event.from ?? 'new'} → ${event.to} (${event.detail})`;
    case 'launch':
      return `${event.instance}: launched pid ${event.pid} (marker ${event.marker})`;
    case 'termination': {
      const { killed, survivors, durationMs } = event.report;
      return `${event.instance}: ${event.reason} stop confirmed: ${killed.length} stopped, ${survivors.length} survivors, ${Math.round(durationMs)} ms`;
    }
    case 'alert':
      return `alert (${event.level}): ${event.message}`;
    case 'emergency':
      return `EMERGENCY (${event.level}): ${event.reason}`;
    case 'reap':
      return event.report.entries.some((entry) => entry.action === 'reaped') ? `reaped what an earlier run of "${id}" left behind` : undefined;
    default:
      return undefined;
  }
}

// Prints the shutdown report; returns the exit status (non-zero if anything survived).
function printShutdown(report: ShutdownReport, say: (text: string) => void): number {
  for (const instance of report.instances) {
    const killed = instance.lastReport?.killed ?? [];
    say(`${instance.id}: ${instance.state}, ${instance.confirmedDead ? 'confirmed dead' : 'NOT confirmed dead'}; ${killed.length} processes stopped in its last stop`);
    for (const entry of killed) say(`  stopped pid ${entry.pid} ${entry.name} (${entry.role}) ${entry.signal === 'none' ? 'exited on request' : entry.signal}`);
  }
  for (const survivor of report.survivors) say(`  SURVIVED pid ${survivor.pid} ${survivor.name} (${survivor.role}) of ${survivor.instance}`);
  say(`shutdown ${report.ok ? 'complete' : 'INCOMPLETE'} in ${Math.round(report.durationMs)} ms; survivors: ${report.survivors.length}`);
  return report.ok && report.survivors.length === 0 ? 0 : 1;
}

// The Python interpreter itself (not a version manager's shim), for the fake WebUI's python_cmd.
function pythonInterpreter(): string {
  try {
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: synchronous child, awaited here.   Cleanup handled by: it exits by itself (timeout kills it).   Known risks: none.
    return execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8', timeout: 10_000 }).trim() || 'python3';
  } catch {
    return 'python3';
  }
}

// Exits once stdout has taken everything (a pino transport or a WebSocket must not keep the process alive).
export function exitWith(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

const isMain = (() => {
  try {
    return process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
})();

if (isMain) {
  let options: ControllerOptions;
  try {
    options = parseControllerArgs(process.argv.slice(2)).options;
  } catch (error) {
    process.stderr.write(`embedded-controller: ${(error as Error).message}\n`);
    process.exit(2);
  }
  runController(options).then(exitWith, (error: unknown) => {
    process.stderr.write(`embedded-controller: ${error instanceof Error ? error.message : String(error)}\n`);
    exitWith(1);
  });
}
