// The Windows stop protocol: kill every pid the tracker proves ours, cmd.exe parents first, then re-read until none is left.
import { setTimeout as sleepFor } from 'node:timers/promises';
import type { OwnedProcess } from '../ownership.js';
import { snapshot } from '../snapshot.js';
import type { KilledProcess, Survivor, TerminationReport } from '../report.js';
import type { ProcessTable } from '../types.js';
import { taskkillExecutor } from './kill.js';
import type { WindowsKillExecutor, WindowsKillResult } from './kill.js';
import { sequencedReader } from './tracker.js';
import type { WindowsTreeTracker } from './tracker.js';

/** Options of the Windows stop protocol; everything that touches the OS is injectable. */
export interface WindowsTerminateOptions {
  /** A polite request while the tree still runs (A1111's `POST /sdapi/v1/server-stop`); failures are ignored. */
  beforeSignals?: () => Promise<unknown>;
  /** How long to wait for the tree to leave by itself after `beforeSignals`. Default 5000. */
  politeWaitMs?: number;
  /** Skip the polite step and kill at once. */
  immediate?: boolean;
  /** Re-read interval. Default 100 (a fastlist read costs tens of milliseconds). */
  pollIntervalMs?: number;
  /** How long to keep re-reading and killing before reporting survivors. Default 10000. */
  confirmTimeoutMs?: number;
  /** Polled during the polite wait: returning true cuts it short (a second Ctrl-C). */
  shouldHurry?: () => boolean;
  /** Process-table reader. Default: `snapshot({ backend: 'ps-list', cmdline: false })` (fastlist), sequenced. */
  readTable?: () => Promise<ProcessTable>;
  /** Kill executor. Default `taskkillExecutor()`. */
  killer?: WindowsKillExecutor;
  /** Run the extra `/T` pass when the executor offers one. Default true. */
  treeKill?: boolean;
  /** Monotonic clock in milliseconds. Default `performance.now`. */
  now?: () => number;
  /** Sleep. Default `timers/promises` setTimeout. */
  sleep?: (ms: number) => Promise<void>;
}

// Per-process bookkeeping of one stop: the strongest thing done to it and the last refusal.
interface KillLedger {
  owned: OwnedProcess;
  signal: KilledProcess['signal'];
  refusal: WindowsKillResult | undefined;
}

