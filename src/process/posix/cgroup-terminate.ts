// The stop protocol on the cgroup backend: the kernel's own view of the tree. Polite request → freeze (nothing
// can fork or relaunch) → SIGKILL shell wrappers, SIGTERM the rest, thaw → grace until `populated 0` →
// freeze + cgroup.kill → confirmed dead = `cgroup.events` says `populated 0` (watched, not polled) → rmdir.
import { readFileSync } from 'node:fs';
import { cgroupExists, cgroupMembers, freezeCgroup, isLaunchCgroup, killCgroup, readCgroupEvents, removeCgroup, waitCgroupEmpty, waitCgroupEvents } from './cgroup.js';
import { WardenError } from '../errors.js';
import type { OwnerRecord } from '../ownership.js';
import { readProcess } from './procfs.js';
import { classifyRole } from '../roles.js';
import type { KilledProcess, Survivor, TerminationReport } from '../report.js';
import type { TerminateOptions } from '../terminate-options.js';
import type { ProcessInfo, ProcessRole } from '../types.js';

/** How long the kernel may take to report a freeze done (it waits for each task to reach the freezer). */
const FREEZE_WAIT_MS = 1000;

// Stops every member of the owner's cgroup and confirms `populated 0`; the cgroup is removed once empty.
export async function terminateCgroup(owner: OwnerRecord & { cgroup: string }, options: TerminateOptions = {}): Promise<TerminationReport> {
  const started = performance.now();
  const path = owner.cgroup;
  if (!isLaunchCgroup(path, owner.marker)) {
    throw new WardenError('CGROUP_NOT_OURS', `Cannot stop "${owner.instanceId}" by cgroup: ${JSON.stringify(path)} is not a Warden launch cgroup of marker ${owner.marker} (expected <cgroup2 mount>/…/warden/<id>-<token>); nothing was signalled.`);
  }
  const graceMs = options.graceMs ?? 5000;
  const confirmMs = options.confirmTimeoutMs ?? 5000;
  let reads = 0;
  let escalated = options.immediate === true;
  const seen = new Map<number, { info: ProcessInfo; role: ProcessRole; signal: KilledProcess['signal'] }>();
  const report = (survivors: Survivor[]): TerminationReport => {
    const gone = new Set(survivors.map((survivor) => survivor.pid));
    const killed = [...seen.values()].filter((entry) => !gone.has(entry.info.pid)).map((entry) => ({ pid: entry.info.pid, name: entry.info.name, role: entry.role, signal: entry.signal }));
    const removed = survivors.length === 0 && removeCgroup(path);
    return { survivors, killed, escalated, durationMs: performance.now() - started, reads, containment: { backend: 'cgroup', cgroup: path, removed } };
  };
  if (!cgroupExists(path)) return report([]);

  // The live members now, remembered with their start time (a pid is signalled only while it is still in here).
  const members = (): ProcessInfo[] => {
    reads += 1;
    const live: ProcessInfo[] = [];
    for (const pid of cgroupMembers(path)) {
      if (pid === process.pid) continue;
      const info = readProcess(pid, false, false);
      if (info === undefined || info.state === 'Z' || info.state === 'X') continue;
      live.push(info);
      if (!seen.has(pid)) seen.set(pid, { info, role: classifyRole(info), signal: 'none' });
    }
    return live;
  };
  const send = (info: ProcessInfo, signal: 'SIGTERM' | 'SIGKILL'): void => {
    const entry = seen.get(info.pid);
    // Still the same process, still in our cgroup: frozen members cannot exit, so the pid cannot be reused under us.
    const now = readProcess(info.pid, false, false);
    if (entry === undefined || now === undefined || now.startTime !== entry.info.startTime || !inLaunchCgroup(info.pid, path)) return;
    try {
      process.kill(info.pid, signal);
      if (signal === 'SIGKILL' || entry.signal === 'none') entry.signal = signal;
    } catch {
      // gone meanwhile
    }
  };
  // Waits for populated 0 up to `ms`, in slices so a hurry request cuts it short.
  const waitEmpty = async (ms: number): Promise<boolean> => {
    const deadline = performance.now() + ms;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      if (await waitCgroupEmpty(path, options.shouldHurry === undefined ? left : Math.min(left, 50))) return true;
      if (options.shouldHurry?.() === true) return false;
    }
  };

  let current = members();
  let empty = current.length === 0;
  try {
    // 0. Ask politely while the tree still runs, then give it time to leave by itself.
    if (!empty && options.beforeSignals !== undefined && options.immediate !== true) {
      let delivered = true;
      try {
        delivered = (await options.beforeSignals()) !== false;
      } catch {
        delivered = false;
      }
      if (delivered) empty = await waitEmpty(options.politeWaitMs ?? graceMs);
    }

    // 1–3. Freeze, signal while frozen (wrappers SIGKILL: a frozen wrapper cannot relaunch, a dead one never will), thaw, grace.
    if (!empty && options.immediate !== true) {
      freezeCgroup(path, true);
      await waitCgroupEvents(path, (events) => events === undefined || events.frozen || !events.populated, FREEZE_WAIT_MS);
      current = members();
      const shellSignal = options.shellSignal ?? 'SIGKILL';
      for (const info of current) send(info, classifyRole(info) === 'shell' ? shellSignal : 'SIGTERM');
      freezeCgroup(path, false);
      empty = await waitEmpty(graceMs);
    }

    // 4. Freeze again (no fork races the kill) and kill the whole cgroup in one write; 5. confirmed = populated 0.
    if (!empty) {
      escalated = true;
      freezeCgroup(path, true);
      for (const info of members()) {
        const entry = seen.get(info.pid);
        if (entry !== undefined) entry.signal = 'SIGKILL';
      }
      killCgroup(path);
      empty = await waitCgroupEmpty(path, confirmMs);
    }
  } catch (error) {
    // A concurrent stop of the same tree (a stale reap racing a stop) removed the cgroup under us. The kernel only
    // lets an empty cgroup be removed, so its absence is the proof: nothing is left. Anything else is a real fault.
    if (cgroupExists(path)) throw error;
    empty = true;
  } finally {
    // Never leave a tree frozen (a failed write, a survivor): a frozen process can neither exit nor be reaped.
    if (readCgroupEvents(path)?.frozen === true) freezeCgroup(path, false);
  }
  if (empty) {
    await exitsVisible([...seen.values()].map((entry) => entry.info));
    return report([]);
  }
  const survivors = members().map((info): Survivor => ({
    pid: info.pid,
    name: info.name,
    role: classifyRole(info),
    reason: info.state === 'D' ? 'uninterruptible sleep (state D): the kernel delivers SIGKILL when the I/O returns' : `still in cgroup ${path} after cgroup.kill and ${confirmMs} ms`,
  }));
  return report(survivors);
}

