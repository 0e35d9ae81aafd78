// The Windows strategy: the tree tracker, its durable record, the kill executors, the stop protocol, the force-close guard.
export { WindowsTreeTracker, sequencedReader } from './tracker.js';
export type { WindowsTreeTrackerOptions } from './tracker.js';
export { parseRecord } from './record.js';
export type { ForeignSighting, TrackedProcess, WindowsTreeRecord } from './record.js';
export { processKillExecutor, taskkillExecutor } from './kill.js';
export type { TaskkillOptions, WindowsKillExecutor, WindowsKillResult } from './kill.js';
export { terminateWindows } from './terminate.js';
export type { WindowsTerminateOptions } from './terminate.js';
export { WINDOWS_GUARD_FLAG, WINDOWS_GUARD_READY, runWindowsGuard, startWindowsGuard } from './guard.js';
export type { WindowsGuard, WindowsGuardMessage, WindowsGuardOptions, WindowsGuardRunOptions } from './guard.js';
