// Server-Sent Events: every WardenEvent as `id`/`event`/`data`, replay after Last-Event-ID, heartbeats, clean close.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Subscription } from 'rxjs';
import type { Supervisor, WardenEvent } from '../runtime/supervisor.js';
import { BASE_HEADERS, SSE_HEADERS, sendJson } from './respond.js';

/** Options of the event hub. */
export interface EventHubOptions {
  /** A comment line every so often, so proxies and clients see the stream is alive. Default 15000. */
  heartbeatMs?: number;
  /** How many past events are kept for replay (Last-Event-ID, `?lastEventId=`). Default 1000. */
  replayLimit?: number;
  /** How many past `sample` events are kept for replay, apart, so samples never push other events out. Default 120. */
  sampleReplayLimit?: number;
  /** Streams open at once; one more is answered 503 with Retry-After (each stream holds a socket and a buffer). Default 32. */
  maxClients?: number;
}

interface Buffered {
  id: number;
  frame: string;
}

/** A stream may lag this far behind before it is dropped (the client reconnects and replays what it missed). */
const MAX_PENDING_BYTES = 4 * 1024 * 1024;
/** How long a client waits before reconnecting, sent as `retry:`. */
const RETRY_MS = 2000;

// Formats one SSE frame; JSON never contains a raw newline, so one `data:` line is enough.
function frame(event: string, data: unknown, id?: number): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** Fans the supervisor's events out to SSE clients. */
export interface EventHub {
  /** Serves one `GET /api/events`: a `status` snapshot, the replay after `lastEventId`, then live events. */
  attach(req: IncomingMessage, res: ServerResponse, lastEventId: number | undefined): void;
  /** True once the supervisor's event stream completed (it has shut down). */
  readonly completed: boolean;
  /** Ends every stream and stops listening. */
  close(): void;
}

// Subscribes to `events$` at once, so events between server start and a client's connect can be replayed.
export function createEventHub(supervisor: Supervisor, options: EventHubOptions = {}): EventHub {
  const replayLimit = options.replayLimit ?? 1000;
  const sampleReplayLimit = options.sampleReplayLimit ?? 120;
  const maxClients = options.maxClients ?? 32;
  const buffer: Buffered[] = [];
  // One sample a second would otherwise fill the replay with samples within minutes and drop every transition.
  const samples: Buffered[] = [];
  const clients = new Set<ServerResponse>();
  let nextId = 1;
  let completed = false;

  const write = (res: ServerResponse, text: string): void => {
    if (res.writableLength > MAX_PENDING_BYTES) {
      // Too slow to keep up: drop it rather than buffer without bound. It reconnects with Last-Event-ID.
      clients.delete(res);
      res.destroy();
      return;
    }
    res.write(text);
  };

  const endAll = (): void => {
    for (const res of clients) res.end();
    clients.clear();
  };

  const subscription: Subscription = supervisor.events$.subscribe({
    next: (event: WardenEvent) => {
      const id = nextId++;
      const text = frame(event.type, event, id);
      const kept = event.type === 'sample' ? samples : buffer;
      kept.push({ id, frame: text });
      if (kept.length > (event.type === 'sample' ? sampleReplayLimit : replayLimit)) kept.shift();
      for (const res of clients) write(res, text);
    },
    complete: () => {
      completed = true;
      const text = frame('shutdown', { type: 'shutdown', at: Date.now() });
      for (const res of clients) write(res, text);
      endAll();
    },
  });

  const heartbeat = setInterval(() => {
    const text = `: heartbeat ${new Date().toISOString()}\n\n`;
    for (const res of clients) write(res, text);
  }, options.heartbeatMs ?? 15_000);
  heartbeat.unref();

  return {
    attach(req, res, lastEventId) {
      if (completed) {
        // 204 tells EventSource to stop reconnecting: there is nothing more to say.
        res.writeHead(204, { ...BASE_HEADERS, 'cache-control': 'no-store' });
        res.end();
        return;
      }
      if (clients.size >= maxClients) {
        sendJson(res, 503, { error: { code: 'TOO_MANY_STREAMS', message: `${clients.size} event streams are open (the limit is ${maxClients}); close one or retry later.` } }, { 'retry-after': '5' });
        return;
      }
      req.socket.setNoDelay(true);
      res.writeHead(200, { ...BASE_HEADERS, ...SSE_HEADERS });
      let text = `retry: ${RETRY_MS}\n\n${frame('status', supervisor.status())}`;
      if (lastEventId !== undefined) {
        // Both buffers are in id order: merge them so the replay keeps the order events happened in.
        let a = 0;
        let b = 0;
        while (a < buffer.length || b < samples.length) {
          const next = b >= samples.length || (a < buffer.length && (buffer[a] as Buffered).id < (samples[b] as Buffered).id) ? buffer[a++] : samples[b++];
          if (next !== undefined && next.id > lastEventId) text += next.frame;
        }
      }
      res.write(text);
      clients.add(res);
      res.on('close', () => clients.delete(res));
    },
    get completed() {
      return completed;
    },
    close() {
      clearInterval(heartbeat);
      subscription.unsubscribe();
      endAll();
    },
  };
}
