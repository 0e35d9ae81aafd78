// Writing responses: JSON with the headers every answer carries, and errors as `{ error: { code, message } }`.
import type { ServerResponse } from 'node:http';
import { WardenError } from '../errors.js';

/** Headers on every response: no sniffing, no framing, no referrer (the SSE URL may carry the token). No CORS headers, ever. */
export const BASE_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

/** The headers of every Server-Sent Events stream (events and log follows): no caching, no proxy buffering. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-store, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
};

// An error meant for the client: an HTTP status, a stable code, a message and optional details.
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** The HTTP status of each WardenError code that is the client's to fix or a refusal; every other code is 500. */
const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  UNKNOWN_INSTANCE: 404,
  PORT_IN_USE: 409,
  FOREIGN_INSTANCE: 409,
  RESTARTS_HELD: 409,
  INSTANCE_FAILED: 409,
  SHUT_DOWN: 409,
  SUPERVISOR_LOCKED: 409,
};

// Sends a JSON body with the base headers; `no-store`, since every API answer is live state.
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    ...BASE_HEADERS,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

// Turns anything thrown into an HTTP status and a JSON error body; a WardenError keeps its code and its fields.
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof WardenError) {
    const details: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(error)) {
      if (key !== 'code' && key !== 'name' && key !== 'cause') details[key] = value;
    }
    return new HttpError(STATUS_OF_CODE[error.code] ?? 500, error.code, error.message, details);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new HttpError(500, 'INTERNAL', message);
}

// Sends an error as `{ error: { code, message, ...details } }` with its status.
export function sendError(res: ServerResponse, error: unknown): void {
  const http = toHttpError(error);
  sendJson(res, http.status, { error: { code: http.code, message: http.message, ...http.details } }, http.headers);
}
