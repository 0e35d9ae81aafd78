// The logs routes and the start/restart bodies over real HTTP, against a real supervisor running the fake WebUI.
import { request } from 'node:http';
import { afterEach, describe, expect, test } from 'vitest';
import type { Supervisor } from '../../src/index.js';
import { startControlServer } from '../../src/server/index.js';
import { MAX_LOG_FOLLOWERS } from '../../src/server/log-stream.js';
import type { ControlServer } from '../../src/server/index.js';
import { cleanupRuntime, fakeInstance, makeSupervisor } from '../support/runtime.js';
import { sseFrames } from '../support/sse.js';

let server: ControlServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
  await cleanupRuntime();
});

async function setup(): Promise<{ supervisor: Supervisor; id: string; port: number; base: string; token: string }> {
  const base = await fakeInstance({ args: ['--workers', '1'], health: false });
  const instance = { ...base, args: ['-f', '--workers', '1'], profile: 'a1111', launchProfiles: { two: { args: ['-f', '--workers', '2'] } } };
  const supervisor = makeSupervisor([instance]);
  server = await startControlServer(supervisor, { host: '127.0.0.1', port: 0, stateDir: supervisor.config.stateDir });
  return { supervisor, id: instance.id, port: base.port, base: server.url, token: server.token };
}

async function call(url: string, token: string, options: { method?: string; body?: unknown } = {}): Promise<{ status: number; json: any }> {
  const response = await fetch(url, {
    method: options.method ?? 'GET',
    headers: { authorization: `Bearer ${token}`, ...(options.body !== undefined && { 'content-type': 'application/json' }) },
    ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
  });
  return { status: response.status, json: await response.json() };
}

// Reads `event: line` frames of an SSE stream until `enough` says stop.
function follow(url: string, enough: (lines: any[]) => boolean): Promise<{ type: string | undefined; lines: any[] }> {
  return new Promise((resolve, reject) => {
    const lines: any[] = [];
    const feed = sseFrames(({ fields }) => {
      if (fields.event === 'line' && fields.data !== undefined) lines.push(JSON.parse(fields.data));
    });
    const req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        feed(chunk);
        if (enough(lines)) {
          req.destroy();
          resolve({ type: res.headers['content-type'], lines });
        }
      });
    });
    req.on('error', (error) => (lines.length > 0 ? undefined : reject(error)));
    req.end();
  });
}

