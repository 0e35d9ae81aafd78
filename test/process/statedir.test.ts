// The state directory as hostile input: another user's or a world-writable directory is refused before anything
// is read or spawned; a symlink planted for the token, lock, registry or sentinel log is never followed (its target
// is left byte for byte); the token is mode 0600 whatever the umask; a non-ASCII state dir matches its own markers.
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { statusCommand } from '../../src/cli/status.js';
import { acquireLock } from '../../src/process/state/lock.js';
import { readEnvironVariable } from '../../src/process/posix/procfs.js';
import { reapLeftovers } from '../../src/process/state/reap.js';
import { Registry, launchRecord } from '../../src/process/state/registry.js';
import { startSentinel } from '../../src/process/state/sentinel.js';
import { StateDirError } from '../../src/process/state/statedir.js';
import { STATE_DIR_VARIABLE } from '../../src/process/types.js';
import { isLoopbackUrl } from '../../src/server/loopback.js';
import { loadOrCreateToken } from '../../src/server/token.js';
import { cleanupProcesses, isAliveNow, launchFakeWebui, tempDir, waitForPythons } from '../support/processes.js';

afterEach(cleanupProcesses);

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

// Every entry point that opens the state directory, each must refuse it the same way.
const openers: Array<[string, (dir: string) => Promise<unknown>]> = [
  ['Registry.open', (dir) => Registry.open(dir)],
  ['loadOrCreateToken', (dir) => loadOrCreateToken(dir)],
  ['acquireLock', (dir) => acquireLock(dir)],
  ['startSentinel', (dir) => startSentinel({ stateDir: dir })],
];

describe('the state directory', () => {
  test.each(openers)('%s refuses a world-writable state directory and writes nothing into it', async (_name, openIt) => {
    const dir = join(tempDir(), 'state');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const error = await openIt(dir).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(StateDirError);
    expect((error as StateDirError).code).toBe('STATE_DIR_UNTRUSTED');
    expect((error as Error).message).toContain(`${dir} is world-writable (mode 777)`);
    expect(existsSync(join(dir, 'token')) || existsSync(join(dir, 'registry.json')) || existsSync(join(dir, 'supervisor.lock')) || existsSync(join(dir, 'sentinel.log'))).toBe(false);
  });

  test.each(openers)('%s refuses a state directory owned by another user', async (_name, openIt) => {
    // Only root can hand a directory to another uid; this suite runs as root in CI, and says so when it does not.
    expect(isRoot, 'this test needs root to chown a directory to uid 65534').toBe(true);
    const dir = join(tempDir(), 'state');
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, NOBODY, NOBODY);
    const error = await openIt(dir).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(StateDirError);
    expect((error as Error).message).toContain(`${dir} belongs to uid ${NOBODY}, not to the current user (uid 0)`);
  });

  test('the token is created mode 0600 even under umask 000, and reused', async () => {
    const dir = tempDir();
    const previous = process.umask(0);
    try {
      const token = await loadOrCreateToken(dir);
      expect(statSync(join(dir, 'token')).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(dir, 'token'), 'utf8')).toBe(`${token}\n`);
      expect(await loadOrCreateToken(dir)).toBe(token);
    } finally {
      process.umask(previous);
    }
  });
});

