// The signal strategy of the stop protocol (Linux without a cgroup, macOS): the owned set is collected from the
// table (tree, marker), frozen with SIGSTOP so no shell can relaunch behind us, then TERM, grace, KILL.
import { setTimeout as sleep } from 'node:timers/promises';
import { collectOwned } from '../ownership.js';
import type { OwnedProcess, OwnerRecord } from '../ownership.js';
import type { KilledProcess, Survivor, TerminationReport } from '../report.js';
import { signalGroup, signalProcess } from '../signal.js';
import type { SignalOutcome } from '../signal.js';
import { snapshot } from '../snapshot.js';
import type { TerminateOptions } from '../terminate-options.js';
import type { ProcessIdentity, ProcessTable } from '../types.js';

const identityOf = (owned: OwnedProcess): ProcessIdentity => ({ pid: owned.info.pid, startTime: owned.info.startTime });

// The POSIX signal protocol: shell first, freeze, TERM, grace, KILL, then read back until nothing owned is left.
export async function terminateBySignals(owner: OwnerRecord, options: TerminateOptions = {}): Promise<TerminationReport> {
  const started = performance.now();
  const graceMs = options.graceMs ?? 5000;
  const pollMs = options.pollIntervalMs ?? 20;
  const confirmMs = options.confirmTimeoutMs ?? 5000;
  const readTable = options.readTable ?? (() => snapshot({ cmdline: false, uid: false }));
  let reads = 0;
  // Start times are re-checked before each signal in the unit of the table they were read from.
  let tableClock: ProcessTable['backend'] = 'proc';
  let lastTable: ProcessTable | undefined;
  // Everything we ever saw, by pid, with the strongest signal sent; identities keep start times for re-checks.
  const seen = new Map<number, { owned: OwnedProcess; signal: KilledProcess['signal']; denied: boolean }>();
  const collect = async (): Promise<OwnedProcess[]> => {
    reads += 1;
    const table = await readTable();
    tableClock = table.backend;
    lastTable = table;
    const owned = collectOwned(owner, table, options.readMarker === undefined ? {} : { readMarker: options.readMarker });
    // Once proven ours, a process stays ours while its pid and start time hold: mid-exit its environment reads
    // empty and its parent may already be gone, so the proofs can lapse while it still exists (or hangs in D).
    const present = new Set(owned.map((entry) => entry.info.pid));
    for (const [pid, entry] of seen) {
      if (present.has(pid)) continue;
      const info = table.processes.get(pid);
      if (info === undefined || info.state === 'Z' || info.state === 'X') continue;
      if (info.startTime !== entry.owned.info.startTime) continue;
      owned.push({ ...entry.owned, info });
    }
    return owned;
  };

  const clockOf = (owned: OwnedProcess): ProcessIdentity => ({ ...identityOf(owned), clock: tableClock });
  const remember = (list: OwnedProcess[]): OwnedProcess[] => {
    const fresh: OwnedProcess[] = [];
    for (const owned of list) {
      if (!seen.has(owned.info.pid)) {
        seen.set(owned.info.pid, { owned, signal: 'none', denied: false });
        fresh.push(owned);
      }
    }
    return fresh;
  };
  const send = (owned: OwnedProcess, signal: NodeJS.Signals): SignalOutcome => {
    const outcome = signalProcess(clockOf(owned), signal);
    const entry = seen.get(owned.info.pid);
    if (entry !== undefined) {
      if (outcome === 'denied') entry.denied = true;
      if (outcome === 'sent' && (signal === 'SIGKILL' || (signal === 'SIGTERM' && entry.signal === 'none'))) {
        entry.signal = signal;
      }
    }
    return outcome;
  };
  let escalated = options.immediate === true;
  let current = await collect();
  remember(current);

  // 0. Ask politely while the tree still runs, then give it time to leave by itself.
  if (options.beforeSignals !== undefined && current.length > 0 && options.immediate !== true) {
    let delivered = true;
    try {
      // A hook that resolves `false` says the request never arrived (e.g. the server is not listening yet).
      delivered = (await options.beforeSignals()) !== false;
    } catch {
      // A refused or failed polite request only means we go on to signals.
      delivered = false;
    }
    const politeDeadline = performance.now() + (delivered ? (options.politeWaitMs ?? graceMs) : 0);
    const politeWait = backoffPoll(pollMs);
    while (current.length > 0 && performance.now() < politeDeadline && options.shouldHurry?.() !== true) {
      await sleep(politeWait());
      current = await collect();
      remember(current);
    }
  }

  if (current.length > 0 && options.immediate !== true) {
    // 1–2. Freeze the owned set, shells first, re-collecting until no new member appears.
    const frozen = new Set<number>();
    for (let round = 0; round < 50 && current.length > 0; round += 1) {
      const unfrozen = current.filter((owned) => !frozen.has(owned.info.pid));
      if (unfrozen.length === 0) break;
      for (const owned of unfrozen) {
        send(owned, 'SIGSTOP');
        frozen.add(owned.info.pid);
      }
      current = await collect();
      remember(current);
    }
    // Signal everything while frozen (nothing can react and respawn): wrappers first, then let them all run.
    const shellSignal = options.shellSignal ?? 'SIGKILL';
    for (const owned of current) send(owned, owned.role === 'shell' ? shellSignal : 'SIGTERM');
    for (const owned of current) send(owned, 'SIGCONT');

    // 3. Wait out the grace, re-reading; a newcomer at this point is a respawn attempt and gets SIGKILL.
    const graceDeadline = performance.now() + graceMs;
    const graceWait = backoffPoll(pollMs);
    while (current.length > 0 && performance.now() < graceDeadline && options.shouldHurry?.() !== true) {
      await sleep(graceWait());
      current = await collect();
      for (const fresh of remember(current)) send(fresh, 'SIGKILL');
    }
    if (current.length > 0) escalated = true;
  }

  // 4–5. SIGKILL what remains (group first when every member is provably ours), and confirm by re-reading.
  const confirmDeadline = performance.now() + confirmMs;
  const confirmWait = backoffPoll(pollMs);
  while (current.length > 0) {
    remember(current);
    const groupKilled = killGroupIfWhollyOurs(owner, current, lastTable);
    for (const owned of current) {
      const entry = seen.get(owned.info.pid);
      if (groupKilled && entry !== undefined && owned.info.pgid === owner.pgid) entry.signal = 'SIGKILL';
      send(owned, 'SIGKILL');
    }
    if (performance.now() >= confirmDeadline) break;
    // Only processes that refuse our signals are left: waiting out the confirmation cannot change that.
    if (current.every((owned) => seen.get(owned.info.pid)?.denied === true)) break;
    await sleep(confirmWait());
    current = await collect();
  }

  const survivors = current.map((owned): Survivor => {
    const denied = seen.get(owned.info.pid)?.denied === true;
    return { pid: owned.info.pid, name: owned.info.name, role: owned.role, reason: survivalReason(owned, denied), ...(denied && { denied }) };
  });
  const survivorPids = new Set(survivors.map((survivor) => survivor.pid));
  const killed: KilledProcess[] = [];
  for (const [pid, entry] of seen) {
    if (survivorPids.has(pid)) continue;
    killed.push({ pid, name: entry.owned.info.name, role: entry.owned.role, signal: entry.signal });
  }
  return { survivors, killed, escalated, durationMs: performance.now() - started, reads };
}

