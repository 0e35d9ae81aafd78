// Structured logging: one pino root, a child per instance. Level from WARDEN_LOG_LEVEL (default `warn`).
import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger } from 'pino';

// The process-wide default logger, to stderr so stdout stays free for command output.
export const rootLogger: Logger = pino(
  { name: 'warden', level: process.env.WARDEN_LOG_LEVEL ?? 'warn' },
  pino.destination({ dest: 2, sync: false }),
);
