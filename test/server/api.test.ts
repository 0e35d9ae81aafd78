// The control API against a real supervisor running the fake WebUI: auth, Host checks, bad input, SSE, metrics.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { ShutdownReport, Supervisor } from '../../src/index.js';
import { startControlServer } from '../../src/server/index.js';
import type { ControlServer, ControlServerOptions } from '../../src/server/index.js';
import { waitFor } from '../support/processes.js';
import { cleanupRuntime, fakeInstance, makeSupervisor } from '../support/runtime.js';
import { sseFrames } from '../support/sse.js';
import type { FakeInstanceOptions } from '../support/runtime.js';

// ── Harness: each test owns its supervisor (test/support/runtime.ts shuts it down and kills leftovers), server, processes

interface Setup {
  supervisor: Supervisor;
  server: ControlServer;
  id: string;
  stateDir: string;
  webuiPort: number;
  base: string;
}

let supervisor: Supervisor | undefined;
let server: ControlServer | undefined;
const blockers: Server[] = [];

afterEach(async () => {
  await server?.close();
  server = undefined;
  supervisor = undefined;
  for (const blocker of blockers.splice(0)) blocker.close();
  await cleanupRuntime();
});

// A supervisor of one fake WebUI (1 worker) on a free port, and a control server on port 0.
async function setup(serverOptions: Partial<ControlServerOptions> = {}, instanceOptions: FakeInstanceOptions = {}): Promise<Setup> {
  const instance = await fakeInstance({ ...instanceOptions, args: ['--workers', '1', ...(instanceOptions.args ?? [])] });
  // Thresholds above what one fake WebUI reaches, so no watchdog alert interrupts a test.
  supervisor = makeSupervisor([instance], { watchdog: { warning: { python: 8, shell: 8 }, critical: { python: 16, shell: 16 } } });
  const stateDir = supervisor.config.stateDir;
  server = await startControlServer(supervisor, { host: '127.0.0.1', port: 0, stateDir, ...serverOptions });
  return { supervisor, server, id: instance.id, stateDir, webuiPort: instance.port, base: server.url };
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
}

// A request through node:http, so tests can set any Host header.
function call(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const auth = (token: string, extra: Record<string, string> = {}): Record<string, string> => ({ authorization: `Bearer ${token}`, ...extra });

interface SseEvent {
  id: string | undefined;
  event: string;
  data: any;
}

// Reads an SSE stream with node:http and parses frames as they arrive.
function openEvents(url: string, headers: Record<string, string> = {}) {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let status = 0;
  let ended = false;
  const feed = sseFrames(({ fields, comments: frameComments }) => {
    comments.push(...frameComments);
    if (fields.data !== undefined) events.push({ id: fields.id, event: fields.event ?? 'message', data: JSON.parse(fields.data) });
  });
  const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
    status = res.statusCode ?? 0;
    res.setEncoding('utf8');
    res.on('data', feed);
    res.on('end', () => {
      ended = true;
    });
  });
  req.on('error', () => {
    ended = true;
  });
  req.end();
  return {
    events,
    comments,
    status: () => status,
    ended: () => ended,
    close: () => req.destroy(),
  };
}

const transitionsOf = (events: SseEvent[], id: string): string[] =>
  events.filter((entry) => entry.event === 'transition' && entry.data.instance === id && entry.data.from !== entry.data.to).map((entry) => entry.data.to);

// ── Tests ──────────────────────────────────────────────────────────────────────────────────────────────────────

