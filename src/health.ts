// The HTTP health probe: one GET with a timeout; any 2xx is healthy, everything else says why not.
// node:http rather than fetch: a probe every few seconds per instance should cost next to nothing (undici's
// fetch costs several times the CPU of a plain request, measured in bench/supervisor.bench.ts).
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';

/** The outcome of one probe. */
export interface ProbeResult {
  ok: boolean;
  status?: number;
  /** Why the probe failed, in words a log reader understands. */
  reason?: string;
  durationMs: number;
}

// Sends one request and resolves with its status code, or rejects with the transport error or a timeout.
function send(url: string, method: 'GET' | 'POST', timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const parsed = new URL(url);
    const request = (parsed.protocol === 'https:' ? httpsRequest : httpRequest)(parsed, { method, agent: false, headers: { connection: 'close' } }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
      response.on('error', reject);
    });
    request.setTimeout(timeoutMs, () => request.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'TIMEOUT' })));
    request.on('error', reject);
    request.end();
  });
}

// One GET over a bare socket, for plain-http probes: only the status line is read, then the socket is closed.
// A probe every couple of seconds per instance is most of the supervisor's idle CPU; node:http's request and
// response objects cost about twice the CPU of this (bench/supervisor.bench.ts, docs/BENCHMARKS.md).
function getStatus(parsed: URL, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = parsed.port === '' ? 80 : Number(parsed.port);
    const socket = connect({ host, port, noDelay: true });
    let head = '';
    const finish = (error: Error | undefined, status?: number): void => {
      socket.destroy();
      if (error !== undefined) reject(error);
      else resolve(status as number);
    };
    socket.setTimeout(timeoutMs, () => finish(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'TIMEOUT' })));
    socket.once('connect', () => {
      socket.write(`GET ${parsed.pathname}${parsed.search} HTTP/1.1\r\nHost: ${parsed.host}\r\nConnection: close\r\nAccept: */*\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n');
      if (end === -1 && head.length < 1024) return;
      const match = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(end === -1 ? head : head.slice(0, end));
      if (match === null) finish(Object.assign(new Error(`not an HTTP answer: ${JSON.stringify(head.slice(0, 40))}`), { code: 'EPROTO' }));
      else finish(undefined, Number(match[1]));
    });
    socket.once('end', () => finish(Object.assign(new Error('connection closed before an answer'), { code: 'ECONNRESET' })));
    socket.once('error', (error) => finish(error));
  });
}

// Probes `url` once; never throws.
export async function probeHealth(url: string, timeoutMs: number): Promise<ProbeResult> {
  const started = performance.now();
  try {
    const parsed = new URL(url);
    const status = parsed.protocol === 'http:' ? await getStatus(parsed, timeoutMs) : await send(url, 'GET', timeoutMs);
    const durationMs = performance.now() - started;
    if (status >= 200 && status < 300) return { ok: true, status, durationMs };
    return { ok: false, status, reason: `HTTP ${status} from ${url}`, durationMs };
  } catch (error) {
    const durationMs = performance.now() - started;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'TIMEOUT') return { ok: false, reason: `no answer from ${url} within ${timeoutMs} ms`, durationMs };
    return { ok: false, reason: `${url}: ${code ?? (error as Error).message}`, durationMs };
  }
}

// Posts to a URL and ignores the answer (the WebUI's server-stop); resolves false when it could not be delivered.
export async function postQuietly(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const status = await send(url, 'POST', timeoutMs);
    return status >= 200 && status < 300;
  } catch {
    return false;
  }
}