describe('logs API', () => {
  test('GET logs answers the tail as { id, lines, file }; bad tail is a 400 naming it; unknown id a 404', async () => {
    const { id, base, token, supervisor } = await setup();
    await call(`${base}/api/instances/${id}/start?wait=1`, token, { method: 'POST' });

    const all = await call(`${base}/api/instances/${id}/logs`, token);
    expect(all.status).toBe(200);
    expect(all.json.id).toBe(id);
    expect(all.json.file).toBe(supervisor.status().instances[0]?.logFile);
    expect(all.json.lines.some((line: any) => line.stream === 'stdout' && line.text.startsWith('Running on local URL'))).toBe(true);
    const two = await call(`${base}/api/instances/${id}/logs?tail=2`, token);
    expect(two.json.lines).toEqual(all.json.lines.slice(-2));

    for (const bad of ['-1', 'ten', '10001']) {
      const reply = await call(`${base}/api/instances/${id}/logs?tail=${bad}`, token);
      expect(reply.status).toBe(400);
      expect(reply.json.error).toMatchObject({ code: 'BAD_REQUEST', parameter: 'tail', value: bad });
      expect(reply.json.error.message).toContain(`tail must be a whole number from 0 to 10000 (got "${bad}")`);
    }
    const unknown = await call(`${base}/api/instances/nope/logs`, token);
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.code).toBe('UNKNOWN_INSTANCE');
    expect((await fetch(`${base}/api/instances/${id}/logs`)).status).toBe(401);
  }, 30_000);

  test('follow=1 streams the tail, then each new line as an SSE "line" event', async () => {
    const { id, base, token } = await setup();
    await call(`${base}/api/instances/${id}/start?wait=1`, token, { method: 'POST' });
    const stream = follow(`${base}/api/instances/${id}/logs?follow=1&tail=1&token=${token}`, (lines) => lines.some((line) => line.text.startsWith('Running on local URL') && lines.indexOf(line) > 0));
    // A restart prints a new "Running on local URL" line after the one-line tail.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await call(`${base}/api/instances/${id}/restart?wait=1`, token, { method: 'POST' });
    const { type, lines } = await stream;
    expect(type).toBe('text/event-stream; charset=utf-8');
    expect(lines[0]).toMatchObject({ stream: expect.stringMatching(/^std(out|err)$/), text: expect.any(String), at: expect.any(String) });
    expect(lines.some((line) => line.text.startsWith('Launching Web UI with arguments'))).toBe(true);
  }, 30_000);

  test('close() ends open follow streams with a shutdown frame at once, not after the 2 s grace', async () => {
    const { id, base, token } = await setup();
    const ended = new Promise<{ body: string; afterClose: number }>((resolve, reject) => {
      let body = '';
      let closedAt = 0;
      const req = request(`${base}/api/instances/${id}/logs?follow=1&token=${token}`, { headers: { accept: 'text/event-stream' } }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
          if (closedAt === 0 && body.includes('retry: 2000')) {
            closedAt = Date.now();
            void server?.close();
          }
        });
        res.on('end', () => resolve({ body, afterClose: Date.now() - closedAt }));
      });
      req.on('error', reject);
      req.end();
    });
    const { body, afterClose } = await ended;
    expect(body).toMatch(/event: shutdown\ndata: \{"type":"shutdown","at":\d+\}\n\n$/);
    // The bound is the feature: without the tracking the stream is cut only by closeAllConnections after 2 s.
    expect(afterClose).toBeLessThan(1900);
    await server?.close();
    expect((await fetch(`${base}/api/status`).catch((error: Error) => error)) instanceof Error).toBe(true);
  }, 30_000);

  test('start and restart take { args } or { launchProfile }; an unknown profile is a 400 listing the known ones', async () => {
    const { id, base, token, port } = await setup();
    const started = await call(`${base}/api/instances/${id}/start?wait=1`, token, { method: 'POST', body: { args: ['-f', '--workers', '3'] } });
    expect(started.status).toBe(200);
    expect(started.json.instance).toMatchObject({ state: 'running', ready: true, profile: 'a1111', port, url: `http://127.0.0.1:${port}` });
    let info = (await (await fetch(`http://127.0.0.1:${port}/fake/info`)).json()) as { argv: string[] };
    expect(info.argv).toEqual(['-f', '--workers', '3', '--port', String(port)]);

    const again = await call(`${base}/api/instances/${id}/start`, token, { method: 'POST', body: { args: ['-f', '--workers', '1'] } });
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe('ALREADY_RUNNING');

    const unknown = await call(`${base}/api/instances/${id}/restart`, token, { method: 'POST', body: { launchProfile: 'three' } });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error).toMatchObject({ code: 'UNKNOWN_LAUNCH_PROFILE', launchProfile: 'three', known: ['two'] });
    expect(unknown.json.error.message).toBe(`Unknown launch profile "three" for "${id}" (known: two).`);
    const both = await call(`${base}/api/instances/${id}/restart`, token, { method: 'POST', body: { args: [], launchProfile: 'two' } });
    expect(both.status).toBe(400);
    const badArgs = await call(`${base}/api/instances/${id}/restart`, token, { method: 'POST', body: { args: '--workers 2' } });
    expect(badArgs.status).toBe(400);
    expect(badArgs.json.error.message).toContain('args must be an array of at most 256 strings');

    const restarted = await call(`${base}/api/instances/${id}/restart`, token, { method: 'POST', body: { launchProfile: 'two', wait: true } });
    expect(restarted.status).toBe(200);
    expect(restarted.json.instance.launchProfile).toBe('two');
    info = (await (await fetch(`http://127.0.0.1:${port}/fake/info`)).json()) as { argv: string[] };
    expect(info.argv).toEqual(['-f', '--workers', '2', '--port', String(port)]);
  }, 40_000);
});

describe('log stream cap', () => {
  test(`follow streams beyond ${MAX_LOG_FOLLOWERS} are refused with 503 and Retry-After; a closed one frees its slot`, async () => {
    const { id, base, token } = await setup();
    const url = `${base}/api/instances/${id}/logs?follow=1&token=${token}`;
    const open: Array<{ destroy: () => void }> = [];
    try {
      for (let index = 0; index < MAX_LOG_FOLLOWERS; index += 1) {
        open.push(await new Promise((resolve, reject) => {
          const req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
            expect(res.statusCode).toBe(200);
            resolve({ destroy: () => req.destroy() });
          });
          req.on('error', reject);
          req.end();
        }));
      }
      const refused = await fetch(url, { headers: { accept: 'text/event-stream' } });
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('5');
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('TOO_MANY_STREAMS');
      open.shift()?.destroy();
      const deadline = Date.now() + 5000;
      let status = 0;
      while (Date.now() < deadline) {
        const controller = new AbortController();
        const again = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
        status = again.status;
        controller.abort();
        if (status === 200) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(status).toBe(200);
    } finally {
      for (const stream of open) stream.destroy();
    }
  });
});
