// Process identity: a pid is only "the same process" while its start time matches what we recorded.
import { readStartTimeDarwin } from './posix/darwin.js';
import { hasProcfs, readStartTime } from './posix/procfs.js';
import type { ProcessIdentity, ProcessTable } from './types.js';

// Whether the identity still names a live process in the table (same pid, same start time, not a zombie).
export function identityHolds(identity: ProcessIdentity, table: ProcessTable): boolean {
  const info = table.processes.get(identity.pid);
  if (info === undefined || info.state === 'Z' || info.state === 'X') return false;
  if (!comparableStart(identity, table)) return true;
  return identity.startTime === info.startTime;
}

// Whether the identity's start time is in the same unit as the table's.
export function comparableStart(identity: ProcessIdentity, table: ProcessTable): boolean {
  return identity.startTime !== undefined && (identity.clock ?? 'proc') === table.backend;
}

// Re-reads the identity from the live system right before a signal; false when the pid is gone or reused.
export function identityHoldsNow(identity: ProcessIdentity): boolean {
  if (!hasProcfs && process.platform === 'darwin') return darwinIdentityHolds(identity);
  if (!hasProcfs) {
    // Without /proc we can only ask whether the pid exists; callers use this path on macOS/Windows only.
    try {
      process.kill(identity.pid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  const now = readStartTime(identity.pid);
  if (now === undefined || now.state === 'Z' || now.state === 'X') return false;
  if (identity.startTime === undefined || (identity.clock ?? 'proc') !== 'proc') return true;
  return now.startTime === identity.startTime;
}

// The identity of a pid as the live system reports it now.
export function currentIdentity(pid: number): ProcessIdentity | undefined {
  if (!hasProcfs && process.platform === 'darwin') {
    const startTime = readStartTimeDarwin(pid);
    return startTime === undefined ? undefined : { pid, startTime, clock: 'ps-list' };
  }
  if (!hasProcfs) return { pid, startTime: undefined };
  const now = readStartTime(pid);
  return now === undefined ? undefined : { pid, startTime: now.startTime, clock: 'proc' };
}

// macOS: the start time is read again from ps; a pid whose start time cannot be read (or was never recorded in the
// ps clock) is refused: on its own a pid proves nothing.
export function darwinIdentityHolds(identity: ProcessIdentity, readStart: (pid: number) => number | undefined = readStartTimeDarwin): boolean {
  if (identity.startTime === undefined || (identity.clock ?? 'proc') !== 'ps-list') return false;
  const now = readStart(identity.pid);
  return now !== undefined && now === identity.startTime;
}
