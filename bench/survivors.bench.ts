// Benchmark 2: survivors on tree (b). Launch `bash webui.sh --port 0 --workers 8`, touch <stateDir>/tmp/restart,
// SIGKILL the middle Python (launch.py): bash relaunches it (a new launch.py + 8 new workers) and the 8 old workers
// are orphaned (reparented to init or the nearest subreaper). Then either
//   (i)  tree-kill(root, SIGTERM) → marker-carrying processes still alive 1 s after its callback, or
//   (ii) Warden terminate(handle, { graceMs: 5000 }) → its survivors, read back by the marker.
//
//   npx tsx bench/survivors.bench.ts [--survivor-rounds 5]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import treeKill from 'tree-kill';
import { signalProcess, snapshotProcSync, terminate } from '../src/process/index.js';
import {
  cleanupTree,
  launchTree,
  machineInfo,
  markedAlive,
  ms,
  numberFlag,
  printMachine,
  runStandalone,
  stats,
  table,
  waitUntilUp,
  writeResults,
} from './lib.js';
import type { BenchTree, MachineInfo, MarkedProcess, Stats } from './lib.js';

const GRACE_MS = 5000;
const TREE_KILL_SETTLE_MS = 1000;

/** Tree (b) once it has settled: who is who, by pid. */
interface TreeB {
  tree: BenchTree;
  rootPid: number;
  oldPython: number;
  oldWorkers: number[];
  newPython: number;
  newWorkers: number[];
  /** ppid of the orphaned old workers after the crash (1 = init, else a subreaper). */
  orphanParents: number[];
  owned: number;
}

interface TreeKillRound {
  round: number;
  owned: number;
  callbackMs: number;
  aliveAfter1s: number;
  /** Of those, how many are the orphaned old workers. */
  orphansAlive: number;
  /** Of those, how many belong to the live tree (bash, new launch.py, new workers). */
  liveTreeAlive: number;
  alive: MarkedProcess[];
  reapedByTerminate: number;
}

interface WardenRound {
  round: number;
  owned: number;
  ms: number;
  survivors: number;
  killed: number;
  escalated: boolean;
  markedAfter: number;
}

export interface SurvivorsBenchResult {
  name: 'survivors';
  machine: MachineInfo;
  tree: string;
  rounds: number;
  orphanParents: number[];
  treeKill: { aliveAfter1s: Stats; orphansAlive: Stats; liveTreeAlive: Stats; reapedTotal: number; callbackMs: Stats };
  warden: { survivors: Stats; markedAfter: Stats; ms: Stats; killed: Stats; escalations: number };
  raw: { treeKill: TreeKillRound[]; warden: WardenRound[] };
}

// Builds tree (b): tree (a) up, restart file touched, launch.py SIGKILLed, wrapper relaunched, orphans in place.
async function buildTreeB(): Promise<TreeB> {
  const tree = await launchTree(['--workers', '8']);
  try {
    const before = await waitUntilUp(tree, 9, 1);
    const rootPid = tree.handle.root.pid;
    const oldPythonEntry = before.find((entry) => entry.role === 'python' && entry.info.ppid === rootPid);
    if (oldPythonEntry === undefined) throw new Error('tree (b): no launch.py under the root');
    const oldPython = oldPythonEntry.info.pid;
    const oldWorkers = before.filter((entry) => entry.info.ppid === oldPython).map((entry) => entry.info.pid);
    if (oldWorkers.length !== 8) throw new Error(`tree (b): expected 8 workers, found ${oldWorkers.length}`);

    mkdirSync(join(tree.stateDir, 'tmp'), { recursive: true });
    writeFileSync(join(tree.stateDir, 'tmp', 'restart'), '');
    // The crash: SIGKILL launch.py, identity (pid + start time) re-checked right before the signal.
    const outcome = signalProcess({ pid: oldPython, startTime: oldPythonEntry.info.startTime, clock: 'proc' }, 'SIGKILL');
    if (outcome !== 'sent') throw new Error(`tree (b): SIGKILL of launch.py ${oldPython}: ${outcome}`);

    // The wrapper relaunches: 1 new launch.py + 8 new workers, next to the 8 orphans (17 Pythons owned).
    const after = await waitUntilUp(tree, 17, 2);
    const table = snapshotProcSync(false);
    const newPythonEntry = after.find((entry) => entry.role === 'python' && entry.info.ppid === rootPid);
    if (newPythonEntry === undefined || newPythonEntry.info.pid === oldPython) throw new Error('tree (b): no relaunched launch.py');
    const newPython = newPythonEntry.info.pid;
    const newWorkers = after.filter((entry) => entry.info.ppid === newPython).map((entry) => entry.info.pid);
    const orphanParents = [...new Set(oldWorkers.map((pid) => table.processes.get(pid)?.ppid ?? -1))];
    if (orphanParents.includes(oldPython)) throw new Error('tree (b): old workers were not reparented');
    return { tree, rootPid, oldPython, oldWorkers, newPython, newWorkers, orphanParents, owned: after.length };
  } catch (error) {
    await cleanupTree(tree);
    throw error;
  }
}

