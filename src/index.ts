// webui-warden: supervise a local Stable Diffusion WebUI and prove its whole process tree dead on every stop.
export { createSupervisor } from './supervisor.js';
export type { Supervisor, SupervisorOptions, SupervisorStatus, InstanceStatus, ShutdownReport, WardenEvent } from './supervisor.js';
export { parseConfig, loadConfigFile, configJsonSchema, ConfigError } from './config.js';
export type { WardenConfig, InstanceConfig, ConfigIssue } from './config.js';
export { PortInUseError, ForeignInstanceError, StartError, StopTimeoutError, StopIncompleteError, UnknownInstanceError, ShutDownError, WardenError, LaunchError } from './errors.js';
export { SupervisorLockedError } from './process/lock.js';
export type { Sample, RoleCounts, StaleGroup } from './sampler.js';
