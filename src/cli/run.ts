// `warden run --config <file>`: supervise for real, serve the control API, shut down (confirmed) on SIGINT/SIGTERM.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigFile } from '../config/index.js';
import { createSupervisor } from '../runtime/supervisor.js';
import type { Supervisor, WardenEvent } from '../runtime/supervisor.js';
import { CliError, EXIT, describeError } from './exit.js';
import { createEventPrinter } from './events.js';
import { createOutput, duration, plural, stamp } from './output.js';
import type { Output } from './output.js';
import { inspectorNotice, startInspector } from './inspect.js';
import type { InspectorBridge } from './inspect.js';
import { OwnerLeaseError, checkLifeline, identifyOwner, watchOwner } from '../owner-lease.js';
import type { ProcessIdentity } from '../process/types.js';

export interface RunOptions {
  config: string;
  inspect?: boolean;
  inspectPort?: number;
  json?: boolean;
  /** `false` (`--no-sentinel`): no force-close sentinel (Windows: guard); a killed run is left to the next reap. */
  sentinel?: boolean;
  /** `--owner-pid PID`: when that process exits, stop every instance (confirmed dead) and exit. */
  ownerPid?: number;
  /** `--lifeline`: stdin is a pipe from the owner; its end of file means the owner is gone. */
  lifeline?: boolean;
}

/** How often a long start says it is still waiting: a real WebUI takes minutes. */
const PROGRESS_TTY_MS = 5_000;
const PROGRESS_PLAIN_MS = 15_000;

// Runs until a signal ends it (the supervisor's handleSignals runs shutdown() and exits 0, or 1 if anything survived).
export async function runCommand(options: RunOptions): Promise<number> {
  const config = await loadConfigFile(options.config);
  // The owner lease is checked before anything exists: a dead owner (or a lifeline that is not a pipe) starts nothing.
  let ownerIdentity: ProcessIdentity | undefined;
  try {
    if (options.ownerPid !== undefined) ownerIdentity = identifyOwner(options.ownerPid);
    if (options.lifeline === true) checkLifeline();
  } catch (error) {
    if (error instanceof OwnerLeaseError) throw new CliError(error.message, EXIT.usage);
    throw error;
  }
  const out = createOutput();
  const json = options.json === true;
  const origin = performance.now();
  const say = (text = ''): void => {
    if (!json) out.line(text);
  };

  let inspector: InspectorBridge | undefined;
  if (options.inspect === true) inspector = await startInspector(options.inspectPort ?? 8080);
  const sentinel = options.sentinel !== false;
  const supervisor = createSupervisor(config, {
    handleSignals: true,
    sentinel,
    ...(inspector !== undefined && { inspect: inspector.inspect }),
  });

  say(out.style.bold('Warden run') + out.style.dim(`  ${options.config}`));
  say(`  state dir   ${config.stateDir}`);
  say(`  instances   ${config.instances.map((instance) => instance.id).join(', ')}`);
  if (!sentinel) say(out.style.yellow("  sentinel    off (--no-sentinel): if this process is killed, its trees wait for the next start's reap or `warden reap`"));
  if (inspector !== undefined) for (const line of inspectorNotice(inspector.url)) say(`  ${line}`);
  if (json && inspector !== undefined) out.json({ type: 'inspector', url: inspector.url });

  let server: { url: string; token: string; close(): Promise<void> } | undefined;
  const stateFiles = { stateDir: config.stateDir, serverUrl: undefined as string | undefined, shuttingDown: false };
  const leased = options.ownerPid !== undefined || options.lifeline === true;
  if (leased) {
    // The owner may hold our stdout/stderr pipes; once it is gone, a write must not crash us before the trees are dead.
    process.stdout.on('error', () => undefined);
    process.stderr.on('error', () => undefined);
    const owner = watchOwner({ ...(ownerIdentity !== undefined && { owner: ownerIdentity }), lifeline: options.lifeline === true }, (reason) => {
      stateFiles.shuttingDown = true;
      if (json) out.json({ type: 'owner-lost', reason });
      else out.note(`warden: ${reason}; stopping every instance (confirmed dead), then exiting`);
      // Same outcome as SIGTERM: exit 0 when every tree was read back dead, 1 when something survived.
      void supervisor
        .shutdown()
        .then(async (report) => {
          await server?.close().catch(() => undefined);
          process.exit(report.ok ? EXIT.ok : EXIT.failure);
        })
        .catch(() => process.exit(EXIT.failure));
    });
    if (owner.owner !== undefined) say(`  owner       pid ${owner.owner.pid}${options.lifeline === true ? ' and the stdin lifeline' : ''}: when it is gone, every instance is stopped and warden exits`);
    else say('  owner       the stdin lifeline: when it closes, every instance is stopped and warden exits');
  }

  const enteredAt = new Map<string, number>();
  follow(supervisor, out, origin, json, enteredAt, () => {
    stateFiles.shuttingDown = true;
    // The supervisor's signal handler exits right after this: no time for the server's async close, so drop
    // server.json now (only if it is still ours), or `warden status` would find a dead server.
    if (stateFiles.serverUrl !== undefined) removeServerFileSync(stateFiles.stateDir, stateFiles.serverUrl);
    inspector?.stop();
  });

  await supervisor.ready();
  try {
    const { startControlServer } = await import('../server/index.js');
    server = await startControlServer(supervisor, {
      host: config.server.host,
      port: config.server.port,
      stateDir: config.stateDir,
      // POST /api/shutdown: the supervisor has shut down (confirmed or not); leave with what it observed.
      onShutdown: (report) => {
        void (server?.close() ?? Promise.resolve()).finally(() => process.exit(report.ok ? EXIT.ok : EXIT.failure));
      },
    });
  } catch (error) {
    await supervisor.shutdown();
    inspector?.stop();
    throw new CliError(describeError(error).join('; '), EXIT.unavailable);
  }
  stateFiles.serverUrl = server.url;
  say(`  control API ${server.url}  (bearer token in ${join(config.stateDir, 'token')}; \`warden status\` reads it)`);
  say(out.style.dim('  Ctrl-C or SIGTERM shuts down: every tree stopped and read back dead; a second signal skips the grace period.'));
  say();
  if (json) out.json({ type: 'server', url: server.url, stateDir: config.stateDir });

  const progress = setInterval(() => reportWaiting(supervisor, out, origin, json, enteredAt), out.tty ? PROGRESS_TTY_MS : PROGRESS_PLAIN_MS);
  progress.unref();
  // Only noted here: the supervisor's own handler (handleSignals) runs the shutdown.
  const noteSignal = (): void => {
    stateFiles.shuttingDown = true;
  };
  process.prependListener('SIGINT', noteSignal);
  process.prependListener('SIGTERM', noteSignal);
  const results = await Promise.allSettled(config.instances.map((instance) => supervisor.start(instance.id)));
  // A signal during the start: shutdown is under way and says for itself what happened.
  if (stateFiles.shuttingDown) return new Promise<number>(() => undefined);
  results.forEach((result, index) => {
    const id = config.instances[index]?.id ?? '?';
    if (result.status === 'fulfilled') return;
    const state = supervisor.status().instances.find((instance) => instance.id === id)?.state ?? '?';
    const reason = describeError(result.reason).join('; ');
    const line = reason.includes(`"${id}"`) ? reason : `"${id}" did not start: ${reason}`;
    if (json) out.json({ type: 'start-failed', instance: id, state, error: line });
    else out.note(`warden: ${line}${state === 'crashed' || state === 'spawning' ? ' (its restart policy keeps trying)' : ''}`);
  });
  const running = supervisor.status().instances.filter((instance) => instance.state === 'running').length;
  say(`${out.style.dim(stamp(origin))} ${running} of ${plural(config.instances.length, 'instance')} running; supervising until a signal.`);

  // Never resolves: the supervisor's signal handler shuts down and exits.
  return new Promise<number>(() => undefined);
}