// Stops every process the tracker proves ours (cmd.exe parents first, then top-down) and re-reads until none remains.
export async function terminateWindows(tracker: WindowsTreeTracker, options: WindowsTerminateOptions = {}): Promise<TerminationReport> {
  const now = options.now ?? (() => performance.now());
  const sleep = options.sleep ?? ((ms: number) => sleepFor(ms).then(() => undefined));
  const readTable = options.readTable ?? sequencedReader(() => snapshot({ backend: 'ps-list', cmdline: false }));
  const killer = options.killer ?? taskkillExecutor();
  const pollMs = options.pollIntervalMs ?? 100;
  const treeKill = options.treeKill !== false;
  const started = now();
  let reads = 0;
  let lastTable: ProcessTable | undefined;

  // One entry per process generation (pid + the listing it first appeared in), so a reused pid is a new entry.
  const ledger = new Map<string, KillLedger>();
  const keyOf = (owned: OwnedProcess): string => `${owned.info.pid}@${tracker.memberAt(owned.info.pid)?.firstSeen ?? -1}`;
  const collect = async (): Promise<OwnedProcess[]> => {
    reads += 1;
    lastTable = await tracker.refresh(readTable);
    const owned = tracker.owned(lastTable);
    for (const entry of owned) {
      const key = keyOf(entry);
      const known = ledger.get(key);
      if (known === undefined) ledger.set(key, { owned: entry, signal: 'none', refusal: undefined });
      else known.owned = entry; // a later listing may have given the name
    }
    return owned;
  };
  const record = (owned: OwnedProcess, result: WindowsKillResult): void => {
    const entry = ledger.get(keyOf(owned));
    if (entry === undefined) return;
    if (result.outcome === 'killed') {
      entry.signal = 'SIGKILL';
      entry.refusal = undefined;
    } else if ((result.outcome === 'denied' || result.outcome === 'failed') && entry.signal !== 'SIGKILL') {
      // After a successful kill, Windows refuses TerminateProcess on the exiting process: not a refusal.
      entry.refusal = result;
    }
  };

  let current = await collect();
  let escalated = options.immediate === true;

  // 0. Ask politely while the tree still runs (console programs get no SIGTERM), then let it leave by itself.
  if (options.beforeSignals !== undefined && current.length > 0 && options.immediate !== true) {
    try {
      await options.beforeSignals();
    } catch {
      // A refused or failed polite request only means we go on to kills.
    }
    const politeDeadline = now() + (options.politeWaitMs ?? 5000);
    while (current.length > 0 && now() < politeDeadline && options.shouldHurry?.() !== true) {
      await sleep(pollMs);
      current = await collect();
    }
  }

  // 1–5. Kill the job launcher (if any), cmd.exe parents next, then every owned pid top-down; re-read; newcomers join the next round.
  const confirmDeadline = now() + (options.confirmTimeoutMs ?? 10_000);
  for (let round = 0; current.length > 0; round += 1) {
    if (round > 0 && now() >= confirmDeadline) break;
    escalated = true;
    // The extra /T pass, only for subtrees in which every live process is ours (taskkill /T follows ppid
    // and may not check creation times, so a foreign process with a stale ppid would be hit).
    if (round > 0 && treeKill && killer.killTree !== undefined && lastTable !== undefined) {
      const tops = whollyOwnedSubtrees(current, lastTable);
      for (const { top, members } of tops) {
        const result = await killer.killTree(top.info.pid);
        record(top, result);
        if (result.outcome === 'killed') for (const member of members) record(member, result);
      }
      if (tops.length > 0) {
        current = await collect();
        if (current.length === 0) break;
      }
    }
    const [first] = current;
    if (tracker.job && first !== undefined && first.info.pid === tracker.root.pid) {
      // The job launcher: ending it closes the Job Object, and the kernel ends every member in one step.
      record(first, await killer.kill(first.info.pid));
      await sleep(pollMs);
      current = await collect();
      if (current.length === 0) break;
    }
    for (const owned of current) record(owned, await killer.kill(owned.info.pid));
    await sleep(pollMs);
    current = await collect();
  }

  const survivors = current.map((owned): Survivor => ({
    pid: owned.info.pid,
    name: owned.info.name,
    role: owned.role,
    reason: survivalReason(ledger.get(keyOf(owned))),
  }));
  const survivorKeys = new Set(current.map(keyOf));
  const killed: KilledProcess[] = [];
  for (const [key, entry] of ledger) {
    if (survivorKeys.has(key)) continue;
    killed.push({ pid: entry.owned.info.pid, name: entry.owned.info.name, role: entry.owned.role, signal: entry.signal });
  }
  return { survivors, killed, escalated, durationMs: now() - started, reads };
}

// Top-most owned processes whose whole live ppid-subtree in the table is owned: safe targets for taskkill /T.
function whollyOwnedSubtrees(owned: OwnedProcess[], table: ProcessTable): { top: OwnedProcess; members: OwnedProcess[] }[] {
  const children = new Map<number, number[]>();
  for (const info of table.processes.values()) {
    if (info.pid === info.ppid) continue;
    const siblings = children.get(info.ppid);
    if (siblings === undefined) children.set(info.ppid, [info.pid]);
    else siblings.push(info.pid);
  }
  const byPid = new Map(owned.map((entry) => [entry.info.pid, entry]));
  // The owned members of the subtree, or undefined as soon as one live descendant is not ours.
  const subtreeIfOurs = (pid: number): OwnedProcess[] | undefined => {
    const stack = [pid];
    const visited = new Set<number>();
    const members: OwnedProcess[] = [];
    while (stack.length > 0) {
      const next = stack.pop() as number;
      if (visited.has(next)) continue;
      visited.add(next);
      const entry = byPid.get(next);
      if (entry === undefined) return undefined;
      members.push(entry);
      stack.push(...(children.get(next) ?? []));
    }
    return members;
  };
  const subtrees: { top: OwnedProcess; members: OwnedProcess[] }[] = [];
  for (const entry of owned) {
    if (byPid.has(entry.info.ppid)) continue;
    const members = subtreeIfOurs(entry.info.pid);
    if (members !== undefined) subtrees.push({ top: entry, members });
  }
  return subtrees;
}

function survivalReason(entry: KillLedger | undefined): string {
  if (entry?.signal === 'SIGKILL') {
    return 'terminated but still listed: Windows keeps a process until its pending I/O (often a GPU driver call) completes';
  }
  const refusal = entry?.refusal;
  const detail = refusal?.detail !== undefined && refusal.detail !== '' ? `: ${refusal.detail}` : '';
  if (refusal?.outcome === 'denied') return `access denied: taskkill /F was refused (another user's, elevated or protected process)${detail}`;
  if (refusal?.outcome === 'failed') return `kill failed${detail}`;
  return 'still listed after taskkill /F and the confirmation timeout';
}