describe('control API', () => {
  test('the token is made once (0600) and reused, and server.json names the running server', async () => {
    const { stateDir, server: first } = await setup();
    const tokenFile = join(stateDir, 'token');
    expect(first.token).toMatch(/^[0-9a-f]{64}$/);
    expect(readFileSync(tokenFile, 'utf8').trim()).toBe(first.token);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(stateDir, 'server.json'), 'utf8'))).toEqual({ url: first.url, pid: process.pid });
    expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    await first.close();
    expect(existsSync(join(stateDir, 'server.json'))).toBe(false);
    server = await startControlServer(supervisor as Supervisor, { host: '127.0.0.1', port: 0, stateDir });
    expect(server.token).toBe(first.token);
  });

  test('refuses to listen anywhere but loopback', async () => {
    const { stateDir } = await setup();
    for (const host of ['0.0.0.0', '::', '192.168.1.10']) {
      await expect(startControlServer(supervisor as Supervisor, { host, port: 0, stateDir })).rejects.toMatchObject({ code: 'SERVER_NOT_LOOPBACK' });
    }
  });

  test('every /api route answers 401 without the right token and reveals nothing else', async () => {
    const { base, id, server: { token } } = await setup();
    const none = await call(`${base}/api/status`);
    expect(none.status).toBe(401);
    expect(none.json.error.code).toBe('UNAUTHORIZED');
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect((await call(`${base}/api/status`, { headers: auth('0'.repeat(64)) })).status).toBe(401);
    expect((await call(`${base}/api/status`, { headers: auth(`${token}x`) })).status).toBe(401);
    // ?token= is only for EventSource's GET /api/events.
    expect((await call(`${base}/api/status?token=${token}`)).status).toBe(401);
    // A caller without the token cannot probe routes or instance ids.
    expect((await call(`${base}/api/instances/no-such/start`, { method: 'POST' })).status).toBe(401);
    expect((await call(`${base}/api/instances/${id}/start`, { method: 'POST' })).status).toBe(401);
    expect((await call(`${base}/api/nope`)).status).toBe(401);
    expect((await call(`${base}/api/events`)).status).toBe(401);
    expect((await call(`${base}/api/config`)).status).toBe(401);
    expect((await call(`${base}/api/shutdown`, { method: 'POST' })).status).toBe(401);

    const ok = await call(`${base}/api/status`, { headers: auth(token) });
    expect(ok.status).toBe(200);
    expect(ok.json.instances.map((entry: { id: string }) => entry.id)).toEqual([id]);
    const config = await call(`${base}/api/config`, { headers: auth(token) });
    expect(config.json.watchdog.warning).toEqual({ python: 8, shell: 8 });
    expect(config.json.instances[0].id).toBe(id);
    // Never commands, arguments, env values or paths.
    expect(config.text).not.toContain('FAKE_WEBUI_STATE_DIR');
    expect(config.text).not.toContain('webui.sh');
  });

  test('a foreign Host or Origin is refused (DNS rebinding), and no answer carries CORS headers', async () => {
    const { base, server: { token } } = await setup();
    const port = new URL(base).port;
    for (const host of ['evil.example', `evil.example:${port}`, `127.0.0.1:${Number(port) + 1}`, '127.0.0.1', `192.168.1.10:${port}`]) {
      for (const path of ['/api/status', '/', '/app.js', '/metrics']) {
        const reply = await call(`${base}${path}`, { headers: auth(token, { host }) });
        expect(reply.status, `${host} ${path}`).toBe(403);
        expect(reply.json.error.code).toBe('FORBIDDEN_HOST');
      }
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`]) {
      expect((await call(`${base}/api/status`, { headers: auth(token, { host }) })).status, host).toBe(200);
    }
    const crossSite = await call(`${base}/api/shutdown`, { method: 'POST', headers: auth(token, { origin: 'http://evil.example' }) });
    expect(crossSite.status).toBe(403);
    expect(crossSite.json.error.code).toBe('FORBIDDEN_ORIGIN');
    expect((await call(`${base}/api/status`, { headers: auth(token, { origin: `http://localhost:${port}` }) })).status).toBe(200);

    const preflight = await call(`${base}/api/status`, { method: 'OPTIONS', headers: auth(token, { origin: `http://localhost:${port}`, 'access-control-request-method': 'POST' }) });
    expect(preflight.status).toBe(405);
    for (const reply of [preflight, await call(`${base}/api/status`, { headers: auth(token) }), await call(`${base}/`), await call(`${base}/metrics`)]) {
      expect(Object.keys(reply.headers).filter((name) => name.startsWith('access-control-'))).toEqual([]);
    }
  });

  test('bad input gets a JSON 4xx naming the problem, never a crash', async () => {
    const { base, id, server: { token } } = await setup();
    const post = (path: string, body?: string, headers: Record<string, string> = {}) =>
      call(`${base}${path}`, { method: 'POST', headers: auth(token, body === undefined ? headers : { 'content-type': 'application/json', ...headers }), ...(body !== undefined && { body }) });

    const unknown = await post('/api/instances/no-such-instance/start');
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toMatchObject({ code: 'UNKNOWN_INSTANCE', instanceId: 'no-such-instance' });
    expect(unknown.json.error.message).toContain(id);
    expect((await post('/api/instances/no-such-instance/stop?wait=1')).status).toBe(404);
    expect((await post(`/api/instances/${id}/explode`)).json.error.code).toBe('NOT_FOUND');
    expect((await call(`${base}/api/nothing-here`, { headers: auth(token) })).status).toBe(404);
    expect((await call(`${base}/no-such-page`)).status).toBe(404);

    const wrongMethod = await call(`${base}/api/instances/${id}/start`, { headers: auth(token) });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('POST');
    expect((await call(`${base}/api/status`, { method: 'DELETE', headers: auth(token) })).status).toBe(405);
    expect((await call(`${base}/`, { method: 'POST' })).status).toBe(405);
    expect((await call(`${base}/api/status`, { method: 'HEAD', headers: auth(token) })).status).toBe(200);
    expect((await call(`${base}/api/events`, { method: 'HEAD', headers: auth(token) })).status).toBe(405);

    const malformed = await post(`/api/instances/${id}/start`, '{"wait": tru');
    expect(malformed.status).toBe(400);
    expect(malformed.json.error.code).toBe('MALFORMED_BODY');
    expect((await post(`/api/instances/${id}/start`, '[1,2]')).json.error.code).toBe('MALFORMED_BODY');
    expect((await post(`/api/instances/${id}/start`, '{"force": true}')).json.error.message).toContain('"force"');
    expect((await post(`/api/instances/${id}/start`, '{"wait": "yes"}')).status).toBe(400);
    expect((await post(`/api/instances/${id}/stop`, '{"timeoutMs": -5}')).status).toBe(400);
    expect((await post('/api/shutdown', '{"now": true}')).status).toBe(400);
    expect((await post(`/api/instances/${id}/start`, 'wait=1', { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(415);
    expect((await post(`/api/instances/${id}/start?wait=maybe`)).status).toBe(400);
    expect((await post('/api/instances/%E0%A4%A/start')).status).toBe(400);
    expect((await post(`/api/instances/${id}/start`, 'x'.repeat(64 * 1024))).status).toBe(413);
    expect((await call(`${base}/api/events?lastEventId=-1`, { headers: auth(token) })).status).toBe(400);

    // Nothing was started by any of that, and the server still answers.
    const status = await call(`${base}/api/status`, { headers: auth(token) });
    expect(status.status).toBe(200);
    expect(status.json.instances[0].state).toBe('idle');
  });

  test('commands answer 202 at once, or with the result under ?wait=1', async () => {
    const { base, id, server: { token } } = await setup();
    const started = await call(`${base}/api/instances/${id}/start?wait=1`, { method: 'POST', headers: auth(token) });
    expect(started.status).toBe(200);
    expect(started.json.instance).toMatchObject({ id, state: 'running' });
    expect(started.json.instance.shellPid).toBeGreaterThan(0);

    const stopped = await call(`${base}/api/instances/${id}/stop`, {
      method: 'POST',
      headers: auth(token, { 'content-type': 'application/json' }),
      body: JSON.stringify({ wait: true, timeoutMs: 20_000 }),
    });
    expect(stopped.status).toBe(200);
    expect(stopped.json.instance.state).toBe('idle');
    expect(stopped.json.report.survivors).toEqual([]);
    expect(stopped.json.report.killed.map((entry: { role: string }) => entry.role)).toEqual(expect.arrayContaining(['shell', 'python']));

    const accepted = await call(`${base}/api/instances/${id}/start`, { method: 'POST', headers: auth(token) });
    expect(accepted.status).toBe(202);
    expect(accepted.json).toEqual({ accepted: true, instance: id, action: 'start' });
    await waitFor(async () => (await call(`${base}/api/status`, { headers: auth(token) })).json.instances[0].state === 'running', 15_000, 'the accepted start');

    const reset = await call(`${base}/api/instances/${id}/reset`, { method: 'POST', headers: auth(token) });
    expect(reset.status).toBe(200);
    expect(reset.json.instance.state).toBe('running');
  });

  test('a crashed instance is relaunched at once by start or restart, skipping its backoff', async () => {
    // Crashes 1.5 s after each launch; the 60 s backoff would keep it down for the rest of the test.
    const { base, id, server: { token } } = await setup({}, { args: ['--crash-after', '1.5'], restart: { baseDelayMs: 60_000, maxDelayMs: 60_000 } });
    const state = async (): Promise<string> => (await call(`${base}/api/status`, { headers: auth(token) })).json.instances[0].state;
    expect((await call(`${base}/api/instances/${id}/start?wait=1`, { method: 'POST', headers: auth(token) })).status).toBe(200);
    await waitFor(async () => (await state()) === 'crashed', 10_000, 'the crash');

    const restarted = await call(`${base}/api/instances/${id}/restart?wait=1`, { method: 'POST', headers: auth(token) });
    expect(restarted.status).toBe(200);
    expect(restarted.json.instance.state).toBe('running');
    await waitFor(async () => (await state()) === 'crashed', 10_000, 'the second crash');
    const started = await call(`${base}/api/instances/${id}/start?wait=1`, { method: 'POST', headers: auth(token) });
    expect(started.status).toBe(200);
    expect(started.json.instance.state).toBe('running');
  });

  test('a start refused because the port already answers is a 409 PORT_IN_USE', async () => {
    const { base, id, webuiPort, server: { token } } = await setup();
    const blocker = createServer((socket) => {
      socket.on('error', () => undefined); // probes may reset the connection
      socket.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
    });
    blockers.push(blocker);
    await new Promise<void>((resolve) => blocker.listen(webuiPort, '127.0.0.1', resolve));
    const refused = await call(`${base}/api/instances/${id}/start?wait=1`, { method: 'POST', headers: auth(token) });
    expect(refused.status).toBe(409);
    expect(refused.json.error).toMatchObject({ code: 'PORT_IN_USE', port: webuiPort, instanceId: id });
  });

  test('SSE delivers the restart as stopping → spawning → running, with replay and heartbeats', async () => {
    const { base, id, server: { token } } = await setup({ heartbeatMs: 300 });
    expect((await call(`${base}/api/instances/${id}/start?wait=1`, { method: 'POST', headers: auth(token) })).status).toBe(200);

    const stream = openEvents(`${base}/api/events?token=${token}`);
    try {
      await waitFor(() => stream.events.some((entry) => entry.event === 'status'), 5000, 'the status snapshot');
      expect(stream.status()).toBe(200);
      expect(stream.events[0]).toMatchObject({ event: 'status', id: undefined });
      expect(stream.events[0]?.data.instances[0]).toMatchObject({ id, state: 'running' });

      const restart = await call(`${base}/api/instances/${id}/restart`, { method: 'POST', headers: auth(token) });
      expect(restart.status).toBe(202);
      await waitFor(() => transitionsOf(stream.events, id).includes('running'), 15_000, 'running again');
      expect(transitionsOf(stream.events, id)).toEqual(['stopping', 'spawning', 'running']);
      const termination = stream.events.find((entry) => entry.event === 'termination');
      expect(termination?.data).toMatchObject({ type: 'termination', instance: id, reason: 'restart', report: { survivors: [] } });
      await waitFor(() => stream.events.some((entry) => entry.event === 'sample'), 5000, 'a sample');
      await waitFor(() => stream.comments.some((line) => line.startsWith(': heartbeat')), 5000, 'a heartbeat');
      // Every event carries an increasing id (for Last-Event-ID).
      const ids = stream.events.filter((entry) => entry.id !== undefined).map((entry) => Number(entry.id));
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
    } finally {
      stream.close();
    }

    // lastEventId=0 replays the buffered history, including the first start; the header form resumes after an id.
    const replay = openEvents(`${base}/api/events?token=${token}&lastEventId=0`);
    try {
      await waitFor(() => transitionsOf(replay.events, id).length >= 5, 5000, 'the replay');
      expect(transitionsOf(replay.events, id).slice(0, 5)).toEqual(['spawning', 'running', 'stopping', 'spawning', 'running']);
    } finally {
      replay.close();
    }
    const resumed = openEvents(`${base}/api/events`, { authorization: `Bearer ${token}`, 'last-event-id': '1000000' });
    try {
      await waitFor(() => resumed.events.length >= 1, 5000, 'the status snapshot');
      expect(transitionsOf(resumed.events, id)).toEqual([]);
    } finally {
      resumed.close();
    }
  });

  test('/metrics shows the incident report metrics with live values, without the token', async () => {
    const { base, id, server: { token } } = await setup({ defaultMetrics: true });
    await call(`${base}/api/instances/${id}/start?wait=1`, { method: 'POST', headers: auth(token) });
    await waitFor(() => (supervisor?.status().instances[0]?.counts.python ?? 0) >= 2, 10_000, 'launch.py and its worker counted');

    const scrape = await call(`${base}/metrics`);
    expect(scrape.status).toBe(200);
    expect(scrape.headers['content-type']).toContain('text/plain');
    const value = (text: string, series: string): number => {
      const line = text.split('\n').find((entry) => entry.startsWith(`${series} `));
      if (line === undefined) throw new Error(`no series ${series} in\n${text}`);
      return Number(line.slice(series.length + 1));
    };
    const text = scrape.text;
    expect(text).toContain('# TYPE stablenew_processes_python_count gauge');
    expect(text).toContain('# TYPE stablenew_processes_webui_restarts_total counter');
    expect(value(text, 'stablenew_processes_python_count')).toBeGreaterThanOrEqual(2);
    expect(value(text, 'stablenew_processes_cmd_count')).toBeGreaterThanOrEqual(1);
    expect(value(text, `stablenew_processes_webui_restarts_total{instance="${id}"}`)).toBe(0);
    expect(value(text, 'stablenew_processes_orphaned_detected_total')).toBe(0);
    expect(value(text, `warden_instance_state{instance="${id}",state="running"}`)).toBe(1);
    expect(value(text, `warden_instance_state{instance="${id}",state="idle"}`)).toBe(0);
    expect(value(text, `warden_instance_python_count{instance="${id}"}`)).toBeGreaterThanOrEqual(2);
    expect(value(text, `warden_instance_shell_count{instance="${id}"}`)).toBeGreaterThanOrEqual(1);
    expect(value(text, 'warden_watchdog_level')).toBe(0);
    expect(text).toContain('warden_process_cpu_user_seconds_total');

    await call(`${base}/api/instances/${id}/restart?wait=1`, { method: 'POST', headers: auth(token) });
    const after = (await call(`${base}/metrics`)).text;
    expect(value(after, `stablenew_processes_webui_restarts_total{instance="${id}"}`)).toBe(1);
  });

  test('POST /api/shutdown answers 202, stops every instance and ends the event stream cleanly', async () => {
    let finished: ShutdownReport | undefined;
    const { base, id, server: { token } } = await setup({ onShutdown: (report) => (finished = report) });
    await call(`${base}/api/instances/${id}/start?wait=1`, { method: 'POST', headers: auth(token) });
    const stream = openEvents(`${base}/api/events?token=${token}`);
    try {
      await waitFor(() => stream.events.length >= 1, 5000, 'the stream');
      const accepted = await call(`${base}/api/shutdown`, { method: 'POST', headers: auth(token) });
      expect(accepted.status).toBe(202);
      await waitFor(() => stream.ended(), 20_000, 'the stream to end');
      expect(stream.events.at(-1)?.event).toBe('shutdown');
      expect(transitionsOf(stream.events, id)).toEqual(['stopping', 'idle']);
      await waitFor(() => finished !== undefined, 5000, 'onShutdown');
      expect(finished).toMatchObject({ ok: true, survivors: [] });
    } finally {
      stream.close();
    }
    expect((await call(`${base}/api/events?token=${token}`)).status).toBe(204);
    const late = await call(`${base}/api/instances/${id}/start`, { method: 'POST', headers: auth(token) });
    expect(late.status).toBe(409);
    expect(late.json.error.code).toBe('SHUT_DOWN');
    expect((await call(`${base}/api/status`, { headers: auth(token) })).json.instances[0].state).toBe('idle');
  });
});
