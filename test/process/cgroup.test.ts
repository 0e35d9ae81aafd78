// cgroup v2 primitives on this machine's real hierarchy (unique cgroup names, removed after each test), plus the
// parsing of recorded /proc files, and the subreaper shim's own duties.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { launch, snapshotProcSync, terminate } from '../../src/process/index.js';
import {
  cgroup2Mounts,
  cgroup2MountsCovering,
  cgroupExists,
  cgroupMembers,
  createCgroup,
  isLaunchCgroup,
  launchCgroupOf,
  ownCgroupPath,
  readCgroupEvents,
  removeCgroup,
  waitCgroupEmpty,
} from '../../src/process/posix/cgroup.js';
import { chooseContainment } from '../../src/process/containment.js';
import type { ContainmentChoice } from '../../src/process/containment.js';
import { FAKE_WEBUI_DIR, cleanupProcesses, ownForCleanup, waitFor } from '../support/processes.js';

const made: string[] = [];
afterEach(async () => {
  await cleanupProcesses();
  for (const path of made.splice(0)) removeCgroup(path);
});

// Recorded from this machine (hybrid: cgroup v1 controllers plus cgroup2 at /sys/fs/cgroup/unified).
const MOUNTINFO = [
  '25 30 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec - tmpfs tmpfs rw,mode=755',
  '26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw',
  '27 25 0:24 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
  '40 30 0:23 /system.slice /mnt/odd\\040place rw - cgroup2 cgroup2 rw',
].join('\n');

const cgroupChoice = (): ContainmentChoice => {
  const choice = chooseContainment('auto');
  expect(choice.backend, `a writable cgroup v2 hierarchy on this machine (${choice.reason})`).toBe('cgroup');
  return choice;
};

describe('reading the hierarchy', () => {
  test('cgroup2 mounts come from mountinfo; only mounts of the hierarchy root count, escapes decoded', () => {
    expect(cgroup2Mounts(MOUNTINFO)).toEqual(['/sys/fs/cgroup/unified']);
    expect(cgroup2Mounts('41 30 0:23 / /mnt/odd\\040place rw - cgroup2 cgroup2 rw')).toEqual(['/mnt/odd place']);
  });

  test('the cached mount list answers for a path it covers and is read again for one it does not', () => {
    const live = cgroup2Mounts();
    const mount = live[0];
    if (mount === undefined) {
      // No cgroup2 here: nothing is covered, every call reads afresh and finds nothing.
      expect(cgroup2MountsCovering('/sys/fs/cgroup/warden/x-1')).toEqual([]);
      return;
    }
    const first = cgroup2MountsCovering(`${mount}/warden/a-1`);
    expect(first).toEqual(live);
    // Same list object while the path is covered (no mountinfo read) ...
    expect(cgroup2MountsCovering(`${mount}/warden/b-2`)).toBe(first);
    // ... a path under no mount gets a fresh read, and a fresh read cannot make it pass.
    const fresh = cgroup2MountsCovering('/not-a-mount/warden/a-1');
    expect(fresh).not.toBe(first);
    expect(fresh).toEqual(live);
    expect(isLaunchCgroup('/not-a-mount/warden/a-1', 'a:1', fresh)).toBe(false);
  });

  test("this process's cgroup is the 0:: line of /proc/self/cgroup", () => {
    expect(ownCgroupPath('9:name=systemd:/\n4:memory:/process_api/x\n0::/user.slice/user-1000.slice/session-2.scope\n')).toBe('/user.slice/user-1000.slice/session-2.scope');
    expect(ownCgroupPath('4:memory:/x\n')).toBeUndefined();
  });

  test('only a Warden launch cgroup of the same marker on a cgroup2 mount is ever accepted as a kill target', () => {
    const mounts = ['/sys/fs/cgroup/unified'];
    const marker = 'webui:0123456789abcdef';
    expect(isLaunchCgroup('/sys/fs/cgroup/unified/warden/webui-0123456789abcdef', marker, mounts)).toBe(true);
    expect(isLaunchCgroup('/sys/fs/cgroup/unified/user.slice/warden/webui-0123456789abcdef', marker, mounts)).toBe(true);
    for (const path of [
      '/sys/fs/cgroup/unified',
      '/sys/fs/cgroup/unified/warden',
      '/sys/fs/cgroup/unified/system.slice/sshd.service',
      '/sys/fs/cgroup/unified/warden/webui-ffffffffffffffff',
      '/sys/fs/cgroup/unified/other/webui-0123456789abcdef',
      '/sys/fs/cgroup/unified/warden/../system.slice/warden/webui-0123456789abcdef',
      '/tmp/warden/webui-0123456789abcdef',
      'sys/fs/cgroup/unified/warden/webui-0123456789abcdef',
      42,
    ]) {
      expect(isLaunchCgroup(path, marker, mounts), String(path)).toBe(false);
    }
  });
});

