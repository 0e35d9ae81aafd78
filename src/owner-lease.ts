// The owner lease of `warden run --owner-pid PID --lifeline`: the WebUI must not outlive the controller that started it.
import { fstatSync } from 'node:fs';
import { currentIdentity, identityHoldsNow } from './process/identity.js';
import type { ProcessIdentity } from './process/types.js';

/** How often the owner's pid is re-read: a dead owner is noticed within this (plus one /proc read). */
export const OWNER_POLL_MS = 200;

/** What ties `warden run` to its owner. */
export interface OwnerLeaseOptions {
  /** The controller as {@link identifyOwner} read it before anything started (pid and start time): a pid reused later never passes for the owner. */
  owner?: ProcessIdentity;
  /** Stdin is a pipe from the owner: end of file (the owner closed it, or died) means the owner is gone. */
  lifeline?: boolean;
  /** Poll interval for `ownerPid`. Default {@link OWNER_POLL_MS}. */
  intervalMs?: number;
  /** The stream the lifeline reads. Default `process.stdin`. */
  stdin?: NodeJS.ReadableStream & { fd?: number };
}

/** A refused lease: the owner is already gone, or the lifeline is not a pipe. `code` is stable. */
export class OwnerLeaseError extends Error {
  readonly code: 'OWNER_GONE' | 'LIFELINE_NOT_A_PIPE';
  constructor(code: OwnerLeaseError['code'], message: string) {
    super(message);
    this.name = 'OwnerLeaseError';
    this.code = code;
  }
}

/** A running lease; `release()` stops watching (the normal shutdown path calls it). */
export interface OwnerLease {
  /** The owner being watched (pid and start time), if one was given. */
  readonly owner: ProcessIdentity | undefined;
  release(): void;
}

// Checks the owner before anything is spawned: throws OWNER_GONE for a pid that is not (or no longer) a live process.
export function identifyOwner(pid: number): ProcessIdentity {
  const identity = currentIdentity(pid);
  if (identity === undefined || !identityHoldsNow(identity)) {
    throw new OwnerLeaseError('OWNER_GONE', `--owner-pid ${pid}: no such process is running (the owner is already gone); nothing was started.`);
  }
  return identity;
}

// Checks that the lifeline (stdin) is a pipe or socket: a terminal or /dev/null would never (or at once) end.
export function checkLifeline(stdin: { fd?: number } = process.stdin as { fd?: number }): void {
  const fd = stdin.fd ?? 0;
  let kind = 'unreadable';
  try {
    const stat = fstatSync(fd);
    if (stat.isFIFO() || stat.isSocket()) return;
    kind = stat.isCharacterDevice() ? 'a terminal or device' : stat.isFile() ? 'a file' : 'not a pipe';
  } catch {
    // kind stays "unreadable"
  }
  throw new OwnerLeaseError('LIFELINE_NOT_A_PIPE', `--lifeline: stdin must be a pipe held open by the owner (it is ${kind}); start warden run with stdin=PIPE.`);
}

// Watches the owner; calls `onLost` once, with the reason, when its pid dies (or is reused) or the lifeline ends.
export function watchOwner(options: OwnerLeaseOptions, onLost: (reason: string) => void): OwnerLease {
  let released = false;
  const lost = (reason: string): void => {
    if (released) return;
    release();
    onLost(reason);
  };
  const owner = options.owner;
  let timer: NodeJS.Timeout | undefined;
  if (owner !== undefined) {
    timer = setInterval(() => {
      if (identityHoldsNow(owner)) return;
      const now = currentIdentity(owner.pid);
      lost(now !== undefined && identityHoldsNow(now) ? `owner pid ${owner.pid} exited (the pid now names another process)` : `owner pid ${owner.pid} exited`);
    }, options.intervalMs ?? OWNER_POLL_MS);
    timer.unref();
  }
  const stdin = options.stdin ?? process.stdin;
  const onEnd = (): void => lost('the owner closed the lifeline (stdin reached end of file)');
  const onError = (): void => lost('the lifeline (stdin) broke');
  // Whatever the owner writes is ignored; only the end of the pipe matters.
  const onData = (): void => undefined;
  if (options.lifeline === true) {
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.once('error', onError);
    stdin.resume();
  }
  function release(): void {
    if (released) return;
    released = true;
    if (timer !== undefined) clearInterval(timer);
    if (options.lifeline === true) {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onError);
      stdin.pause();
    }
  }
  return { owner, release };
}
