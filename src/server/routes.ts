// The request pipeline: Host/Origin checks, the token on /api, then one handler per route; every failure is JSON.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Supervisor } from '../runtime/supervisor.js';
import { readJsonObject } from './body.js';
import { INSTANCE_ACTIONS, commandOptions, runInstanceCommand } from './commands.js';
import type { InstanceAction } from './commands.js';
import { isDashboardPath, serveDashboardFile } from './dashboard.js';
import type { EventHub } from './events.js';
import { serveLogs } from './log-stream.js';
import type { LogFollowers } from './log-stream.js';
import { isAllowedHostHeader, isAllowedOrigin, isLoopbackHost } from './loopback.js';
import type { WardenMetrics } from './metrics.js';
import { HttpError, sendError, sendJson } from './respond.js';
import { presentedToken, tokenMatches } from './token.js';

/** What the handlers share. `authorities` is filled in once the port is known. */
export interface RouteContext {
  supervisor: Supervisor;
  token: string;
  hub: EventHub;
  /** The open log-follow streams, ended by the server's close(). */
  logFollowers: LogFollowers;
  metrics: WardenMetrics;
  dashboardDir: string;
  authorities: ReadonlySet<string>;
  /** True once a shutdown was requested here or the supervisor's events completed. */
  shutDown(): boolean;
  /** Starts the supervisor's shutdown in the background. */
  requestShutdown(): void;
}

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL, params: string[]) => Promise<void> | void;

/** A path and its handlers. Everything under /api needs the token (checked before routing); nothing else does. */
interface Route {
  pattern: RegExp;
  methods: Partial<Record<'GET' | 'POST', Handler>>;
  /** HEAD is answered wherever GET is, except on streams. */
  noHead?: boolean;
}

const INSTANCE_ROUTE = new RegExp(`^/api/instances/([^/]+)/(${INSTANCE_ACTIONS.join('|')})$`);
const LOGS_ROUTE = /^\/api\/instances\/([^/]+)\/logs$/;

// The instance id of a path segment, URL-decoded.
function instanceIdOf(rawId: string): string {
  try {
    return decodeURIComponent(rawId);
  } catch {
    throw new HttpError(400, 'BAD_REQUEST', `The instance id in the path is not valid URL encoding ("${rawId}").`);
  }
}

// Parses `Last-Event-ID` (header, set by EventSource on reconnect) or `?lastEventId=` (first connect; 0 replays all).
function lastEventId(req: IncomingMessage, url: URL): number | undefined {
  const raw = req.headers['last-event-id'] ?? url.searchParams.get('lastEventId') ?? undefined;
  if (raw === undefined || raw === '') return undefined;
  const value = Number(Array.isArray(raw) ? raw[0] : raw);
  if (!Number.isSafeInteger(value) || value < 0) throw new HttpError(400, 'BAD_REQUEST', `lastEventId must be a whole number ≥ 0 (got "${String(raw)}").`);
  return value;
}

// Rejects any body on routes that take none (an empty body or `{}` is fine).
async function noBody(req: IncomingMessage): Promise<void> {
  const body = await readJsonObject(req);
  const keys = Object.keys(body);
  if (keys.length > 0) throw new HttpError(400, 'MALFORMED_BODY', `This route takes no fields (got "${keys.join('", "')}").`);
}