// Poll delays for one waiting phase: 1, 2, 4, 8 … ms up to `maxMs`. A cooperative tree is gone within a few ms
// of its signal, so the first reads come quickly; a slow one costs a /proc read every `maxMs` at most.
function backoffPoll(maxMs: number): () => number {
  let next = 1;
  return () => {
    const delay = Math.min(next, maxMs);
    next *= 2;
    return delay;
  };
}

// SIGKILLs the launch's process group in one call, only when every live member of it is in the owned set.
function killGroupIfWhollyOurs(owner: OwnerRecord, owned: OwnedProcess[], table: ProcessTable | undefined): boolean {
  const pgid = owner.pgid;
  if (pgid === undefined || table === undefined || table.backend !== 'proc') return false;
  const ownedPids = new Set(owned.map((entry) => entry.info.pid));
  let members = 0;
  for (const info of table.processes.values()) {
    if (info.pgid !== pgid || info.state === 'Z') continue;
    if (!ownedPids.has(info.pid)) return false;
    members += 1;
  }
  return members > 0 && signalGroup(pgid, 'SIGKILL') === 'sent';
}

function survivalReason(owned: OwnedProcess, denied: boolean): string {
  if (denied) return 'permission denied (EPERM): the process belongs to another user';
  if (owned.info.state === 'D') return 'uninterruptible sleep (state D): the kernel delivers SIGKILL when the I/O returns';
  return 'still alive after SIGKILL and the confirmation timeout';
}
