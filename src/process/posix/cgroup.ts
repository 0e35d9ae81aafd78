// cgroup v2 primitives: find a writable hierarchy, make one cgroup per launch, list, freeze, kill, watch, remove.
// The kernel holds the tree here: a process cannot leave its cgroup (short of root moving it), whatever it does
// to its environment, session or parent, so membership is a proof of ownership that no escape defeats.
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, statSync, watch, writeFileSync } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';

// `<instanceId>:<token>` split at the last ':' (as ownership.parseMarker; kept here so this file imports nothing of ours).
function parseMarker(value: string): { instanceId: string; token: string } | undefined {
  const cut = value.lastIndexOf(':');
  if (cut <= 0 || cut === value.length - 1) return undefined;
  return { instanceId: value.slice(0, cut), token: value.slice(cut + 1) };
}

/** The directory under a writable hierarchy that holds every Warden launch cgroup. */
export const CGROUP_PARENT = 'warden';

/** What `cgroup.events` says. */
export interface CgroupEvents {
  populated: boolean;
  frozen: boolean;
}

/** Where launch cgroups can be made, or why none can. */
export type CgroupProbe =
  | { ok: true; base: string; parent: string; reason: string }
  | { ok: false; reason: string };

// Decodes the octal escapes mountinfo uses for spaces and the like (`\040`).
const unescapeMount = (text: string): string => text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));

// Every cgroup2 mount of this mount namespace whose root is the hierarchy's root (as mountinfo lists them).
export function cgroup2Mounts(mountinfo?: string): string[] {
  let text = mountinfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/mountinfo', 'utf8');
    } catch {
      return [];
    }
  }
  const mounts: string[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined || right.split(' ')[0] !== 'cgroup2') continue;
    const fields = left.split(' ');
    // Field 4 is the mount's root inside the hierarchy, field 5 the mount point.
    if (fields[3] === '/' && fields[4] !== undefined) mounts.push(unescapeMount(fields[4]));
  }
  return mounts;
}

let mountsReadLast: string[] | undefined;
// The cgroup2 mounts to check a launch cgroup `path` against: the list read last when `path` lies under one of its
// mounts, else a fresh read of mountinfo. The sampler checks every launch cgroup once a second and mounts hardly ever
// change; a path the list does not cover is always checked against a fresh read, and a mount gone since only leaves
// its cgroup's files unreadable (nothing owned), so the cache can never make a foreign path pass.
export function cgroup2MountsCovering(path: string): readonly string[] {
  const covers = (mounts: readonly string[]): boolean => mounts.some((mount) => path.startsWith(mount.endsWith(sep) ? mount : mount + sep));
  if (mountsReadLast !== undefined && covers(mountsReadLast)) return mountsReadLast;
  mountsReadLast = cgroup2Mounts();
  return mountsReadLast;
}

// This process's cgroup v2 path (`0::/path` of /proc/self/cgroup), relative to the hierarchy's root.
export function ownCgroupPath(procSelfCgroup?: string): string | undefined {
  let text = procSelfCgroup;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/cgroup', 'utf8');
    } catch {
      return undefined;
    }
  }
  const line = text.split('\n').find((entry) => entry.startsWith('0::'));
  return line === undefined ? undefined : line.slice(3);
}

// Finds where launch cgroups can be made: this process's own cgroup first (a delegated subtree, e.g. under
// `systemd-run --user --scope -p Delegate=yes`), then each cgroup2 mount's root (root, pure or hybrid mount).
// A candidate counts only when a probe cgroup can be made there and has cgroup.kill, cgroup.freeze and cgroup.events.
export function probeCgroup(): CgroupProbe {
  if (process.platform !== 'linux') return { ok: false, reason: `cgroups exist on Linux only (this is ${process.platform})` };
  const mounts = cgroup2Mounts();
  if (mounts.length === 0) return { ok: false, reason: 'no cgroup v2 hierarchy is mounted (/proc/self/mountinfo lists no cgroup2)' };
  const own = ownCgroupPath();
  const candidates: string[] = [];
  for (const mount of mounts) {
    if (own !== undefined && own !== '/' && !own.includes('/..')) candidates.push(join(mount, own));
    candidates.push(mount);
  }
  const problems: string[] = [];
  for (const base of candidates) {
    const problem = probeBase(base);
    if (problem === undefined) {
      const parent = join(base, CGROUP_PARENT);
      return { ok: true, base, parent, reason: `cgroup v2 is writable at ${base} (cgroup.kill, cgroup.freeze, cgroup.events present)` };
    }
    problems.push(`${base}: ${problem}`);
  }
  return { ok: false, reason: `no writable cgroup v2 hierarchy (${problems.join('; ')})` };
}

