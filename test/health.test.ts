// The health probe over a bare socket: 2xx is healthy; any other status, garbage, silence, a refused or a closed
// connection is unhealthy with a reason that says which, and the probe never throws.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo, Server as TcpServer, Socket } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { probeHealth } from '../src/health.js';

const servers: Array<Server | TcpServer> = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((server) => new Promise((done) => server.close(done))));
});

async function listen<T extends Server | TcpServer>(server: T): Promise<number> {
  servers.push(server);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return (server.address() as AddressInfo).port;
}

// A TCP server that answers every connection with `reply` (split into the given chunks), or with nothing.
const tcp = (chunks: string[] | null): Promise<number> =>
  listen(
    createTcpServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      if (chunks === null) return;
      socket.once('data', async () => {
        for (const chunk of chunks) {
          socket.write(chunk);
          await new Promise((later) => setTimeout(later, 20));
        }
        socket.end();
      });
    }),
  );

describe('probeHealth', () => {
  test('a 200 is healthy, and the request carries the path, query and Host', async () => {
    const seen: string[] = [];
    const port = await listen(createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.host}`);
      res.end('ok');
    }));
    expect(await probeHealth(`http://127.0.0.1:${port}/internal/ping?x=1`, 1000)).toMatchObject({ ok: true, status: 200 });
    expect(seen).toEqual([`GET /internal/ping?x=1 127.0.0.1:${port}`]);
  });

  test('a 503 is unhealthy and names the status and the url', async () => {
    const port = await listen(createServer((_req, res) => {
      res.statusCode = 503;
      res.end();
    }));
    const url = `http://127.0.0.1:${port}/`;
    expect(await probeHealth(url, 1000)).toMatchObject({ ok: false, status: 503, reason: `HTTP 503 from ${url}` });
  });

  test('a status line split across packets is still read', async () => {
    const port = await tcp(['HTT', 'P/1.1 2', '04 No Content\r\n\r\n']);
    expect(await probeHealth(`http://127.0.0.1:${port}/`, 1000)).toMatchObject({ ok: true, status: 204 });
  });

  test('garbage, silence, a refused and a closed connection are unhealthy with their reason', async () => {
    const garbage = await tcp(['SSH-2.0-OpenSSH\r\n']);
    expect((await probeHealth(`http://127.0.0.1:${garbage}/`, 1000)).reason).toBe(`http://127.0.0.1:${garbage}/: EPROTO`);
    const silent = await tcp(null);
    expect((await probeHealth(`http://127.0.0.1:${silent}/`, 200)).reason).toBe(`no answer from http://127.0.0.1:${silent}/ within 200 ms`);
    const closed = await tcp([]);
    expect((await probeHealth(`http://127.0.0.1:${closed}/`, 1000)).reason).toBe(`http://127.0.0.1:${closed}/: ECONNRESET`);
    const refusedPort = await listen(createTcpServer());
    await new Promise((done) => (servers.pop() as TcpServer).close(done));
    expect((await probeHealth(`http://127.0.0.1:${refusedPort}/`, 1000)).reason).toBe(`http://127.0.0.1:${refusedPort}/: ECONNREFUSED`);
  });
});