// Builds the routes over a context.
function routesOf(ctx: RouteContext): Route[] {
  const { supervisor } = ctx;
  return [
    { pattern: /^\/api\/status$/, methods: { GET: (_req, res) => sendJson(res, 200, supervisor.status()) } },
    { pattern: /^\/api\/config$/, methods: { GET: (_req, res) => sendJson(res, 200, publicConfig(supervisor)) } },
    {
      pattern: /^\/api\/events$/,
     
      noHead: true,
      methods: { GET: (req, res, url) => ctx.hub.attach(req, res, lastEventId(req, url)) },
    },
    {
      pattern: LOGS_ROUTE,
      // `?follow=1` is a stream.
      noHead: true,
      methods: { GET: (req, res, url, [rawId = '']) => serveLogs(supervisor, req, res, url, instanceIdOf(rawId), ctx.logFollowers) },
    },
    {
      pattern: INSTANCE_ROUTE,
     
      methods: {
        POST: async (req, res, url, [rawId = '', action = '']) => {
          let id: string;
          try {
            id = decodeURIComponent(rawId);
          } catch {
            throw new HttpError(400, 'BAD_REQUEST', `The instance id in the path is not valid URL encoding ("${rawId}").`);
          }
          const body = await readJsonObject(req);
          const options = commandOptions(action as InstanceAction, url.searchParams, body);
          // A client that hangs up mid-wait releases what the wait holds (see runInstanceCommand).
          const hangUp = new AbortController();
          res.once('close', () => hangUp.abort());
          const reply = await runInstanceCommand(supervisor, id, action as InstanceAction, { ...options, signal: hangUp.signal }, ctx.shutDown());
          sendJson(res, reply.status, reply.body);
        },
      },
    },
    {
      pattern: /^\/api\/reset$/,
     
      methods: {
        POST: async (req, res) => {
          await noBody(req);
          supervisor.reset();
          sendJson(res, 200, supervisor.status());
        },
      },
    },
    {
      pattern: /^\/api\/shutdown$/,
     
      methods: {
        POST: async (req, res) => {
          await noBody(req);
          sendJson(res, 202, { accepted: true, action: 'shutdown' });
          ctx.requestShutdown();
        },
      },
    },
    {
      pattern: /^\/metrics$/,
     
      methods: {
        GET: async (_req, res) => {
          const text = await ctx.metrics.render();
          res.writeHead(200, { 'content-type': ctx.metrics.contentType, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
          res.end(text);
        },
      },
    },
  ];
}

// What `GET /api/config` shows: instance ids and the watchdog thresholds; never commands, arguments, env or paths.
export function publicConfig(supervisor: Supervisor): Record<string, unknown> {
  const { config } = supervisor;
  return {
    instances: config.instances.map((instance) => ({
      id: instance.id,
      profile: instance.profile,
      port: instance.port,
      // Names only: a launch profile's args and env stay private like the configured ones.
      launchProfiles: Object.keys(instance.launchProfiles),
      startupTimeoutMs: instance.startupTimeoutMs,
      stopGraceMs: instance.stopGraceMs,
      restart: instance.restart,
    })),
    watchdog: config.watchdog,
  };
}

// Builds the node:http request listener.
export function createRequestHandler(ctx: RouteContext): (req: IncomingMessage, res: ServerResponse) => void {
  const routes = routesOf(ctx);
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Only this machine, addressed by a loopback name: a page on evil.example rebound to 127.0.0.1 is refused here.
    if (!isAllowedHostHeader(req.headers.host, ctx.authorities)) {
      throw new HttpError(403, 'FORBIDDEN_HOST', `Host "${req.headers.host ?? ''}" is not this server's loopback address; use ${[...ctx.authorities][0] ?? '127.0.0.1'}.`);
    }
    if (!isLoopbackHost(req.socket.remoteAddress ?? '')) throw new HttpError(403, 'FORBIDDEN_CLIENT', 'Only clients on this machine may connect.');
    if (!isAllowedOrigin(req.headers.origin, ctx.authorities)) {
      throw new HttpError(403, 'FORBIDDEN_ORIGIN', `Origin "${req.headers.origin ?? ''}" may not use this server (no cross-origin access).`);
    }
    const target = req.url ?? '';
    if (!target.startsWith('/') || target.startsWith('//')) throw new HttpError(400, 'BAD_REQUEST', 'The request target must be a path.');
    const url = new URL(`http://warden${target}`);
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? '');
    const isApi = url.pathname === '/api' || url.pathname.startsWith('/api/');
    if (isApi) {
      // Before routing, so a caller without the token learns nothing about which routes or instances exist.
      // EventSource cannot send headers: the streams (events, a log follow) may carry the token in the query.
      const allowQuery = (url.pathname === '/api/events' || LOGS_ROUTE.test(url.pathname)) && method === 'GET';
      if (!tokenMatches(ctx.token, presentedToken(req.headers.authorization, url.searchParams, allowQuery))) {
        throw new HttpError(401, 'UNAUTHORIZED', `Missing or wrong token: send "Authorization: Bearer <token>" (the token is in the state directory's "token" file)${allowQuery ? ' or ?token=' : ''}.`, {}, { 'www-authenticate': 'Bearer realm="warden"' });
      }
    }
    if (!isApi && isDashboardPath(url.pathname)) {
      if (method !== 'GET') throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${url.pathname}; use GET.`, {}, { allow: 'GET, HEAD' });
      return serveDashboardFile(ctx.dashboardDir, url.pathname, res);
    }
    for (const route of routes) {
      const match = route.pattern.exec(url.pathname);
      if (match === null) continue;
      const handler = route.methods[method as 'GET' | 'POST'];
      const allowed = Object.keys(route.methods).flatMap((name) => (name === 'GET' && route.noHead !== true ? ['GET', 'HEAD'] : [name]));
      if (handler === undefined || (req.method === 'HEAD' && !allowed.includes('HEAD'))) {
        throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${url.pathname}; use ${allowed.join(' or ')}.`, {}, { allow: allowed.join(', ') });
      }
      return handler(req, res, url, match.slice(1));
    }
    throw new HttpError(404, 'NOT_FOUND', `No route ${req.method} ${url.pathname}.`);
  };
  return (req, res) => {
    handle(req, res).catch((error: unknown) => {
      // Drain what the client still sends, so the error reply is not cut off by a reset.
      req.resume();
      sendError(res, error);
    });
  };
}
