// Structured logging: one pino root, a child per instance. Level from WARDEN_LOG_LEVEL (default `warn`).
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger } from 'pino';

// The process-wide default logger, to stderr so stdout stays free for command output.
export const rootLogger: Logger = pino(
  { name: 'warden', level: process.env.WARDEN_LOG_LEVEL ?? 'warn' },
  pino.destination({ dest: 2, sync: false }),
);

/** The last lines a logger wrote, kept for diagnostic bundles. */
export interface LogTail {
  lines(): string[];
}

// A logger that writes to `destination` (default: the root logger's level to stderr) and keeps its last `size` lines.
export function createTailedLogger(options: { level?: string; size?: number; destination?: NodeJS.WritableStream } = {}): { logger: Logger; tail: LogTail } {
  const size = options.size ?? 500;
  const buffer: string[] = [];
  const ring = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) {
        if (line === '') continue;
        buffer.push(line);
        if (buffer.length > size) buffer.shift();
      }
      callback();
    },
  });
  const level = options.level ?? process.env.WARDEN_LOG_LEVEL ?? 'warn';
  const logger = pino(
    { name: 'warden', level: 'trace' },
    pino.multistream([
      // The tail keeps info and up even when the console shows less: that is what a bundle is for.
      { level: 'info', stream: ring },
      ...(level === 'silent' ? [] : [{ level: level as pino.Level, stream: options.destination ?? pino.destination({ dest: 2, sync: false }) }]),
    ]),
  );
  return { logger, tail: { lines: () => [...buffer] } };
}
