// Containment backends: how the kernel (or the nearest thing to it) holds an instance's tree, chosen at start.
//   cgroup    — one cgroup v2 per launch; membership is the proof, freeze + cgroup.kill the stop, populated 0 the proof of death
//   subreaper — a per-launch shim with PR_SET_CHILD_SUBREAPER: orphans and setsid escapees reparent to it, so the tree walk finds them
//   marker    — the environment marker, pid + start time and the process group only (the last resort)
// Windows reports `job-object` when the tree runs in a kill-on-close Job Object (windowsJob), else `marker`.
import { createRequire } from 'node:module';
import { WardenError } from './errors.js';
import { probeCgroup } from './posix/cgroup.js';

/** A containment backend. */
export type ContainmentBackend = 'cgroup' | 'subreaper' | 'marker' | 'job-object';

/** What a config may ask for: `auto` takes the strongest available. */
export type ContainmentRequest = 'auto' | 'cgroup' | 'subreaper' | 'marker';

/** The backend chosen for an instance, and why (reported in status, metrics and `warden audit`). */
export interface ContainmentChoice {
  backend: ContainmentBackend;
  /** Where launch cgroups go (`<hierarchy>/warden`), for `cgroup`. */
  cgroupParent?: string;
  reason: string;
}

/** An explicitly requested backend that this machine cannot provide; thrown before anything spawns. */
export class ContainmentError extends WardenError {}

// Whether a child subreaper can be set here: Linux (prctl PR_SET_CHILD_SUBREAPER, 3.4+) with koffi loadable.
export function probeSubreaper(): { ok: true; reason: string } | { ok: false; reason: string } {
  if (process.platform !== 'linux') return { ok: false, reason: `PR_SET_CHILD_SUBREAPER is Linux-only (this is ${process.platform})` };
  try {
    const koffi = createRequire(import.meta.url)('koffi') as { load(path: string): { func(signature: string): unknown } };
    koffi.load('libc.so.6').func('int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)');
    return { ok: true, reason: 'prctl(PR_SET_CHILD_SUBREAPER) through koffi' };
  } catch (error) {
    return { ok: false, reason: `koffi cannot load prctl from libc: ${(error as Error).message}` };
  }
}

let cachedCgroup: ReturnType<typeof probeCgroup> | undefined;

/** The machine checks `chooseContainment` makes; tests replace them to prove the refusals without changing the machine. */
export interface ContainmentProbes {
  cgroup?: typeof probeCgroup;
  subreaper?: typeof probeSubreaper;
  platform?: NodeJS.Platform;
}

// Chooses the backend for `request` (`auto` by default); an explicit backend that is unavailable throws
// ContainmentError naming the instance and what is missing, never a silent fallback.
export function chooseContainment(request: ContainmentRequest = 'auto', context: { instanceId?: string; windowsJob?: boolean } = {}, probes: ContainmentProbes = {}): ContainmentChoice {
  const who = context.instanceId === undefined ? '' : ` for "${context.instanceId}"`;
  const platform = probes.platform ?? process.platform;
  const checkSubreaper = probes.subreaper ?? probeSubreaper;
  if (platform === 'win32') {
    if (request === 'cgroup' || request === 'subreaper') {
      throw new ContainmentError('CONTAINMENT_UNAVAILABLE', `containment "${request}"${who} is not available on Windows (the kill-on-close Job Object, windowsJob, is Windows's containment)`);
    }
    return context.windowsJob === false
      ? { backend: 'marker', reason: 'Windows with windowsJob: false: tree tracker and guard only' }
      : { backend: 'job-object', reason: 'Windows: kill-on-close Job Object (windowsJob)' };
  }
  if (request === 'marker') return { backend: 'marker', reason: 'containment "marker" requested: environment marker, pid + start time, process group' };
  if (request === 'auto' || request === 'cgroup') {
    const cgroup = probes.cgroup !== undefined ? probes.cgroup() : (cachedCgroup ??= probeCgroup());
    if (cgroup.ok) return { backend: 'cgroup', cgroupParent: cgroup.parent, reason: cgroup.reason };
    if (request === 'cgroup') throw new ContainmentError('CONTAINMENT_UNAVAILABLE', `containment "cgroup"${who} is not available: ${cgroup.reason}`);
    const subreaper = checkSubreaper();
    if (subreaper.ok) return { backend: 'subreaper', reason: `auto: ${cgroup.reason}; using a child subreaper (${subreaper.reason})` };
    return { backend: 'marker', reason: `auto: ${cgroup.reason}; ${subreaper.reason}; marker only` };
  }
  const subreaper = checkSubreaper();
  if (subreaper.ok) return { backend: 'subreaper', reason: `containment "subreaper" requested: ${subreaper.reason}` };
  throw new ContainmentError('CONTAINMENT_UNAVAILABLE', `containment "subreaper"${who} is not available: ${subreaper.reason}`);
}

// Forgets the cached cgroup probe (tests that change the machine's cgroups).
export function resetContainmentProbe(): void {
  cachedCgroup = undefined;
}