describe('symlinks in the state directory are never followed', () => {
  // A file outside the state dir that a planted link points at; it must come out unchanged.
  const plantLink = (dir: string, name: string, content: string): string => {
    const target = join(tempDir(), 'victim');
    writeFileSync(target, content, { mode: 0o644 });
    symlinkSync(target, join(dir, name));
    return target;
  };

  test('token: a link to a valid-looking token file is refused, not read or chmodded', async () => {
    const dir = tempDir();
    const victim = plantLink(dir, 'token', `${'a'.repeat(64)}\n`);
    const error = await loadOrCreateToken(dir).catch((caught: unknown) => caught);
    expect((error as StateDirError).code).toBe('STATE_FILE_SYMLINK');
    expect((error as Error).message).toContain(`${join(dir, 'token')}: it is a symbolic link`);
    expect(statSync(victim).mode & 0o777).toBe(0o644);
  });

  test('registry: a link to a registry-shaped file is refused; the target is untouched and not moved aside', async () => {
    const dir = tempDir();
    const content = `${JSON.stringify({ version: 1, records: [] })}\n`;
    const victim = plantLink(dir, 'registry.json', content);
    const error = await Registry.open(dir).catch((caught: unknown) => caught);
    expect((error as StateDirError).code).toBe('STATE_FILE_SYMLINK');
    expect(readFileSync(victim, 'utf8')).toBe(content);
  });

  test('lock: a link in place of supervisor.lock is refused, never judged or replaced', async () => {
    const dir = tempDir();
    const victim = plantLink(dir, 'supervisor.lock', 'not a lock\n');
    const error = await acquireLock(dir, { settleMs: 0 }).catch((caught: unknown) => caught);
    expect((error as StateDirError).code).toBe('STATE_FILE_SYMLINK');
    expect(readFileSync(victim, 'utf8')).toBe('not a lock\n');
  });

  test('sentinel log: a link in place of sentinel.log is refused before the sentinel is spawned', async () => {
    const dir = tempDir();
    const victim = plantLink(dir, 'sentinel.log', 'precious\n');
    const error = await startSentinel({ stateDir: dir }).catch((caught: unknown) => caught);
    expect((error as StateDirError).code).toBe('STATE_FILE_SYMLINK');
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
  });
});

describe('the token goes only to loopback', () => {
  test('isLoopbackUrl accepts only http to a literal loopback address', () => {
    expect(['http://127.0.0.1:8080', 'http://127.9.9.9:1/x', 'http://[::1]:9'].every(isLoopbackUrl)).toBe(true);
    const refused = ['https://127.0.0.1:1', 'http://localhost:1', 'http://10.0.0.1:1', 'http://user:pw@127.0.0.1:1', 'http://127.0.0.1.evil.example:1', 'file:///etc/passwd', 'not a url'];
    expect(refused.filter(isLoopbackUrl)).toEqual([]);
  });

  test('warden status refuses a server.json naming a non-loopback url, and sends no request at all', async () => {
    const dir = tempDir();
    await loadOrCreateToken(dir);
    // A listener that records any request: reachable as `localhost`, which must still be refused.
    const seen: string[] = [];
    const server = createServer((request, response) => {
      seen.push(`${request.url} ${request.headers.authorization ?? ''}`);
      response.end('{}');
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      const url = `http://localhost:${(server.address() as AddressInfo).port}`;
      writeFileSync(join(dir, 'server.json'), JSON.stringify({ url, pid: process.pid }));
      await expect(statusCommand({ stateDir: dir })).rejects.toThrow(`refusing to send the token to "${url}"`);
      expect(seen).toEqual([]);
    } finally {
      await new Promise((done) => server.close(done));
    }
  });
});

describe('/proc/<pid>/environ is read as bytes', () => {
  test('a non-ASCII state dir reads back as written, and the reap recognises its own trees by it', async () => {
    const stateDir = tempDir('warden-zoë-日本-');
    const tree = await launchFakeWebui(['--workers', '1'], stateDir, { [STATE_DIR_VARIABLE]: stateDir });
    const owned = await waitForPythons(tree, 2);
    for (const entry of owned) expect(readEnvironVariable(entry.info.pid, STATE_DIR_VARIABLE)).toBe(stateDir);
    const registry = await Registry.open(stateDir);
    await registry.add(launchRecord(tree));
    tree.dispose();
    // Only a tree whose carriers hold this exact state dir is reaped (a latin1 read would mismatch and leave it).
    const report = await reapLeftovers({ registry: await Registry.open(stateDir), instanceIds: [tree.instanceId], stateDir, graceMs: 2000 });
    expect(report.survivors).toEqual([]);
    expect(report.entries.find((entry) => entry.marker === tree.marker)?.action).toBe('reaped');
    expect(owned.filter((entry) => isAliveNow(entry.info.pid, entry.info.startTime))).toEqual([]);
  });
});
