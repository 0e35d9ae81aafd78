// Keeps a sentinel alive for as long as the supervisor lives: if the sentinel dies (OOM killer, a stray SIGKILL),
// a new one is started and re-told every tree still tracked, so a later force-close still leaves nothing behind.
import { rootLogger } from '../../logging.js';
import type { OwnerRecord } from '../ownership.js';
import { startSentinel } from './sentinel.js';
import type { Sentinel, SentinelExit, SentinelOptions } from './sentinel.js';
import type { ProcessIdentity } from '../types.js';

export interface KeptSentinelOptions extends SentinelOptions {
  /** Wait before each restart attempt after the first (a sentinel that cannot start is retried). Default 1000. */
  restartDelayMs?: number;
  /** Called after each restart with the new sentinel's identity and how many records it was re-told. */
  onRestart?: (event: { identity: ProcessIdentity; previous: ProcessIdentity; exit: SentinelExit; records: number; restarts: number }) => void;
}

/** A sentinel that comes back: `pid`/`identity` name the current one; `restarts` counts how often it came back. */
export interface KeptSentinel extends Sentinel {
  readonly restarts: number;
}

// Starts a sentinel and restarts it whenever it exits before goodbye(); every tracked record is re-sent to the new one.
export async function keepSentinel(options: KeptSentinelOptions): Promise<KeptSentinel> {
  const logger = (options.logger ?? rootLogger).child({ component: 'sentinel-keeper' });
  const restartDelayMs = options.restartDelayMs ?? 1000;
  // What the sentinel must guard now: the union of track() minus untrack(), in tracking order.
  const records = new Map<string, OwnerRecord>();
  let current: Sentinel = await startSentinel(options);
  let restarts = 0;
  let released = false;
  let restarting: Promise<void> | undefined;

  const restart = async (dead: Sentinel, exit: SentinelExit): Promise<void> => {
    for (let attempt = 0; !released; attempt += 1) {
      if (attempt > 0) await new Promise((wake) => setTimeout(wake, restartDelayMs).unref());
      if (released) return;
      try {
        const next = await startSentinel(options);
        if (released) {
          await next.goodbye();
          return;
        }
        current = next;
        restarts += 1;
        // Re-told in order; a track() racing this restart is sent again below (idempotent in the sentinel).
        for (const record of [...records.values()]) await next.track(record);
        watch(next);
        logger.warn({ pid: next.pid, previous: dead.pid, code: exit.code, signal: exit.signal, records: records.size, restarts }, 'sentinel restarted; every tracked tree re-told');
        options.onRestart?.({ identity: next.identity, previous: dead.identity, exit, records: records.size, restarts });
        return;
      } catch (error) {
        logger.error({ err: error, attempt }, 'sentinel restart failed; retrying');
      }
    }
  };

  const watch = (sentinel: Sentinel): void => {
    void sentinel.exited.then((exit) => {
      if (released || sentinel !== current) return;
      restarting = restart(sentinel, exit).finally(() => {
        restarting = undefined;
      });
    });
  };
  watch(current);

  // While a restart runs the new sentinel is not there yet: the record is kept and re-told when it is.
  const forward = async (send: (sentinel: Sentinel) => Promise<boolean>): Promise<boolean> => {
    if (restarting !== undefined) await restarting;
    return released ? false : send(current);
  };

  return {
    get pid() {
      return current.pid;
    },
    get identity() {
      return current.identity;
    },
    get logPath() {
      return current.logPath;
    },
    get exited() {
      return current.exited;
    },
    get hasExited() {
      return current.hasExited;
    },
    get restarts() {
      return restarts;
    },
    track(record) {
      records.set(record.marker, record);
      return forward((sentinel) => sentinel.track(record));
    },
    untrack(marker) {
      records.delete(marker);
      return forward((sentinel) => sentinel.untrack(marker));
    },
    async goodbye() {
      released = true;
      if (restarting !== undefined) await restarting;
      await current.goodbye();
    },
  };
}
