// Port discovery on real sockets: "auto:LO-HI" skips held ports, names their holders when the range is exhausted,
// and a fixed port held by someone else is refused before anything is spawned.
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { PortRangeExhaustedError, canBind, pickPort } from '../../src/port-discovery.js';
import { fakeInstance, freePort, makeSupervisor, pidsOfInstance, cleanupRuntime } from '../support/runtime.js';

const held: Server[] = [];

afterEach(async () => {
  await Promise.all(held.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  await cleanupRuntime();
});

// Holds a port on every IPv4 address from this (test) process, as a foreign app would.
function hold(port: number, host = '0.0.0.0'): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, host, () => {
      held.push(server);
      resolve(server);
    });
  });
}

// Three consecutive free ports.
async function freeRun(): Promise<number> {
  for (;;) {
    const first = await freePort();
    if ((await canBind(first + 1)) && (await canBind(first + 2))) return first;
  }
}

describe('port discovery', () => {
  test('auto picks the first port nobody holds, passes it as --port, and the health URL follows', async () => {
    const low = await freeRun();
    await hold(low);
    const base = await fakeInstance({ args: ['--workers', '1'], health: false });
    const instance = { ...base, args: ['-f', '--workers', '1'], profile: 'a1111', port: `auto:${low}-${low + 2}` };
    const supervisor = makeSupervisor([instance]);

    const status = await supervisor.start(instance.id);

    expect(status).toMatchObject({ port: low + 1, url: `http://127.0.0.1:${low + 1}`, ready: true });
    const info = (await (await fetch(`http://127.0.0.1:${low + 1}/fake/info`)).json()) as { argv: string[]; warden_port: string };
    expect(info.argv).toEqual(['-f', '--workers', '1', '--port', String(low + 1)]);
    expect(info.warden_port).toBe(String(low + 1));
    await supervisor.stop(instance.id);
  }, 30_000);

  test('a range whose every port is held is refused before spawning, naming each holder by pid and name', async () => {
    const low = await freeRun();
    await hold(low);
    await hold(low + 1, '127.0.0.1');
    const base = await fakeInstance({ health: false });
    const instance = { ...base, args: ['-f'], profile: 'a1111', port: `auto:${low}-${low + 1}`, restart: { onCrash: false } };
    const supervisor = makeSupervisor([instance]);

    const error = await supervisor.start(instance.id).then(() => undefined, (reason: unknown) => reason);

    expect(error).toBeInstanceOf(PortRangeExhaustedError);
    const message = (error as Error).message;
    expect(message).toContain(`no free port in auto:${low}-${low + 1}`);
    expect(message).toContain(`${low}: pid ${process.pid} `);
    expect(message).toContain(`${low + 1}: pid ${process.pid} `);
    expect((error as PortRangeExhaustedError).held.map((entry) => entry.holders.map((holder) => holder.pid))).toEqual([[process.pid], [process.pid]]);
    expect(pidsOfInstance(instance.id)).toEqual([]);
  }, 30_000);

  test('a fixed port someone else holds is refused before spawning, with the holder pid and name', async () => {
    const port = await freePort();
    await hold(port);
    const base = await fakeInstance({ health: false });
    const instance = { ...base, args: ['-f'], profile: 'a1111', port, restart: { onCrash: false } };
    const supervisor = makeSupervisor([instance]);

    await expect(supervisor.start(instance.id)).rejects.toThrow(new RegExp(`port ${port} already answers \\(pid ${process.pid} \\S+, not started by Warden\\)`));
    expect(pidsOfInstance(instance.id)).toEqual([]);
  }, 30_000);

  test('two instances sharing a range get different ports', async () => {
    const low = await freeRun();
    const range = `auto:${low}-${low + 2}`;
    const one = { ...(await fakeInstance({ health: false })), args: ['-f'], profile: 'a1111', port: range };
    const two = { ...(await fakeInstance({ health: false })), args: ['-f'], profile: 'a1111', port: range };
    const supervisor = makeSupervisor([one, two]);
    const [first, second] = await Promise.all([supervisor.start(one.id), supervisor.start(two.id)]);
    expect(new Set([first.port, second.port]).size).toBe(2);
    // Neither had to crash into the other's port first.
    expect([first.restarts, second.restarts]).toEqual([0, 0]);
    await expect(pickPort('x', { from: low, to: low + 2 }, new Set([low, low + 1]))).resolves.toBe(low + 2);
  }, 30_000);
});
