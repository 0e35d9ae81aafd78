// The durable registry: records survive a restart, every write replaces the file whole, and a corrupt file is kept and named.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { Registry, RegistryCorruptError, launchRecord } from '../../src/process/state/registry.js';
import type { LaunchRecord } from '../../src/process/state/registry.js';
import { readStartTime } from '../../src/process/posix/procfs.js';
import { cleanupProcesses, isAliveNow, tempDir, waitFor } from '../support/processes.js';

/** Plain child processes this file started, with the start time that proves they are still the same process. */
const children: Array<{ pid: number; startTime: number | undefined }> = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.startTime !== undefined && isAliveNow(child.pid, child.startTime)) process.kill(child.pid, 'SIGKILL');
  }
  await cleanupProcesses();
});

function sampleRecord(instanceId = 'webui', pid = 4312): LaunchRecord {
  return {
    instanceId,
    marker: `${instanceId}:${randomBytes(8).toString('hex')}`,
    root: { pid, startTime: 123_456, clock: 'proc' },
    pgid: pid,
    launchedAt: Date.now(),
    supervisor: { pid: process.pid, startTime: readStartTime(process.pid)?.startTime },
  };
}

const filesIn = (dir: string): string[] => readdirSync(dir).sort();

describe('registry', () => {
  test('records added, updated and removed are what the next supervisor reads back', async () => {
    const stateDir = join(tempDir(), 'nested', '.warden');
    const registry = await Registry.open(stateDir);
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
    expect(registry.list()).toEqual([]);

    const first = sampleRecord('webui', 4312);
    const second = sampleRecord('webui-2', 4400);
    await registry.add(first);
    await registry.add(second);
    const updated = await registry.update(first.marker, { shellPid: 4312, pythonPid: 4320 });
    expect(updated).toMatchObject({ marker: first.marker, shellPid: 4312, pythonPid: 4320 });
    expect(await registry.update('webui:0000000000000000', { pythonPid: 1 })).toBeUndefined();
    expect(await registry.remove(second.marker)).toBe(true);
    expect(await registry.remove(second.marker)).toBe(false);

    const reopened = await Registry.open(stateDir);
    expect(reopened.list()).toEqual([{ ...first, shellPid: 4312, pythonPid: 4320 }]);
    expect(statSync(registry.path).mode & 0o777).toBe(0o600);
    expect(filesIn(stateDir)).toEqual(['registry.json']);
  });

  test('a record built from a launch names the root, the group, the roles and this supervisor', () => {
    const record = launchRecord({
      instanceId: 'webui',
      marker: 'webui:00112233aabbccdd',
      root: { pid: 4312, startTime: 99, clock: 'proc' },
      pgid: 4312,
      shell: { pid: 4312, startTime: 99 },
      python: { pid: 4320, startTime: 101 },
    });
    expect(record).toMatchObject({ shellPid: 4312, pythonPid: 4320, pgid: 4312, supervisor: { pid: process.pid } });
    expect(record.supervisor.startTime).toBe(readStartTime(process.pid)?.startTime);
  });

  test('concurrent changes are applied one after another and none is lost', async () => {
    const stateDir = tempDir();
    const registry = await Registry.open(stateDir);
    const records = Array.from({ length: 30 }, (_, index) => sampleRecord(`webui-${index}`, 1000 + index));
    await Promise.all(records.map((record) => registry.add(record)));
    await Promise.all(records.slice(0, 10).map((record) => registry.remove(record.marker)));
    const reopened = await Registry.open(stateDir);
    expect(reopened.list().map((record) => record.marker).sort()).toEqual(records.slice(10).map((record) => record.marker).sort());
    expect(filesIn(stateDir)).toEqual(['registry.json']);
  });

  test('every write replaces the file whole: a concurrent reader never sees a half-written registry', async () => {
    const stateDir = tempDir();
    const registry = await Registry.open(stateDir);
    await registry.add(sampleRecord('webui', 1));
    // A separate process reads the file in a tight loop while this one rewrites it.
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: ChildProcess handle; it reads the registry and exits.   Cleanup handled by: awaited exit in the test.   Known risks: none.
    const reader = spawn(process.execPath, ['-e', `
      const fs = require('node:fs');
      let ok = 0, bad = 0; const until = Date.now() + 60000;
      const stop = () => { process.stdout.write(JSON.stringify({ ok, bad })); process.exit(0); };
      process.on('SIGTERM', stop);
      JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));
      process.stdout.write('ready\\n');
      (function loop() {
        for (let i = 0; i < 200; i++) {
          try { JSON.parse(fs.readFileSync(process.argv[1], 'utf8')); ok++; } catch { bad++; }
        }
        if (Date.now() < until) setImmediate(loop); else stop();
      })();
    `, registry.path], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = reader.pid as number;
    children.push({ pid, startTime: readStartTime(pid)?.startTime });
    let output = '';
    reader.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<void>((resolve) => reader.once('exit', () => resolve()));
    // Writing starts only once the reader runs (and can report), however slowly this machine boots Node.
    await waitFor(() => output.startsWith('ready\n'), 15_000, 'the reader process to start');

    let writes = 0;
    let replaced = 0;
    let inode = statSync(registry.path).ino;
    const checked = async (write: Promise<unknown>): Promise<void> => {
      await write;
      const now = statSync(registry.path).ino;
      writes += 1;
      if (now !== inode) replaced += 1;
      inode = now;
    };
    for (let round = 0; round < 150; round += 1) {
      await checked(registry.update(registry.list()[0]?.marker as string, { pythonPid: round + 2, launchedAt: Date.now() }));
      // Padding makes each write large enough that an in-place write would be observable half-done.
      if (round % 10 === 0) await checked(registry.add({ ...sampleRecord(`pad-${round}`, 5000 + round), marker: `pad-${round}:${'ab'.repeat(200)}` }));
    }
    reader.kill('SIGTERM');
    await exited;
    const counts = JSON.parse(output.slice('ready\n'.length)) as { ok: number; bad: number };
    expect(counts.bad).toBe(0);
    expect(counts.ok).toBeGreaterThan(100);
    // A different inode after every write: the file is replaced by rename, never rewritten in place.
    expect(replaced).toBe(writes);
    expect(filesIn(stateDir)).toEqual(['registry.json']);
  });

  test('a corrupt registry is a clear error naming the file, and the file is kept aside, not reset', async () => {
    const stateDir = tempDir();
    const path = join(stateDir, 'registry.json');
    const garbage = '{"version":1,"records":[{"instanceId":"webui","marker":"webui:ab';
    writeFileSync(path, garbage, { mode: 0o600 });

    const error = await Registry.open(stateDir).then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(RegistryCorruptError);
    const corrupt = error as RegistryCorruptError;
    expect(corrupt.code).toBe('REGISTRY_CORRUPT');
    expect(corrupt.message).toContain(path);
    expect(corrupt.message).toContain('not valid JSON');
    expect(corrupt.movedTo).toMatch(/registry\.json\.corrupt-\d{4}-\d\d-\d\dT[\d-]+Z$/);
    expect(corrupt.message).toContain(corrupt.movedTo);
    expect(readFileSync(corrupt.movedTo, 'utf8')).toBe(garbage);
    expect(existsSync(path)).toBe(false);

    // The next start begins empty; the evidence stays where the error said.
    const next = await Registry.open(stateDir);
    expect(next.list()).toEqual([]);
    expect(existsSync(corrupt.movedTo)).toBe(true);
  });

  test('a registry of the wrong shape names the bad field', async () => {
    const stateDir = tempDir();
    const record = sampleRecord();
    writeFileSync(join(stateDir, 'registry.json'), JSON.stringify({ version: 1, records: [record, { ...record, marker: 'webui:ff', root: { pid: 'x' } }] }), { mode: 0o600 });
    await expect(Registry.open(stateDir)).rejects.toThrow(/records\[1\]\.root\.pid: expected a non-negative integer \(got "x"\)/);
    expect(filesIn(stateDir).filter((name) => name.startsWith('registry.json.corrupt-'))).toHaveLength(1);
  });

  test('an invalid record is refused before anything is written', async () => {
    const stateDir = tempDir();
    const registry = await Registry.open(stateDir);
    await registry.add(sampleRecord());
    const before = readFileSync(registry.path, 'utf8');
    const bad = { ...sampleRecord(), marker: 'other:0011' };
    await expect(registry.add(bad)).rejects.toMatchObject({ code: 'REGISTRY_INVALID_RECORD', message: expect.stringContaining('record.marker') as unknown });
    expect(readFileSync(registry.path, 'utf8')).toBe(before);
  });

  test('a registry other users could have written is refused, and left where it is', async () => {
    const stateDir = tempDir();
    const registry = await Registry.open(stateDir);
    await registry.add(sampleRecord());
    chmodSync(registry.path, 0o666);
    await expect(Registry.open(stateDir)).rejects.toMatchObject({ code: 'REGISTRY_UNTRUSTED', message: expect.stringContaining('writable by other users') as unknown });
    chmodSync(registry.path, 0o600);
    if (process.getuid?.() === 0) {
      chownSync(registry.path, 65534, 65534);
      await expect(Registry.open(stateDir)).rejects.toMatchObject({ code: 'REGISTRY_UNTRUSTED', message: expect.stringContaining('belongs to uid 65534') as unknown });
    }
    expect(existsSync(registry.path)).toBe(true);
  });

  test('temp files of a writer that died mid-write are removed on open; a live writer\'s are not', async () => {
    const stateDir = tempDir();
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: ChildProcess handle; `node -e ''` exits at once (a pid known dead).   Cleanup handled by: itself.   Known risks: none.
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => dead.once('exit', resolve));
    writeFileSync(join(stateDir, `registry.json.tmp-${dead.pid as number}-0badf00d`), '{"half":');
    writeFileSync(join(stateDir, `registry.json.tmp-${process.pid}-0000beef`), '{"mine":');
    await Registry.open(stateDir);
    expect(filesIn(stateDir)).toEqual([`registry.json.tmp-${process.pid}-0000beef`]);
  });
});
