// Errors of the runtime. Each has a stable `code` and a message a person can act on.
import { WardenError } from './process/errors.js';

export { WardenError, LaunchError } from './process/errors.js';

/** A process named in an error: enough to find it in `ps`. */
export interface NamedProcess {
  pid: number;
  name: string;
  /** Why it is named (e.g. what makes it look like the instance). */
  why?: string;
  /** The Warden marker it carries, if any (then it belongs to some Warden, maybe another supervisor). */
  marker?: string;
}

const describe = (processes: NamedProcess[]): string =>
  processes.length === 0 ? 'pid unknown' : processes.map((entry) => `pid ${entry.pid} ${entry.name}`).join(', ');

// Refused before spawning: something not started by this supervisor already answers on the instance's port.
export class PortInUseError extends WardenError {
  constructor(
    readonly instanceId: string,
    readonly port: number,
    readonly holders: NamedProcess[],
  ) {
    const whose = holders.some((holder) => holder.marker !== undefined)
      ? holders.map((holder) => `pid ${holder.pid} ${holder.name}${holder.marker === undefined ? '' : `, Warden marker ${holder.marker}`}`).join('; ')
      : `${describe(holders)}, not started by Warden`;
    super('PORT_IN_USE', `Cannot start "${instanceId}": port ${port} already answers (${whose}). Stop it or configure another port.`);
  }
}

// Refused before spawning: a WebUI-looking process without our marker runs in the instance's directory.
export class ForeignInstanceError extends WardenError {
  constructor(
    readonly instanceId: string,
    readonly cwd: string,
    readonly processes: NamedProcess[],
  ) {
    const which = processes.map((entry) => `pid ${entry.pid} ${entry.name}${entry.why === undefined ? '' : ` ${entry.why}`}`).join('; ');
    super('FOREIGN_INSTANCE', `Cannot start "${instanceId}" (cwd ${cwd}): a WebUI not started by Warden is already running (${which}). Warden never kills it; stop it yourself, or check it with \`warden audit\`.`);
  }
}

// `start()` did not reach running: the instance crashed, failed, or was stopped first.
export class StartError extends WardenError {
  constructor(
    readonly instanceId: string,
    readonly state: string,
    reason: string,
  ) {
    super('START_FAILED', `"${instanceId}" did not start: ${reason} (now ${state})`);
  }
}

// An operation named an instance id that is not configured.
export class UnknownInstanceError extends WardenError {
  constructor(readonly instanceId: string, known: string[]) {
    super('UNKNOWN_INSTANCE', `No instance "${instanceId}" is configured (known: ${known.join(', ') || 'none'})`);
  }
}

// A stop or shutdown whose tree was not confirmed dead within the caller's timeout.
export class StopTimeoutError extends WardenError {
  constructor(readonly instanceId: string, readonly survivors: NamedProcess[], timeoutMs: number) {
    super('STOP_TIMEOUT', `"${instanceId}" is not confirmed dead after ${timeoutMs} ms; survivors: ${describe(survivors)}. Warden keeps retrying with SIGKILL.`);
  }
}

// stop() gave up: the stop protocol stopped retrying (survivors refuse our signals, or the attempts are spent).
// The instance stays in `stopping` (nothing is launched); `report` is the last termination report.
export class StopIncompleteError extends WardenError {
  constructor(readonly instanceId: string, readonly survivors: NamedProcess[], reason: string) {
    super('STOP_INCOMPLETE', `"${instanceId}" is not confirmed dead and Warden stopped retrying; survivors: ${describe(survivors)}. ${reason}`);
  }
}

// The supervisor was used after shutdown.
export class ShutDownError extends WardenError {
  constructor() {
    super('SHUT_DOWN', 'This supervisor has been shut down; create a new one');
  }
}

// The supervisor would not carry out a command right now (restarts held after an emergency, shutting down).
export class CommandRefusedError extends WardenError {
  constructor(readonly instanceId: string | null, readonly command: string, reason: string) {
    super('COMMAND_REFUSED', `${command} ${instanceId === null ? '(all instances)' : `"${instanceId}"`} refused: ${reason}`);
  }
}
