// The stop protocol's one entry point: picks the platform strategy (Windows tracker, cgroup, signals) in one place.
import { WardenError } from './errors.js';
import type { OwnerRecord } from './ownership.js';
import { terminateCgroup } from './posix/cgroup-terminate.js';
import { terminateBySignals } from './posix/signal-terminate.js';
import type { TerminationReport } from './report.js';
import type { TerminateOptions } from './terminate-options.js';
import { terminateWindows } from './windows/terminate.js';
import type { WindowsTreeTracker } from './windows/index.js';

export type { KilledProcess, Survivor, TerminationReport } from './report.js';
export type { TerminateOptions } from './terminate-options.js';

// Stops the owner's whole tree and confirms it is gone: every strategy resolves only with what it read back.
export async function terminate(owner: OwnerRecord, options: TerminateOptions = {}): Promise<TerminationReport> {
  if (process.platform === 'win32') return terminateOnWindows(owner, options);
  const cgroupOwner = withCgroup(owner);
  if (cgroupOwner !== undefined) return terminateCgroup(cgroupOwner, options);
  return terminateBySignals(owner, options);
}

// The cgroup backend (containment.ts): the kernel's membership is the owned set, cgroup-terminate.ts stops it.
function withCgroup(owner: OwnerRecord): (OwnerRecord & { cgroup: string }) | undefined {
  return owner.cgroup === undefined ? undefined : { ...owner, cgroup: owner.cgroup };
}

// Windows has no signals to freeze or terminate with: the tracker-based strategy in windows/terminate.ts, never a silent fallback.
function terminateOnWindows(owner: OwnerRecord, options: TerminateOptions): Promise<TerminationReport> {
  const tracker = options.windowsTracker ?? (owner as { windows?: WindowsTreeTracker }).windows;
  if (tracker === undefined) {
    throw new WardenError('NO_WINDOWS_TRACKER', `Cannot stop "${owner.instanceId}" on Windows: no tree tracker (launch it with Warden, or restore it from the registry record).`);
  }
  return terminateWindows(tracker, {
    ...(options.beforeSignals !== undefined && { beforeSignals: options.beforeSignals }),
    politeWaitMs: options.politeWaitMs ?? options.graceMs ?? 5000,
    ...(options.immediate !== undefined && { immediate: options.immediate }),
    ...(options.shouldHurry !== undefined && { shouldHurry: options.shouldHurry }),
    confirmTimeoutMs: options.confirmTimeoutMs ?? 10_000,
    ...(options.readTable !== undefined && { readTable: options.readTable }),
    ...(options.windowsKiller !== undefined && { killer: options.windowsKiller }),
  });
}