// Prints every event live (or as JSON lines), and the outcome of shutdown once the event stream completes.
function follow(supervisor: Supervisor, out: Output, origin: number, json: boolean, enteredAt: Map<string, number>, finished: () => void): void {
  const print = createEventPrinter(supervisor, out, { origin });
  const terminations: Array<Extract<WardenEvent, { type: 'termination' }>> = [];
  supervisor.events$.subscribe({
    next: (event) => {
      // Only the shutdown's reports are printed at the end: keeping every termination would grow without bound.
      if (event.type === 'termination' && event.reason === 'shutdown') terminations.push(event);
      if (event.type === 'transition' && event.from !== event.to) enteredAt.set(event.instance, event.at);
      if (json) {
        if (event.type !== 'sample') out.json(event);
      } else {
        print(event);
      }
    },
    // The stream completes as shutdown() finishes, just before the supervisor's handler exits the process.
    complete: () => {
      finished();
      let survivors: Array<{ pid: number; name: string; role: string }> = [];
      try {
        survivors = supervisor.status().instances.flatMap((instance) => instance.lastReport?.survivors ?? []);
      } catch {
        // the actor is gone; the termination reports below still say what happened
      }
      const stopped = terminations.filter((event) => event.reason === 'shutdown');
      if (json) {
        out.json({ type: 'shutdown', ok: survivors.length === 0, stopped: stopped.map((event) => event.instance), survivors });
        return;
      }
      const killed = stopped.reduce((sum, event) => sum + event.report.killed.length, 0);
      const text = `shutdown: ${plural(stopped.length, 'tree')} stopped (${plural(killed, 'process', 'processes')}), survivors ${survivors.length}`;
      out.line(`${out.style.dim(stamp(origin))} ${survivors.length === 0 ? out.style.green(text) : out.style.red(text)}`);
    },
  });
}

// Removes <stateDir>/server.json if it still names this process and url.
function removeServerFileSync(stateDir: string, url: string): void {
  const path = join(stateDir, 'server.json');
  try {
    const current = JSON.parse(readFileSync(path, 'utf8')) as { pid?: number; url?: string };
    if (current.pid === process.pid && current.url === url) rmSync(path, { force: true });
  } catch {
    // gone already, or not ours to remove
  }
}

// One line per instance still on its way (starting, backing off, stopping): which sub-state, for how long.
function reportWaiting(supervisor: Supervisor, out: Output, origin: number, json: boolean, enteredAt: Map<string, number>): void {
  const now = Date.now();
  for (const instance of supervisor.status().instances) {
    if (instance.state !== 'spawning' && instance.state !== 'crashed' && instance.state !== 'stopping') continue;
    const since = enteredAt.get(instance.id) ?? now;
    if (json) {
      out.json({ type: 'waiting', instance: instance.id, state: instance.detail, ms: now - since });
      continue;
    }
    const configured = supervisor.config.instances.find((entry) => entry.id === instance.id);
    const limit = instance.state === 'spawning' && configured !== undefined ? ` of a ${duration(configured.startupTimeoutMs)} startup timeout` : '';
    out.line(`${out.style.dim(stamp(origin))} ${out.style.cyan(instance.id)} still ${instance.detail} (${duration(now - since)}${limit})`);
  }
}
