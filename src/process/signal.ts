// Sends a signal to one process only if its identity still holds at the moment of sending.
import { identityHoldsNow } from './identity.js';
import type { ProcessIdentity } from './types.js';

/** What happened to one signal: delivered, target already gone (or reused), or refused by the kernel. */
export type SignalOutcome = 'sent' | 'gone' | 'denied';

// Signals `identity` after re-checking pid + start time; a reused pid is never signalled.
export function signalProcess(identity: ProcessIdentity, signal: NodeJS.Signals): SignalOutcome {
  if (identity.pid <= 1 || identity.pid === process.pid) return 'gone';
  if (!identityHoldsNow(identity)) return 'gone';
  try {
    process.kill(identity.pid, signal);
    return 'sent';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return 'gone';
    if (code === 'EPERM') return 'denied';
    throw error;
  }
}

// Signals a whole process group (POSIX); the caller has proven every member is ours.
export function signalGroup(pgid: number, signal: NodeJS.Signals): SignalOutcome {
  if (pgid <= 1) return 'gone';
  try {
    process.kill(-pgid, signal);
    return 'sent';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return 'gone';
    if (code === 'EPERM') return 'denied';
    throw error;
  }
}
