// webui-warden/machines: the pure XState v5 machines and their policy functions (imports nothing but xstate).
export * from './types.js';
export {
  DEFAULT_JITTER,
  backoffDelay,
  budgetExceeded,
  exponentialDelay,
  mulberry32,
  restartBudgetSpent,
  restartPolicyProblems,
  restartsInWindow,
  seedFromId,
} from './backoff.js';
export {
  DEFAULT_THRESHOLDS,
  LEVELS,
  classifySample,
  countLevel,
  isDoubling,
  levelRank,
  nextLevel,
  resolveThresholds,
} from './thresholds.js';
export type { LevelState } from './thresholds.js';
export {
  DEFAULT_RETRY_STOP_DELAY_MS,
  instanceContext,
  instanceMachine,
  launchTree,
  monitorTree,
  terminateTree,
} from './instance.machine.js';
export type { InstanceContext, InstanceEvent } from './instance.machine.js';
export { watchdogMachine } from './watchdog.machine.js';
export type { WatchdogContext, WatchdogEvent } from './watchdog.machine.js';
export {
  instanceKey,
  reapOrphans,
  shutdownOutput,
  supervisorContext,
  supervisorMachine,
  writeDiagnosticBundle,
} from './supervisor.machine.js';
export type {
  ChildFailed,
  CommandRefused,
  EmergencyInput,
  EmergencyRecord,
  InstanceView,
  SupervisorContext,
  SupervisorEmitted,
  SupervisorEvent,
  SupervisorOutput,
} from './supervisor.machine.js';
