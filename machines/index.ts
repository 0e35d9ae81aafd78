// webui-warden/machines: the pure XState v5 machines and their policy functions (imports nothing but xstate).
// Every input, actor input/output and event shape.
export * from './types.js';
// Restart policy: backoff delay and restart budget.
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
// Watchdog policy: levels, the doubling rule, hysteresis.
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
// The instance machine and its placeholder actors.
export {
  DEFAULT_MAX_STOP_ATTEMPTS,
  DEFAULT_RETRY_STOP_DELAY_MS,
  instanceContext,
  instanceMachine,
  launchTree,
  monitorTree,
  terminateTree,
} from './instance.machine.js';
export type { InstanceContext, InstanceEvent } from './instance.machine.js';
// The watchdog machine.
export { watchdogMachine } from './watchdog.machine.js';
export type { WatchdogContext, WatchdogEvent } from './watchdog.machine.js';
// The supervisor machine, its placeholder actors and helpers.
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
