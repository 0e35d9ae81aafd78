// The operating-system boundary of Warden: read the process table, launch a tree, prove ownership, stop it.
export { snapshot, snapshotProcSync, isAlive } from './snapshot.js';
export type { SnapshotOptions } from './snapshot.js';
export { launch, newMarker, resolveCommand } from './launch.js';
export type { LaunchSpec, TreeHandle, ExitInfo } from './launch.js';
export { collectOwned, findMarked, parseMarker, childrenOf } from './ownership.js';
export type { OwnerRecord, OwnedProcess, OwnershipProof, CollectOptions } from './ownership.js';
export { terminate } from './terminate.js';
export type { TerminateOptions, TerminationReport, KilledProcess, Survivor } from './terminate.js';
export { identityHolds, identityHoldsNow, currentIdentity } from './identity.js';
export { signalProcess, signalGroup } from './signal.js';
export type { SignalOutcome } from './signal.js';
export { classifyRole } from './roles.js';
export { WardenError, LaunchError } from './errors.js';
export { MARKER_VARIABLE } from './types.js';
export type { ProcessInfo, ProcessTable, ProcessIdentity, ProcessRole } from './types.js';
export { portAnswers, listeningPids } from './ports.js';
export { findLookalikes } from './lookalikes.js';
export type { Lookalike, LookalikeProfile } from './lookalikes.js';
