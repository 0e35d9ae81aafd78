// Exit codes and error reporting of the `warden` CLI: one line on stderr for anything a user can fix, never a stack.
import { ConfigError, formatReceived } from '../config/index.js';
import { WardenError } from '../errors.js';

/** Every exit code the CLI uses (documented in docs/CLI.md). Codes ≥ 64 follow BSD sysexits.h. */
export const EXIT = {
  /** Success; `audit`: nothing above the warning thresholds and no stale process. */
  ok: 0,
  /** The command ran but its goal failed (survivors, a start that failed); `audit`: warning. */
  failure: 1,
  /** `audit` only: critical. */
  critical: 2,
  /** Bad flags or arguments, or a config file that cannot be used (EX_USAGE). */
  usage: 64,
  /** What the command needs is not there: no `warden run` to ask, no python3 for the demo (EX_UNAVAILABLE). */
  unavailable: 69,
  /** A bug or an unexpected system error (EX_SOFTWARE). */
  software: 70,
  /** Refused because a live supervisor holds the state directory (EX_TEMPFAIL: try again once it stopped). */
  busy: 75,
  /** Interrupted by Ctrl-C (128 + SIGINT). */
  interrupted: 130,
} as const;

/** An error the CLI itself raises, with the exit code it maps to. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT.failure) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

const BUSY_CODES = new Set(['SUPERVISOR_LOCKED', 'SUPERVISOR_LOCK_BUSY']);

// The exit code an error maps to.
export function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof ConfigError) return EXIT.usage;
  if (error instanceof WardenError) return BUSY_CODES.has(error.code) ? EXIT.busy : EXIT.failure;
  return EXIT.software;
}

// The lines to print for an error: one per problem, each prefixed `warden: `; a stack only with WARDEN_DEBUG=1.
export function describeError(error: unknown): string[] {
  if (error instanceof ConfigError && error.issues.length > 0) {
    const where = error.file === undefined ? 'invalid config' : `invalid config ${error.file}`;
    return error.issues.map((issue) => `${where}: ${issue.path}: ${issue.message} (got ${received(issue.received)})`);
  }
  if (error instanceof CliError || error instanceof WardenError) return [error.message];
  const message = error instanceof Error ? error.message : String(error);
  const debug = process.env.WARDEN_DEBUG === '1' && error instanceof Error ? `\n${error.stack ?? ''}` : '';
  return [`unexpected error: ${message} (this is a bug; set WARDEN_DEBUG=1 for the stack trace)${debug}`];
}

// Prints the error on stderr and returns its exit code.
export function reportError(error: unknown): number {
  for (const line of describeError(error)) process.stderr.write(`warden: ${line}\n`);
  return exitCodeOf(error);
}

// A received value as the config errors write it; `undefined` (a missing field) reads as "nothing" on the CLI.
function received(value: unknown): string {
  return value === undefined ? 'nothing' : formatReceived(value);
}
