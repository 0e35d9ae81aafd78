// Bounded memory in the control server: SSE streams are capped (one more gets 503 + Retry-After, and capacity comes
// back when a stream closes); per-second samples are replayed from their own small buffer and never push the
// launch and the transitions out of the replay.
import { request } from 'node:http';
import type { ClientRequest } from 'node:http';
import { afterEach, describe, expect, test } from 'vitest';
import type { Supervisor } from '../../src/index.js';
import { pendingWaits } from '../../src/server/commands.js';
import { startControlServer } from '../../src/server/index.js';
import type { ControlServer, ControlServerOptions } from '../../src/server/index.js';
import { waitFor } from '../support/processes.js';
import { cleanupRuntime, fakeInstance, makeSupervisor } from '../support/runtime.js';

let server: ControlServer | undefined;
const streams: ClientRequest[] = [];

afterEach(async () => {
  for (const stream of streams.splice(0)) stream.destroy();
  await server?.close();
  server = undefined;
  await cleanupRuntime();
});

async function setup(options: Partial<ControlServerOptions>, sampleIntervalMs = 200, args: string[] = []): Promise<{ supervisor: Supervisor; id: string; url: string; token: string }> {
  const instance = await fakeInstance({ args: ['--workers', '1', ...args] });
  const supervisor = makeSupervisor([instance], { watchdog: { sampleIntervalMs, warning: { python: 8, shell: 8 }, critical: { python: 16, shell: 16 } } });
  server = await startControlServer(supervisor, { host: '127.0.0.1', port: 0, stateDir: supervisor.config.stateDir, ...options });
  return { supervisor, id: instance.id, url: server.url, token: server.token };
}

// Opens GET /api/events; resolves with the status, headers and everything read until `until` holds (or the end).
function openStream(url: string, until: (text: string) => boolean = () => true): Promise<{ status: number; retryAfter: string | undefined; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      const done = (): void => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], text });
      res.on('data', (chunk: string) => {
        text += chunk;
        if (until(text)) done();
      });
      res.on('end', done);
    });
    streams.push(req);
    req.on('error', reject);
    req.end();
  });
}

const eventsOf = (text: string): string[] => [...text.matchAll(/^event: (.+)$/gm)].map((match) => match[1] as string);

describe('control server limits', () => {
  test('SSE streams beyond maxEventStreams get 503 with Retry-After; closing one makes room again', async () => {
    const { url, token } = await setup({ maxEventStreams: 2 });
    const events = `${url}/api/events?token=${token}`;
    const hasStatus = (text: string): boolean => text.includes('event: status');
    expect((await openStream(events, hasStatus)).status).toBe(200);
    expect((await openStream(events, hasStatus)).status).toBe(200);
    const refused = await openStream(events);
    expect(refused.status).toBe(503);
    expect(refused.retryAfter).toBe('5');
    expect(JSON.parse(refused.text)).toEqual({ error: { code: 'TOO_MANY_STREAMS', message: '2 event streams are open (the limit is 2); close one or retry later.' } });
    // One client goes away: its slot is released, and a new stream is served.
    streams[0]?.destroy();
    await waitFor(async () => (await openStream(events, hasStatus)).status === 200, 5000, 'a slot to free up');
  });

  test('a replay after many samples still holds the launch and every transition, and only the last few samples', async () => {
    const { supervisor, id, url, token } = await setup({ replayLimit: 50, sampleReplayLimit: 5 }, 50);
    let samples = 0;
    supervisor.events$.subscribe((event) => {
      if (event.type === 'sample') samples += 1;
    });
    await supervisor.start(id);
    // Far more samples than the whole replay buffer holds.
    await waitFor(() => samples >= 80, 20_000, '80 samples');
    const replay = await openStream(`${url}/api/events?token=${token}&lastEventId=0`, (text) => text.split('event: sample').length - 1 >= 5);
    const names = eventsOf(replay.text);
    expect(names).toContain('launch');
    expect(replay.text).toMatch(/"to":"running"/);
    expect(names.filter((name) => name === 'sample').length).toBeLessThanOrEqual(5 + 2);
    // Replayed in the order they happened (ids ascending), samples and the rest interleaved.
    const ids = [...replay.text.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
  });

  test('a ?wait=1 start whose client hangs up stops waiting at once; the start itself goes on to running', async () => {
    const { supervisor, id, url, token } = await setup({}, 200, ['--startup-delay', '3']);
    expect(pendingWaits()).toBe(0);
    const req = request(`${url}/api/instances/${id}/start?wait=1`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    req.on('error', () => undefined);
    req.end();
    await waitFor(() => pendingWaits() === 1, 5000, 'the waited start to begin');
    req.destroy();
    // Released with the connection, long before the 3 s startup delay is over.
    await waitFor(() => pendingWaits() === 0, 1000, 'the wait to be released');
    expect(supervisor.status().instances[0]?.state).not.toBe('running');
    await waitFor(() => supervisor.status().instances[0]?.state === 'running', 15_000, 'the start to finish anyway');
  });
});