// Why launch cgroups cannot be made under `base`, or undefined when they can (makes and removes a probe cgroup).
function probeBase(base: string): string | undefined {
  try {
    if (!statSync(base).isDirectory()) return 'not a directory';
    accessSync(join(base, 'cgroup.procs'), constants.W_OK);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
  const parent = join(base, CGROUP_PARENT);
  const probe = join(parent, `probe-${process.pid}-${randomBytes(3).toString('hex')}`);
  try {
    mkdirSync(parent, { recursive: true });
    mkdirSync(probe);
  } catch (error) {
    return `cannot create a cgroup (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
  }
  try {
    const missing = ['cgroup.kill', 'cgroup.freeze', 'cgroup.events', 'cgroup.procs'].filter((file) => !existsSync(join(probe, file)));
    return missing.length === 0 ? undefined : `kernel lacks ${missing.join(', ')} (cgroup.kill needs Linux 5.14)`;
  } finally {
    try {
      rmdirSync(probe);
    } catch {
      // an empty cgroup we just made; nothing else can hold it
    }
  }
}

// The launch cgroup's name for a marker: `<instanceId>-<token>`.
export function cgroupName(marker: string): string {
  const parsed = parseMarker(marker);
  if (parsed === undefined) throw new Error(`cgroupName: not a marker: ${JSON.stringify(marker)}`);
  return `${parsed.instanceId}-${parsed.token}`;
}

// Makes the launch cgroup `<parent>/<instanceId>-<token>` and returns its path.
export function createCgroup(parent: string, marker: string): string {
  mkdirSync(parent, { recursive: true });
  const path = join(parent, cgroupName(marker));
  mkdirSync(path);
  return path;
}

// Whether `path` is a launch cgroup Warden made for `marker` on a mounted cgroup2 hierarchy: a registry record
// naming any other cgroup (a system service's, the hierarchy root) is never killed.
export function isLaunchCgroup(path: unknown, marker: string, mounts: readonly string[] = cgroup2Mounts()): path is string {
  if (typeof path !== 'string' || !path.startsWith('/') || resolve(path) !== path) return false;
  const parsed = parseMarker(marker);
  if (parsed === undefined || basename(path) !== `${parsed.instanceId}-${parsed.token}` || basename(dirname(path)) !== CGROUP_PARENT) return false;
  return mounts.some((mount) => path.startsWith(mount.endsWith(sep) ? mount : mount + sep));
}

// Whether the cgroup directory still exists.
export function cgroupExists(path: string): boolean {
  return existsSync(join(path, 'cgroup.events'));
}

// `cgroup.events`, or undefined when the cgroup is gone.
export function readCgroupEvents(path: string): CgroupEvents | undefined {
  let text: string;
  try {
    text = readFileSync(join(path, 'cgroup.events'), 'utf8');
  } catch {
    return undefined;
  }
  return { populated: /^populated 1$/m.test(text), frozen: /^frozen 1$/m.test(text) };
}

// Every pid in the cgroup and its descendant cgroups (a member may make sub-cgroups if it is root).
export function cgroupMembers(path: string): number[] {
  const pids: number[] = [];
  const visit = (dir: string, depth: number): void => {
    let text = '';
    try {
      text = readFileSync(join(dir, 'cgroup.procs'), 'utf8');
    } catch {
      return;
    }
    for (const line of text.split('\n')) if (line !== '') pids.push(Number(line));
    if (depth > 16 || !mayHaveSubCgroups(dir)) return;
    for (const child of subCgroups(dir)) visit(child, depth + 1);
  };
  visit(path, 0);
  return pids;
}

// kernfs keeps a directory's link count at 2 + its subdirectories, so 2 means no sub-cgroup: one stat instead of
// listing some 40 interface files per launch per sample. Any other count (or a failed stat) lists the directory.
function mayHaveSubCgroups(dir: string): boolean {
  try {
    return statSync(dir).nlink !== 2;
  } catch {
    return true;
  }
}

function subCgroups(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => join(dir, entry.name));
  } catch {
    return [];
  }
}

// Freezes (true) or thaws (false) every member; the kernel stops them wherever they are, forks included.
export function freezeCgroup(path: string, frozen: boolean): void {
  writeFileSync(join(path, 'cgroup.freeze'), frozen ? '1' : '0');
}

// SIGKILLs every member of the cgroup and its descendants in one write (forks racing it are killed too).
export function killCgroup(path: string): void {
  writeFileSync(join(path, 'cgroup.kill'), '1');
}

// Resolves when `cgroup.events` satisfies `done` (true) or after `timeoutMs` (false). Watched by inotify, which
// the kernel fires on every change of the file (kernfs_notify); the watch is set before the first read, so a
// change between the two is never missed. Only when no watch can be made (inotify limits: ENOSPC, EMFILE) it polls.
export function waitCgroupEvents(path: string, done: (events: CgroupEvents | undefined) => boolean, timeoutMs: number): Promise<boolean> {
  return new Promise((resolveWait) => {
    let watcher: FSWatcher | undefined;
    let timer: NodeJS.Timeout | undefined;
    let poll: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (value: boolean): void => {
      if (settled) return;
      settled = true;
      watcher?.close();
      clearTimeout(timer);
      clearTimeout(poll);
      resolveWait(value);
    };
    const check = (): boolean => {
      if (done(readCgroupEvents(path))) {
        finish(true);
        return true;
      }
      return false;
    };
    try {
      watcher = watch(join(path, 'cgroup.events'), { persistent: true }, () => void check());
      watcher.on('error', () => finish(check()));
    } catch {
      watcher = undefined;
    }
    if (check()) return;
    timer = setTimeout(() => finish(check()), timeoutMs);
    if (watcher === undefined) {
      let delay = 1;
      const tick = (): void => {
        if (check()) return;
        delay = Math.min(delay * 2, 20);
        poll = setTimeout(tick, delay);
      };
      poll = setTimeout(tick, delay);
    }
  });
}

// Resolves true once the cgroup has no live member (`populated 0`, or the cgroup is gone), false after `timeoutMs`.
export function waitCgroupEmpty(path: string, timeoutMs: number): Promise<boolean> {
  return waitCgroupEvents(path, (events) => events === undefined || !events.populated, timeoutMs);
}

// Removes the cgroup and any sub-cgroups (deepest first); true when it is gone. Only an empty cgroup can go.
export function removeCgroup(path: string): boolean {
  const remove = (dir: string, depth: number): void => {
    if (depth < 16) for (const child of subCgroups(dir)) remove(child, depth + 1);
    try {
      rmdirSync(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  };
  try {
    remove(path, 0);
    return true;
  } catch {
    return !cgroupExists(path);
  }
}

// Every Warden launch cgroup under each writable hierarchy's `warden/` parent (for audits), with whether it has members.
export function launchCgroups(): Array<{ path: string; populated: boolean }> {
  const found: Array<{ path: string; populated: boolean }> = [];
  const own = ownCgroupPath();
  for (const mount of cgroup2Mounts()) {
    const parents = new Set([join(mount, CGROUP_PARENT), ...(own !== undefined && own !== '/' ? [join(mount, own, CGROUP_PARENT)] : [])]);
    for (const parent of parents) {
      for (const path of subCgroups(parent)) {
        if (basename(path).startsWith('probe-')) continue;
        found.push({ path, populated: readCgroupEvents(path)?.populated ?? false });
      }
    }
  }
  return found;
}

// The launch cgroup a pid of `marker` lives in, when it is one Warden made for that marker (a stale tree whose record
// is gone is then stopped by its cgroup, clean-environment members included); otherwise undefined.
export function launchCgroupOf(pid: number, marker: string): string | undefined {
  const relative = cgroupOf(pid);
  if (relative === undefined || relative === '/') return undefined;
  const mounts = cgroup2Mounts();
  for (const mount of mounts) {
    const path = join(mount, relative);
    if (isLaunchCgroup(path, marker, mounts) && cgroupExists(path)) return path;
  }
  return undefined;
}

// Which cgroup a pid is in now (its 0:: line, relative to the hierarchy's root), or undefined when it is gone.
export function cgroupOf(pid: number): string | undefined {
  try {
    return ownCgroupPath(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * The launcher step that puts the root in its cgroup before the command runs: `sh` writes its own pid into
 * `cgroup.procs`, then `exec`s the command in the same process (same pid, same start time), so every process
 * the command ever makes is born inside. A shell builtin (`echo`, redirect) costs ~1 ms and no extra process;
 * Node cannot move a child between fork and exec itself (no pre-exec hook, no clone3 CLONE_INTO_CGROUP), and a
 * move after spawn would race the command's first fork. The paths and argv go as positional parameters, never
 * into the script text, so nothing is interpolated. A failed write exits 125 with a line the launcher recognises.
 */
export const CGROUP_JOIN_FAILED = 'warden-cgroup-join-failed';
export function cgroupJoinArgv(cgroupPath: string, application: string, args: readonly string[]): { file: string; args: string[] } {
  const script = `echo $$ > "$1/cgroup.procs" || { echo "${CGROUP_JOIN_FAILED} $1" >&2; exit 125; }; shift; exec "$@"`;
  return { file: '/bin/sh', args: ['-c', script, 'warden-cgroup', cgroupPath, application, ...args] };
}
