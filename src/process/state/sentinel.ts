// The sentinel's supervisor side: starts the detached process that kills every tracked tree if we die without a goodbye.
import type { Socket } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { rootLogger } from '../../logging.js';
import { WardenError } from '../errors.js';
import { currentIdentity } from '../identity.js';
import type { OwnerRecord } from '../ownership.js';
import { signalProcess } from '../signal.js';
import { ensureStateDirSync } from './statedir.js';
import { spawnTethered } from '../tethered.js';
import { MARKER_VARIABLE } from '../types.js';
import type { ProcessIdentity } from '../types.js';

/** One line of the supervisor → sentinel pipe (newline-delimited JSON). */
export type SentinelMessage =
  | { type: 'track'; record: OwnerRecord }
  | { type: 'untrack'; marker: string }
  | { type: 'goodbye' };

export interface SentinelOptions {
  /** Where the sentinel writes its log (`sentinel.log`); created if missing. Also the sentinel's cwd. */
  stateDir: string;
  /** Receives the supervisor-side events; defaults to a child of the root logger. */
  logger?: Logger;
  /** How long to wait for the sentinel's `ready` line. Default 10000. */
  readyTimeoutMs?: number;
  /** How long `goodbye()` waits for the sentinel to exit before SIGKILLing it. Default 5000. */
  goodbyeTimeoutMs?: number;
}

/** How the sentinel process ended. */
export interface SentinelExit {
  code: number | null;
  signal: string | null;
}

/** A running sentinel, tied to this process by its stdin pipe. */
export interface Sentinel {
  readonly pid: number;
  /** pid + start time: the only proof that lets anyone signal it later. */
  readonly identity: ProcessIdentity;
  /** The JSON-lines log the sentinel writes (its start, every record, and the report after a cleanup). */
  readonly logPath: string;
  /** Resolves when the sentinel has exited (never rejects). */
  readonly exited: Promise<SentinelExit>;
  readonly hasExited: boolean;
  /** Hands the record to the sentinel; resolves true once it is in the pipe, false if the sentinel is gone. */
  track(record: OwnerRecord): Promise<boolean>;
  /** Stops guarding the tree with this marker (it was stopped, or is handed over). Same result as `track`. */
  untrack(marker: string): Promise<boolean>;
  /** Tells the sentinel to exit without killing anything and waits until it has. Idempotent. */
  goodbye(): Promise<void>;
}

/** The sentinel could not be started; nothing is left running when it is thrown. */
export class SentinelError extends WardenError {}

/** What the sentinel writes on its stdout once it reads its pipe. */
export const SENTINEL_READY = 'ready';

// The command that runs sentinel-main: the .ts source through tsx (tests, tsx), or the built .js with plain node.
function sentinelArgs(): string[] {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    // Resolved from this file, so the sentinel's cwd (the state directory) need not see node_modules.
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    return ['--import', tsx, join(dirname(here), 'sentinel-main.ts')];
  }
  return [join(dirname(here), 'sentinel-main.js')];
}

// Only the ownership proofs go down the pipe: a TreeHandle also carries timers and promises.
function plainRecord(record: OwnerRecord): OwnerRecord {
  const { pid, startTime, clock } = record.root;
  return { instanceId: record.instanceId, marker: record.marker, root: { pid, startTime, clock }, pgid: record.pgid, ...(record.cgroup !== undefined && { cgroup: record.cgroup }) };
}

