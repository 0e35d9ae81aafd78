// The output of one instance over HTTP: `GET /api/instances/:id/logs?tail=N` (JSON) and `?follow=1` (SSE lines).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Supervisor } from '../runtime/supervisor.js';
import { HttpError, sendJson } from './respond.js';
import { BASE_HEADERS, SSE_HEADERS } from './respond.js';

/** The most lines one answer (or a stream's first part) carries. */
export const MAX_TAIL_LINES = 10_000;
const DEFAULT_TAIL_LINES = 100;
/** A follower may lag this far behind before it is dropped (it reconnects and asks for the tail again). */
const MAX_PENDING_BYTES = 4 * 1024 * 1024;
const HEARTBEAT_MS = 15_000;
/** Open `?follow=1` streams one server holds at most; one more is 503 (each holds a subscription and a socket). */
export const MAX_LOG_FOLLOWERS = 32;

/** The open `?follow=1` streams of one server, so its close() ends them at once instead of after the grace. */
export interface LogFollowers {
  /** Registers an open stream; it leaves the set when its response closes. */
  add(res: ServerResponse): void;
  /** Ends every open stream with a `shutdown` frame; later streams are ended as soon as they open. */
  close(): void;
  readonly size: number;
}

// One server's set of follow responses.
export function createLogFollowers(): LogFollowers {
  const open = new Set<ServerResponse>();
  let closed = false;
  const end = (res: ServerResponse): void => {
    if (!res.writableEnded) res.end(shutdownFrame());
  };
  return {
    add(res) {
      if (closed) return end(res);
      open.add(res);
      res.on('close', () => open.delete(res));
    },
    close() {
      closed = true;
      for (const res of open) end(res);
      open.clear();
    },
    get size() {
      return open.size;
    },
  };
}

const shutdownFrame = (): string => `event: shutdown\ndata: ${JSON.stringify({ type: 'shutdown', at: Date.now() })}\n\n`;

// `tail` from the query: a whole number from 0 to MAX_TAIL_LINES; `fallback` when absent.
function tailOf(url: URL, fallback: number): number {
  const raw = url.searchParams.get('tail');
  if (raw === null) return fallback;
  if (!/^\d{1,6}$/.test(raw) || Number(raw) > MAX_TAIL_LINES) {
    throw new HttpError(400, 'BAD_REQUEST', `tail must be a whole number from 0 to ${MAX_TAIL_LINES} (got "${raw}").`, { parameter: 'tail', value: raw });
  }
  return Number(raw);
}

// `follow` from the query: 1/true streams, 0/false (or absent) answers once.
function followOf(url: URL): boolean {
  const raw = url.searchParams.get('follow');
  if (raw === null) return false;
  if (!['', '1', 'true', '0', 'false'].includes(raw)) throw new HttpError(400, 'BAD_REQUEST', `follow must be 1, true, 0 or false (got "${raw}").`, { parameter: 'follow', value: raw });
  return raw === '' || raw === '1' || raw === 'true';
}

// Answers the logs route: JSON `{ id, lines, file }`, or an SSE stream of `event: line` frames.
export function serveLogs(supervisor: Supervisor, req: IncomingMessage, res: ServerResponse, url: URL, id: string, followers?: LogFollowers): void {
  const follow = followOf(url);
  const tail = tailOf(url, follow ? 0 : DEFAULT_TAIL_LINES);
  // Throws UnknownInstanceError (404) for an id that is not configured.
  const logs = supervisor.logs(id, { tail });
  if (!follow) return sendJson(res, 200, logs);
  if (followers !== undefined && followers.size >= MAX_LOG_FOLLOWERS) {
    return sendJson(res, 503, { error: { code: 'TOO_MANY_STREAMS', message: `${followers.size} log streams are open (the limit is ${MAX_LOG_FOLLOWERS}); close one or retry later.` } }, { 'retry-after': '5' });
  }
  streamLines(supervisor, req, res, id, logs.lines, followers);
}

// The SSE part, on its own so the hub's connection caps can wrap it: the tail first, then each line as it comes.
export function streamLines(supervisor: Supervisor, req: IncomingMessage, res: ServerResponse, id: string, first: readonly unknown[], followers?: LogFollowers): void {
  req.socket.setNoDelay(true);
  res.writeHead(200, { ...BASE_HEADERS, ...SSE_HEADERS });
  const frame = (line: unknown): string => `event: line\ndata: ${JSON.stringify(line)}\n\n`;
  res.write(`retry: 2000\n\n${first.map(frame).join('')}`);
  const write = (text: string): void => {
    if (res.writableLength > MAX_PENDING_BYTES) {
      res.destroy();
      return;
    }
    res.write(text);
  };
  const subscription = supervisor.output$(id).subscribe({
    next: (line) => write(frame(line)),
    complete: () => {
      if (!res.writableEnded) res.end(shutdownFrame());
    },
  });
  const heartbeat = setInterval(() => write(`: heartbeat ${new Date().toISOString()}\n\n`), HEARTBEAT_MS);
  heartbeat.unref();
  res.on('close', () => {
    clearInterval(heartbeat);
    subscription.unsubscribe();
  });
  followers?.add(res);
}
