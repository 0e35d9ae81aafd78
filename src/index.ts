// webui-warden: supervise a local Stable Diffusion WebUI and prove its whole process tree dead on every stop.
export { createSupervisor } from './runtime/supervisor.js';
export type { Supervisor, SupervisorOptions, SupervisorStatus, InstanceStatus, InstanceReport, InstanceLogs, ShutdownReport, WardenEvent } from './runtime/supervisor.js';
export { WEBUI_PROFILES, LaunchOverrideError } from './profiles.js';
export type { WebuiProfile, StartOverrides } from './profiles.js';
export { PortRangeExhaustedError } from './port-discovery.js';
export type { CrashHint, CrashCause } from './crash-hints.js';
export type { OutputLine } from './logs/output-log.js';
export { parseConfig, loadConfigFile, configJsonSchema, ConfigError, portRangeOf } from './config/index.js';
export type { WardenConfig, InstanceConfig, ConfigIssue, AutoPort, LaunchProfileConfig, LogsConfig } from './config/index.js';
export { PortInUseError, ForeignInstanceError, StartError, StopTimeoutError, StopIncompleteError, UnknownInstanceError, ShutDownError, WardenError, LaunchError } from './errors.js';
export { SupervisorLockedError } from './process/state/lock.js';
export type { Sample, RoleCounts, StaleGroup } from './sampler.js';