// Starts the sentinel detached in its own session and resolves once it reads its pipe.
export async function startSentinel(options: SentinelOptions): Promise<Sentinel> {
  if (typeof options.stateDir !== 'string' || options.stateDir === '') {
    throw new SentinelError('SENTINEL_INVALID_OPTIONS', `startSentinel: stateDir must be a non-empty path (got ${JSON.stringify(options.stateDir)})`);
  }
  const stateDir = resolve(options.stateDir);
  ensureStateDirSync(stateDir);
  const logPath = join(stateDir, 'sentinel.log');
  const logger = (options.logger ?? rootLogger).child({ component: 'sentinel' });
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  const goodbyeTimeoutMs = options.goodbyeTimeoutMs ?? 5000;
  const supervisor = currentIdentity(process.pid) ?? { pid: process.pid, startTime: undefined };

  const env: NodeJS.ProcessEnv = { ...process.env };
  // The sentinel must never look like a member of a tree it guards.
  delete env[MARKER_VARIABLE];
  const args = [
    ...sentinelArgs(),
    '--log', logPath,
    '--supervisor-pid', String(supervisor.pid),
    ...(supervisor.startTime === undefined ? [] : ['--supervisor-start', String(supervisor.startTime)]),
  ];

  // PROCESS LIFECYCLE: creates a subprocess (through spawnTethered)
  // Parent tracking: pid + start time (identity), stdin pipe (EOF = this process is gone), own session
  //   (detached: a signal to our process group or terminal does not reach it); it also polls our pid + start time.
  // Cleanup handled by: goodbye() (exit without killing, SIGKILL by identity after goodbyeTimeoutMs); without a
  //   goodbye it exits by itself after killing the tracked trees (hard deadline inside sentinel-main).
  // Known risks: a SIGKILLed sentinel guards nothing (the registry's reap-at-next-start covers it); a record
  //   tracked after the sentinel died is only logged here, `track` resolves false.
  let hasExited = false;
  let expectedExit = false;
  const { child, stdin, stdout, exited } = spawnTethered(process.execPath, args, {
    logPath,
    cwd: stateDir,
    env,
    onExit: ({ code, signal }) => {
      hasExited = true;
      if (!expectedExit) logger.error({ pid: child.pid, code, signal, logPath }, 'sentinel exited on its own: trees are no longer guarded');
    },
    onError: (error) => logger.error({ err: error, logPath }, 'sentinel process error'),
  });
  // A write after the sentinel died must not crash the supervisor: the failure reaches `track`'s callback.
  stdin.on('error', (error) => logger.debug({ err: error }, 'sentinel pipe closed'));

  try {
    await waitForReady(child.pid, stdout, exited, readyTimeoutMs, logPath);
  } catch (error) {
    expectedExit = true;
    // Still our unreaped child, so its pid cannot have been reused.
    if (!hasExited) child.kill('SIGKILL');
    await exited;
    throw error;
  }
  const pid = child.pid as number;
  const identity = currentIdentity(pid) ?? { pid, startTime: undefined };
  // From now on nothing of the sentinel keeps this process alive.
  stdout.destroy();
  stdin.unref();
  child.unref();
  logger.debug({ pid, logPath }, 'sentinel ready');

  let goodbyeSent: Promise<void> | undefined;
  const send = (message: SentinelMessage): Promise<boolean> =>
    new Promise((resolveSend) => {
      if (goodbyeSent !== undefined || hasExited || stdin.destroyed || !stdin.writable) {
        logger.warn({ message: message.type, pid }, 'sentinel already released or gone: message not delivered');
        resolveSend(false);
        return;
      }
      stdin.write(`${JSON.stringify(message)}\n`, (error) => {
        if (error) logger.warn({ err: error, message: message.type, pid }, 'sentinel is gone: message not delivered');
        resolveSend(error == null);
      });
    });

  const goodbye = async (): Promise<void> => {
    if (hasExited) return;
    expectedExit = true;
    child.ref(); // wait for the exit even if nothing else keeps the event loop running
    try {
      if (stdin.writable) stdin.end(`${JSON.stringify({ type: 'goodbye' } satisfies SentinelMessage)}\n`);
      const timer = new Promise<'timeout'>((resolveTimer) => setTimeout(resolveTimer, goodbyeTimeoutMs, 'timeout').unref());
      if ((await Promise.race([exited, timer])) === 'timeout') {
        logger.warn({ pid, goodbyeTimeoutMs }, 'sentinel did not exit after goodbye: killing it');
        signalProcess(identity, 'SIGKILL');
        await exited;
      }
    } finally {
      child.unref();
    }
  };

  return {
    pid,
    identity,
    logPath,
    exited,
    get hasExited() {
      return hasExited;
    },
    track: (record) => send({ type: 'track', record: plainRecord(record) }),
    untrack: (marker) => send({ type: 'untrack', marker }),
    goodbye: () => (goodbyeSent ??= goodbye()),
  };
}

// Resolves on the sentinel's `ready` line; rejects if it exits first or stays silent past the timeout.
function waitForReady(pid: number | undefined, stdout: Socket, exited: Promise<SentinelExit>, timeoutMs: number, logPath: string): Promise<void> {
  const lines = createInterface({ input: stdout, crlfDelay: Infinity });
  return new Promise<void>((resolveReady, rejectReady) => {
    let settled = false;
    const settle = (error?: SentinelError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      lines.close();
      if (error === undefined) resolveReady();
      else rejectReady(error);
    };
    const timer = setTimeout(() => settle(new SentinelError('SENTINEL_START_FAILED', `The sentinel (pid ${pid}) was not ready within ${timeoutMs} ms; see ${logPath}.`)), timeoutMs);
    lines.on('line', (line) => {
      if (line.trim() === SENTINEL_READY) settle();
    });
    void exited.then(({ code, signal }) =>
      settle(new SentinelError('SENTINEL_START_FAILED', `The sentinel (pid ${pid}) exited before it was ready (code ${code}, signal ${signal}); see ${logPath}.`)),
    );
  });
}