async function treeKillRound(round: number): Promise<{ result: TreeKillRound; orphanParents: number[] }> {
  const b = await buildTreeB();
  let measured: Omit<TreeKillRound, 'reapedByTerminate'>;
  try {
    const started = performance.now();
    await new Promise<void>((resolveKill) => {
      treeKill(b.rootPid, 'SIGTERM', () => resolveKill());
    });
    const callbackMs = performance.now() - started;
    await sleep(TREE_KILL_SETTLE_MS);
    const alive = markedAlive(b.tree.handle.marker);
    const orphans = new Set(b.oldWorkers);
    const orphansAlive = alive.filter((p) => orphans.has(p.pid)).length;
    measured = {
      round,
      owned: b.owned,
      callbackMs,
      aliveAfter1s: alive.length,
      orphansAlive,
      liveTreeAlive: alive.length - orphansAlive,
      alive,
    };
  } catch (error) {
    await cleanupTree(b.tree);
    throw error;
  }
  const cleanup = await cleanupTree(b.tree);
  return { result: { ...measured, reapedByTerminate: cleanup.reaped }, orphanParents: b.orphanParents };
}

async function wardenRound(round: number): Promise<{ result: WardenRound; orphanParents: number[] }> {
  const b = await buildTreeB();
  try {
    const started = performance.now();
    const report = await terminate(b.tree.handle, { graceMs: GRACE_MS });
    const elapsed = performance.now() - started;
    const after = markedAlive(b.tree.handle.marker);
    return {
      result: {
        round,
        owned: b.owned,
        ms: elapsed,
        survivors: report.survivors.length,
        killed: report.killed.length,
        escalated: report.escalated,
        markedAfter: after.length,
      },
      orphanParents: b.orphanParents,
    };
  } finally {
    await cleanupTree(b.tree);
  }
}

export async function runSurvivorsBench(options: { rounds?: number; quiet?: boolean } = {}): Promise<SurvivorsBenchResult> {
  const rounds = options.rounds ?? 5;
  const log = options.quiet === true ? () => undefined : (line: string) => console.log(line);
  const machine = machineInfo();
  log(`\n== 2. survivors on tree (b): restart file + launch.py SIGKILLed → relaunched, 8 orphans; ${rounds} rounds each, alternating ==`);
  const killer: TreeKillRound[] = [];
  const warden: WardenRound[] = [];
  const parents = new Set<number>();
  for (let round = 0; round < rounds; round += 1) {
    const k = await treeKillRound(round);
    const w = await wardenRound(round);
    killer.push(k.result);
    warden.push(w.result);
    for (const p of [...k.orphanParents, ...w.orphanParents]) parents.add(p);
    log(
      `  round ${round + 1}: tree-kill leaves ${k.result.aliveAfter1s}/${k.result.owned} alive after 1 s ` +
        `(${k.result.orphansAlive} orphaned old workers)   warden: ${w.result.survivors} survivors, ${w.result.markedAfter} marked alive after, ${ms(w.result.ms)} ms`,
    );
  }
  const result: SurvivorsBenchResult = {
    name: 'survivors',
    machine,
    tree: 'tree (b): bash webui.sh --workers 8, tmp/restart touched, launch.py SIGKILLed → bash relaunches it (+8 new workers); 8 old workers orphaned',
    rounds,
    orphanParents: [...parents],
    treeKill: {
      aliveAfter1s: stats(killer.map((r) => r.aliveAfter1s)),
      orphansAlive: stats(killer.map((r) => r.orphansAlive)),
      liveTreeAlive: stats(killer.map((r) => r.liveTreeAlive)),
      reapedTotal: killer.reduce((sum, r) => sum + r.reapedByTerminate, 0),
      callbackMs: stats(killer.map((r) => r.callbackMs)),
    },
    warden: {
      survivors: stats(warden.map((r) => r.survivors)),
      markedAfter: stats(warden.map((r) => r.markedAfter)),
      ms: stats(warden.map((r) => r.ms)),
      killed: stats(warden.map((r) => r.killed)),
      escalations: warden.filter((r) => r.escalated).length,
    },
    raw: { treeKill: killer, warden },
  };
  const owned = killer[0]?.owned ?? warden[0]?.owned ?? 0;
  log('');
  log(
    table(
      ['tree (b), per round', 'rounds', 'owned before', 'alive after (median)', 'min', 'max', 'of which orphans (median)'],
      [
        ['tree-kill(root, SIGTERM), +1 s', rounds, owned, result.treeKill.aliveAfter1s.median, result.treeKill.aliveAfter1s.min, result.treeKill.aliveAfter1s.max, result.treeKill.orphansAlive.median],
        ['warden terminate (read back)', rounds, owned, result.warden.markedAfter.median, result.warden.markedAfter.min, result.warden.markedAfter.max, 0],
      ],
    ),
  );
  log(
    `orphans reparented to pid ${result.orphanParents.join(', ')}; warden reported ${warden.reduce((s, r) => s + r.survivors, 0)} survivors in total, ` +
      `killed ${result.warden.killed.median} per round (median), ${ms(result.warden.ms.median)} ms median, ${result.warden.escalations} escalations; ` +
      `cleanup reaped ${result.treeKill.reapedTotal} processes tree-kill left`,
  );
  const path = writeResults('survivors', result);
  log(`results: ${path}`);
  return result;
}

runStandalone(import.meta.url, async (argv) => {
  printMachine(machineInfo());
  await runSurvivorsBench({ rounds: numberFlag(argv, '--survivor-rounds', 5) });
});
