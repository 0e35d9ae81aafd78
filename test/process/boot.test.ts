// Boot ids: a registry record or lock written under another kernel boot is never trusted, even when its pid, start
// time and marker name a live process right now; the record is reported and forgotten, nothing is signalled.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { currentBootId } from '../../src/process/posix/boot.js';
import { acquireLock } from '../../src/process/state/lock.js';
import { reapLeftovers } from '../../src/process/state/reap.js';
import { Registry, launchRecord } from '../../src/process/state/registry.js';
import { cleanupProcesses, isAliveNow, launchFakeWebui, tempDir, waitForPythons } from '../support/processes.js';

afterEach(cleanupProcesses);

const OTHER_BOOT = '00000000-0000-4000-8000-000000000000';

describe('boot id', () => {
  test('this machine has one, and new registry records carry it', async () => {
    // Linux is where this runs; no boot id here would mean the check silently does nothing.
    expect(currentBootId()).toMatch(/^[0-9a-f-]{36}$/);
    const tree = await launchFakeWebui(['--workers', '1']);
    expect(launchRecord(tree).bootId).toBe(currentBootId());
  });

  test('a record from another boot is forgotten without a signal, though its pid, start time and marker match a live tree', async () => {
    const stateDir = tempDir();
    const tree = await launchFakeWebui(['--workers', '1']);
    const owned = await waitForPythons(tree, 2);
    const registry = await Registry.open(stateDir);
    // The worst case: everything in the record matches a live tree of ours; only the boot id says it is stale.
    await registry.add({ ...launchRecord(tree), bootId: OTHER_BOOT });
    // instanceIds empty: the marker stage (which may rightly reap a live stale marker of this boot) stays out of it.
    const report = await reapLeftovers({ registry: await Registry.open(stateDir), instanceIds: [], graceMs: 500 });
    const entry = report.entries.find((candidate) => candidate.marker === tree.marker);
    expect(entry).toMatchObject({ action: 'nothing-left', killed: [], survivors: [], recordRemoved: true, staleBoot: { recorded: OTHER_BOOT, now: currentBootId() } });
    expect(owned.filter((process) => !isAliveNow(process.info.pid, process.info.startTime))).toEqual([]);
    expect((await Registry.open(stateDir)).list()).toEqual([]);
  });

  test('a record without a boot id (older Warden) is judged as before', async () => {
    const stateDir = tempDir();
    const tree = await launchFakeWebui(['--workers', '1']);
    const owned = await waitForPythons(tree, 2);
    const { bootId: _dropped, ...old } = launchRecord(tree);
    const registry = await Registry.open(stateDir);
    await registry.add(old);
    tree.dispose();
    const report = await reapLeftovers({ registry: await Registry.open(stateDir), instanceIds: [tree.instanceId], graceMs: 2000 });
    expect(report.entries.find((candidate) => candidate.marker === tree.marker)?.action).toBe('reaped');
    expect(owned.filter((process) => isAliveNow(process.info.pid, process.info.startTime))).toEqual([]);
  });

  test('a bad boot id in a record is refused naming the field', async () => {
    const registry = await Registry.open(tempDir());
    const tree = await launchFakeWebui(['--workers', '1']);
    await expect(registry.add({ ...launchRecord(tree), bootId: '' })).rejects.toThrow('record.bootId: expected a non-empty string (got "")');
  });

  test('a lock whose holder ran under another boot is taken over, even though its pid and start time are alive now', async () => {
    const stateDir = tempDir();
    // Our own pid and start time: alive by every other test the lock has.
    const self = JSON.parse(readFileSync('/proc/self/stat', 'latin1').replace(/^.*\) /, '["').replace(/ /g, '","').replace(/\n?$/, '"]')) as string[];
    const content = { pid: process.pid, startTime: Number(self[19]), hostname: hostname(), startedAt: '2026-01-01T00:00:00Z', nonce: randomBytes(16).toString('hex'), bootId: OTHER_BOOT };
    writeFileSync(join(stateDir, 'supervisor.lock'), JSON.stringify(content));
    const lock = await acquireLock(stateDir);
    try {
      expect(lock.takeoverReason).toBe('holder-dead');
      expect(lock.takenOverFrom).toMatchObject({ pid: process.pid, bootId: OTHER_BOOT });
      expect(lock.holder.bootId).toBe(currentBootId());
    } finally {
      await lock.release();
    }
  });
});