/** How long /proc may lag behind `populated 0` before the report is returned anyway (the proof is the kernel's). */
const EXIT_VISIBLE_MS = 200;

// `populated 0` comes from cgroup_exit() inside do_exit(), a moment before the task turns zombie: wait (briefly)
// until /proc agrees too, so nobody reading the table right after a confirmed stop sees a member still "running".
async function exitsVisible(members: ProcessInfo[]): Promise<void> {
  const deadline = performance.now() + EXIT_VISIBLE_MS;
  const running = (info: ProcessInfo): boolean => {
    const now = readProcess(info.pid, false, false);
    return now !== undefined && now.startTime === info.startTime && now.state !== 'Z' && now.state !== 'X';
  };
  let pending = members.filter(running);
  while (pending.length > 0 && performance.now() < deadline) {
    await new Promise((resolveLater) => setTimeout(resolveLater, 1));
    pending = pending.filter(running);
  }
}

// Whether the pid's cgroup (its 0:: line) is the launch cgroup or one below it. Launch cgroups always end in
// `/warden/<id>-<token>` (isLaunchCgroup), so that tail identifies them whatever the hierarchy's mount point.
function inLaunchCgroup(pid: number, path: string): boolean {
  const tail = path.slice(path.lastIndexOf('/warden/'));
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((entry) => entry.startsWith('0::'));
    return line !== undefined && (line.endsWith(tail) || line.includes(`${tail}/`));
  } catch {
    return false;
  }
}
