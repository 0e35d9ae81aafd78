// The control server of `warden run`: HTTP API, Server-Sent Events, Prometheus metrics and the dashboard, loopback only.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WardenError } from '../errors.js';
import type { ShutdownReport, Supervisor } from '../runtime/supervisor.js';
import { resolveDashboardDir } from './dashboard.js';
import { createEventHub } from './events.js';
import { allowedAuthorities, isLoopbackHost } from './loopback.js';
import { createMetrics } from './metrics.js';
import { createRequestHandler } from './routes.js';
import type { RouteContext } from './routes.js';
import { createLogFollowers } from './log-stream.js';
import { removeServerFile, writeServerFile } from './server-file.js';
import { loadOrCreateToken } from './token.js';

// Where `warden status` looks: <stateDir>/server.json and <stateDir>/token.
export { serverFilePath } from './server-file.js';
export type { ServerFile } from './server-file.js';
export { tokenPath } from './token.js';

/** Where and how to serve. `host` must be loopback; `port` 0 picks a free one. */
export interface ControlServerOptions {
  host: string;
  port: number;
  /** Holds `token` (created once, mode 0600) and `server.json` (while serving). */
  stateDir: string;
  /** SSE heartbeat period. Default 15000. */
  heartbeatMs?: number;
  /** Events kept for SSE replay. Default 1000. */
  replayLimit?: number;
  /** `sample` events kept for SSE replay, apart from the others. Default 120. */
  sampleReplayLimit?: number;
  /** SSE streams open at once; one more gets 503 and Retry-After. Default 32. */
  maxEventStreams?: number;
  /** Node's process metrics (`warden_process_*`, `warden_nodejs_*`) on /metrics. Default true. */
  defaultMetrics?: boolean;
  /** Called when a shutdown requested by `POST /api/shutdown` has finished (the CLI exits then). */
  onShutdown?: (report: ShutdownReport) => void;
}

/** A running control server. */
export interface ControlServer {
  /** e.g. `http://127.0.0.1:7870` */
  url: string;
  /** The bearer token every /api route needs. */
  token: string;
  /** Ends SSE streams, stops listening, removes server.json. Does not shut the supervisor down. */
  close(): Promise<void>;
}

/** In-flight requests (a waited start can take minutes) get this long after close() before their sockets are cut. */
const CLOSE_GRACE_MS = 2000;

// Serves the API, events, metrics and dashboard for a supervisor; writes <stateDir>/server.json for `warden status`.
export async function startControlServer(supervisor: Supervisor, options: ControlServerOptions): Promise<ControlServer> {
  if (!isLoopbackHost(options.host)) {
    throw new WardenError('SERVER_NOT_LOOPBACK', `Refusing to serve the control API on "${options.host}": only loopback addresses (127.0.0.1, ::1, localhost) are allowed.`);
  }
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new WardenError('SERVER_BAD_PORT', `The control API port must be an integer from 0 to 65535 (got ${String(options.port)}).`);
  }
  const token = await loadOrCreateToken(options.stateDir);
  const dashboardDir = resolveDashboardDir();
  const hub = createEventHub(supervisor, {
    ...(options.heartbeatMs !== undefined && { heartbeatMs: options.heartbeatMs }),
    ...(options.replayLimit !== undefined && { replayLimit: options.replayLimit }),
    ...(options.sampleReplayLimit !== undefined && { sampleReplayLimit: options.sampleReplayLimit }),
    ...(options.maxEventStreams !== undefined && { maxClients: options.maxEventStreams }),
  });
  const metrics = createMetrics(supervisor, options.defaultMetrics === undefined ? {} : { defaultMetrics: options.defaultMetrics });

  let shutdownRequested = false;
  const context: RouteContext = {
    supervisor,
    token,
    hub,
    logFollowers: createLogFollowers(),
    metrics,
    dashboardDir,
    authorities: new Set(),
    shutDown: () => shutdownRequested || hub.completed,
    requestShutdown: () => {
      if (shutdownRequested) return;
      shutdownRequested = true;
      setImmediate(() => {
        void supervisor
          .shutdown()
          .then((report) => options.onShutdown?.(report))
          .catch((error: unknown) => process.stderr.write(`warden: shutdown requested over the API failed: ${(error as Error).message}\n`));
      });
    },
  };
  const server = createServer(createRequestHandler(context));

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    hub.close();
    metrics.close();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new WardenError('SERVER_PORT_IN_USE', `Cannot serve the control API on ${options.host}:${options.port}: the port is in use (another \`warden run\`?). Choose another server.port.`, { cause: error });
    }
    throw new WardenError('SERVER_LISTEN_FAILED', `Cannot serve the control API on ${options.host}:${options.port}: ${(error as Error).message}`, { cause: error });
  }

  const address = server.address() as AddressInfo;
  context.authorities = allowedAuthorities(address.address, address.port);
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  await writeServerFile(options.stateDir, url);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      hub.close();
      context.logFollowers.close();
      metrics.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
      cut.unref();
      await closed;
      clearTimeout(cut);
      await removeServerFile(options.stateDir, url);
    })();
    return closing;
  };

  return { url, token, close };
}
