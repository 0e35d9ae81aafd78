// Request bodies: small JSON objects only; anything else is a 400 (or 413/415) that names the problem.
import type { IncomingMessage } from 'node:http';
import { HttpError } from './respond.js';

/** The largest body any route accepts. */
const MAX_BODY_BYTES = 16 * 1024;

// Reads the body and parses it as a JSON object; an empty body is `{}`.
export async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'BODY_TOO_LARGE', `The request body is larger than ${MAX_BODY_BYTES} bytes.`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `A request body must be JSON with "Content-Type: application/json" (got "${type || 'none'}").`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, 'MALFORMED_BODY', `The request body is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, 'MALFORMED_BODY', `The request body must be a JSON object (got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}).`);
  }
  return value as Record<string, unknown>;
}