describe('a launch cgroup on this machine', () => {
  test('made, populated by a process, frozen, killed to populated 0 (seen by inotify) and removed with its sub-cgroups', async () => {
    const choice = cgroupChoice();
    const marker = `cgtest:${randomBytes(8).toString('hex')}`;
    const tree = await launch({ instanceId: 'cgtest', command: '/bin/sh', args: ['-c', 'sleep 600 & sleep 600 & wait'], marker, containment: choice, discoverIntervalMs: 0 });
    ownForCleanup(tree);
    const path = tree.cgroup as string;
    made.push(path);
    await waitFor(() => cgroupMembers(path).length === 3, 5000, 'sh and two sleeps in the cgroup');
    // A sub-cgroup (a root member may make one): its members are ours too, and removal goes deepest first.
    mkdirSync(join(path, 'sub'));
    const moved = cgroupMembers(path).find((pid) => pid !== tree.root.pid) as number;
    writeFileSync(join(path, 'sub', 'cgroup.procs'), String(moved));
    expect(readFileSync(join(path, 'cgroup.procs'), 'utf8')).not.toContain(`${moved}\n`);
    expect(cgroupMembers(path)).toHaveLength(3);
    expect(cgroupMembers(path)).toContain(moved);
    expect(readCgroupEvents(path)).toEqual({ populated: true, frozen: false });
    expect(launchCgroupOf(tree.root.pid, marker)).toBe(path);
    expect(launchCgroupOf(tree.root.pid, 'cgtest:ffffffffffffffff')).toBeUndefined();
    expect(launchCgroupOf(process.pid, marker)).toBeUndefined();

    const report = await terminate(tree, { immediate: true });

    expect(report.survivors).toEqual([]);
    expect(report.killed).toHaveLength(3);
    expect(report.containment).toEqual({ backend: 'cgroup', cgroup: path, removed: true });
    expect(cgroupExists(path)).toBe(false);
    expect(await waitCgroupEmpty(path, 10)).toBe(true);
  });

  test('a stop whose cgroup another stop removed meanwhile reports nothing left instead of failing', async () => {
    const choice = cgroupChoice();
    const marker = `cgtest:${randomBytes(8).toString('hex')}`;
    const tree = await launch({ instanceId: 'cgtest', command: '/bin/sh', args: ['-c', 'sleep 600 & sleep 600 & wait'], marker, containment: choice, discoverIntervalMs: 0 });
    ownForCleanup(tree);
    const path = tree.cgroup as string;
    made.push(path);
    await waitFor(() => cgroupMembers(path).length === 3, 5000, 'sh and two sleeps in the cgroup');

    // The polite hook plays the other stop: it stops the same tree to the end (cgroup removed), then says "not delivered",
    // so this stop goes on to freeze a cgroup that no longer exists.
    const report = await terminate(tree, {
      beforeSignals: async () => {
        const other = await terminate(tree, { immediate: true });
        expect(other.survivors).toEqual([]);
        expect(cgroupExists(path)).toBe(false);
        return false;
      },
    });

    expect(report.survivors).toEqual([]);
    expect(cgroupMembers(path)).toEqual([]);
    expect(['Z', 'X', undefined]).toContain(snapshotProcSync(false, false).processes.get(tree.root.pid)?.state);
  });

  test('an empty cgroup reads populated 0 at once; a record naming a cgroup not made for its marker is refused before any signal', async () => {
    const choice = cgroupChoice();
    const marker = `cgtest:${randomBytes(8).toString('hex')}`;
    const path = createCgroup(choice.cgroupParent as string, marker);
    made.push(path);
    expect(await waitCgroupEmpty(path, 10)).toBe(true);
    const parent = choice.cgroupParent as string;
    await expect(terminate({ instanceId: 'cgtest', marker, root: { pid: process.pid, startTime: undefined }, cgroup: parent })).rejects.toMatchObject({ code: 'CGROUP_NOT_OURS' });
  });
});

describe('the subreaper shim', () => {
  const subreaper = (): ContainmentChoice => chooseContainment('subreaper');

  test("reports the command's own exit at once while an orphan keeps the shim alive, reaps orphan zombies, and leaves once the last one is gone", async () => {
    // The command leaves one orphan that exits after 0.3 s (a zombie for the shim to reap) and one that stays.
    const tree = await launch({ instanceId: 'reaper', command: '/bin/sh', args: ['-c', '(sleep 0.3 &) ; (sleep 600 &) ; exit 7'], cwd: FAKE_WEBUI_DIR, containment: subreaper(), discoverIntervalMs: 0 });
    ownForCleanup(tree);
    const exit = await tree.exited;
    expect(exit.code).toBe(7);
    const shim = tree.root.pid;
    const childrenOfShim = () => [...snapshotProcSync(false).processes.values()].filter((info) => info.ppid === shim);
    await waitFor(() => childrenOfShim().some((info) => info.name === 'sleep'), 5000, 'the orphans to be reparented to the shim');
    await new Promise((resolveLater) => setTimeout(resolveLater, 800));
    // The short orphan has exited and been reaped: no zombie is left under the shim, the long one still runs.
    expect(childrenOfShim().filter((info) => info.state === 'Z')).toEqual([]);
    expect(childrenOfShim().filter((info) => info.name === 'sleep')).toHaveLength(1);
    expect(snapshotProcSync(false).processes.get(shim)?.state).not.toBe('Z');

    const report = await terminate(tree, { graceMs: 1000 });

    expect(report.survivors).toEqual([]);
    await waitFor(() => { const info = snapshotProcSync(false).processes.get(shim); return info === undefined || info.state === 'Z'; }, 5000, 'the shim to leave');
  });
});
