// Benchmark 1: stop-to-confirmed-dead (Warden terminate) vs tree-kill's time to merely signal, on tree (a):
// `bash webui.sh --port 0 --workers 8` (bash → launch.py → 8 workers), cooperative. Alternating rounds, same run.
//
//   npx tsx bench/terminate.bench.ts [--rounds 20] [--profile-rounds 8]
import { setTimeout as sleep } from 'node:timers/promises';
import treeKill from 'tree-kill';
import { snapshot, snapshotProcSync, terminate } from '../src/process/index.js';
import type { OwnedProcess, ProcessTable, TerminateOptions } from '../src/process/index.js';
import { environReadable, readStartTime } from '../src/process/posix/procfs.js';
import {
  cleanupTree,
  launchTree,
  machineInfo,
  markedAlive,
  ms,
  numberFlag,
  printMachine,
  round2,
  runStandalone,
  stats,
  table,
  waitFor,
  waitUntilUp,
  writeResults,
} from './lib.js';
import type { BenchTree, MachineInfo, Stats } from './lib.js';

export const TREE_A_ARGS = ['--workers', '8'] as const;
const PYTHONS_A = 9; // launch.py + 8 workers
const GRACE_MS = 5000;
const TREE_KILL_SETTLE_MS = 1000;

interface WardenRound {
  round: number;
  ms: number;
  reportMs: number;
  owned: number;
  survivors: number;
  killed: number;
  escalated: boolean;
  reads: number;
  markedAfter: number;
  /** Tree pids (recorded before the stop) still in /proc and not zombies at the instant terminate returned. */
  presentAtReturn: string[];
}

interface TreeKillRound {
  round: number;
  ms: number;
  error: string | undefined;
  owned: number;
  aliveAfter1s: number;
  alivePids: number[];
  reapedByTerminate: number;
}

/** One instrumented Warden round: where terminate's wall time goes. */
interface ProfileRound {
  pollIntervalMs: number;
  totalMs: number;
  reads: number;
  readMs: number;
  markerReads: number;
  markerMs: number;
  signals: number;
  /** start → first SIGSTOP (first collect: table read + ownership). */
  collectMs: number;
  /** first SIGSTOP → first SIGTERM/SIGKILL (freeze + re-collect). */
  freezeMs: number;
  /** first SIGTERM/SIGKILL → last SIGCONT. */
  signalMs: number;
  /** last SIGCONT → return (grace polling until the table shows nothing owned). */
  waitMs: number;
  /** last SIGCONT → every tree pid gone or a zombie, seen by a 1 ms side observer. */
  actualDeathMs: number | undefined;
  /** last SIGCONT → death of each part of the tree (1 ms observer): bash, launch.py, the last worker. */
  deathMs: { shell: number | undefined; launchPy: number | undefined; lastWorker: number | undefined; firstWorker: number | undefined };
  /** Reads after the last SIGCONT, with the number of tree pids still alive in each. */
  pollTimeline: { atMs: number; readMs: number; alive: number; aliveStates: string[] }[];
}

export interface TerminateBenchResult {
  name: 'terminate';
  machine: MachineInfo;
  command: string;
  tree: string;
  rounds: number;
  warden: Stats;
  treeKill: Stats;
  /** median(warden) / median(tree-kill). */
  ratioOfMedians: number;
  /** median over pairs (round i) of warden_i / tree-kill_i. */
  medianPairRatio: number;
  goal: number;
  goalMet: boolean;
  wardenSurvivorsTotal: number;
  wardenMarkedAfterTotal: number;
  wardenEscalations: number;
  /** Headline Warden rounds where terminate returned while a tree process was still in /proc, not a zombie. */
  wardenReturnedWhilePresent: number;
  wardenPresentAtReturn: string[][];
  treeKillAliveAfter1s: Stats;
  treeKillReapedTotal: number;
  profile: {
    rounds: ProfileRound[];
    medians: Record<string, number>;
  };
  /** Interleaved rounds: Warden at poll 20 / 5 / 2 ms and tree-kill, ratios against that tree-kill median. */
  pollSensitivity: {
    pollIntervalMs: number;
    stats: Stats;
    ratioToTreeKillMedian: number;
    /** Rounds where terminate returned while a tree process was still in /proc and not a zombie. */
    roundsReturnedWhileTreeProcessPresent: number;
    presentAtReturn: string[][];
  }[];
  pollSensitivityTreeKill: Stats;
  raw: { warden: WardenRound[]; treeKill: TreeKillRound[] };
}

// Launch tree (a) and wait until it is fully up: 9 Pythons owned, "Running on" printed, every member asleep.
async function readyTree(): Promise<{ tree: BenchTree; owned: number; pids: number[]; members: OwnedProcess[] }> {
  const tree = await launchTree(TREE_A_ARGS);
  try {
    const owned = await waitUntilUp(tree, PYTHONS_A);
    await waitFor(
      () => owned.every((entry) => readStartTime(entry.info.pid)?.state === 'S'),
      5000,
      'every tree member to be asleep',
    );
    await sleep(50);
    return { tree, owned: owned.length, pids: owned.map((entry) => entry.info.pid), members: owned };
  } catch (error) {
    await cleanupTree(tree);
    throw error;
  }
}

async function wardenRound(round: number, options: Partial<TerminateOptions> = {}): Promise<WardenRound> {
  const { tree, owned, pids, members } = await readyTree();
  try {
    const started = performance.now();
    const report = await terminate(tree.handle, { graceMs: GRACE_MS, ...options });
    const elapsed = performance.now() - started;
    const presentAtReturn = presentNow(pids, members, tree.handle.root.pid);
    const after = markedAlive(tree.handle.marker);
    return {
      round,
      ms: elapsed,
      reportMs: report.durationMs,
      owned,
      survivors: report.survivors.length,
      killed: report.killed.length,
      escalated: report.escalated,
      reads: report.reads,
      markedAfter: after.length,
      presentAtReturn,
    };
  } finally {
    await cleanupTree(tree);
  }
}

// Which of the recorded tree pids are still in /proc and not zombies right now, as "role:state".
function presentNow(pids: number[], members: OwnedProcess[], rootPid: number): string[] {
  const launchPy = members.find((m) => m.role === 'python' && m.info.ppid === rootPid)?.info.pid;
  const present: string[] = [];
  for (const pid of pids) {
    const now = readStartTime(pid);
    if (now === undefined || now.state === 'Z' || now.state === 'X') continue;
    const start = members.find((m) => m.info.pid === pid)?.info.startTime;
    if (start !== undefined && now.startTime !== start) continue; // pid reused: not ours
    // An exiting process has released its memory: /proc/PID/environ reads empty, so its marker cannot be read.
    const environ = environReadable(pid) ? 'environ readable' : 'environ empty';
    const ppid = snapshotProcSync(false).processes.get(pid)?.ppid;
    present.push(`${pid === rootPid ? 'bash' : pid === launchPy ? 'launch.py' : 'worker'}:${now.state} (${environ}, ppid ${ppid})`);
  }
  return present;
}

async function treeKillRound(round: number): Promise<TreeKillRound> {
  const { tree, owned } = await readyTree();
  let measured: Omit<TreeKillRound, 'reapedByTerminate'>;
  try {
    const started = performance.now();
    const error = await new Promise<Error | undefined>((resolveKill) => {
      treeKill(tree.handle.root.pid, 'SIGTERM', (err) => resolveKill(err ?? undefined));
    });
    const elapsed = performance.now() - started;
    await sleep(TREE_KILL_SETTLE_MS);
    const alive = markedAlive(tree.handle.marker);
    measured = { round, ms: elapsed, error: error?.message, owned, aliveAfter1s: alive.length, alivePids: alive.map((p) => p.pid) };
  } catch (error) {
    await cleanupTree(tree);
    throw error;
  }
  // Whatever tree-kill left is reaped by terminate({ immediate: true }) and counted as tree-kill's survivors.
  const cleanup = await cleanupTree(tree);
  return { ...measured, reapedByTerminate: cleanup.reaped };
}

// An instrumented Warden round: times table reads, marker reads and every signal; a side observer notes actual death.
async function profileRound(pollIntervalMs: number): Promise<ProfileRound> {
  const { tree, pids, members } = await readyTree();
  const rootPid = tree.handle.root.pid;
  const launchPy = members.find((m) => m.role === 'python' && m.info.ppid === rootPid)?.info.pid;
  const workers = members.filter((m) => m.info.ppid === launchPy).map((m) => m.info.pid);
  const diedAt = new Map<number, number>();
  const { readEnvironVariable } = await import('../src/process/posix/procfs.js');
  const signals: { at: number; pid: number; signal: string }[] = [];
  const reads: { at: number; readMs: number; alive: number; aliveStates: string[] }[] = [];
  let markerReads = 0;
  let markerMs = 0;
  let readMs = 0;
  const treeAlive = (t: ProcessTable): number =>
    pids.filter((pid) => {
      const info = t.processes.get(pid);
      return info !== undefined && info.state !== 'Z' && info.state !== 'X';
    }).length;
  const aliveNow = (): number =>
    pids.filter((pid) => {
      const now = readStartTime(pid);
      return now !== undefined && now.state !== 'Z' && now.state !== 'X';
    }).length;

  const originalKill = process.kill;
  let started = 0;
  let lastCont = 0;
  let deadAt: number | undefined;
  const observer = setInterval(() => {
    if (lastCont === 0 || deadAt !== undefined) return;
    const now = performance.now();
    for (const pid of pids) {
      if (diedAt.has(pid)) continue;
      const state = readStartTime(pid)?.state;
      if (state === undefined || state === 'Z' || state === 'X') diedAt.set(pid, now);
    }
    if (aliveNow() === 0) deadAt = now;
  }, 1);
  try {
    process.kill = ((pid: number, signal?: string | number) => {
      const at = performance.now();
      signals.push({ at, pid, signal: String(signal) });
      if (signal === 'SIGCONT') lastCont = at;
      return originalKill.call(process, pid, signal);
    }) as typeof process.kill;
    started = performance.now();
    const report = await terminate(tree.handle, {
      graceMs: GRACE_MS,
      pollIntervalMs,
      readTable: async () => {
        const t0 = performance.now();
        // The same read terminate makes by default (src/process/posix/signal-terminate.ts: cmdline and uid skipped).
        const result = await snapshot({ cmdline: false, uid: false });
        const t1 = performance.now();
        readMs += t1 - t0;
        const aliveStates = pids
          .map((pid) => ({ pid, info: result.processes.get(pid) }))
          .filter(({ info }) => info !== undefined && info.state !== 'Z' && info.state !== 'X')
          .map(({ pid, info }) => `${pid === rootPid ? 'bash' : pid === launchPy ? 'launch.py' : 'worker'}:${info?.state}`);
        reads.push({ at: t0, readMs: t1 - t0, alive: treeAlive(result), aliveStates });
        return result;
      },
      readMarker: (pid) => {
        const t0 = performance.now();
        const value = readEnvironVariable(pid, 'WARDEN_INSTANCE');
        markerMs += performance.now() - t0;
        markerReads += 1;
        return value;
      },
    });
    const total = performance.now() - started;
    if (report.survivors.length > 0) throw new Error(`profile round left ${report.survivors.length} survivor(s)`);
    const firstStop = signals.find((s) => s.signal === 'SIGSTOP')?.at ?? started;
    const firstTerm = signals.find((s) => s.signal === 'SIGTERM' || s.signal === 'SIGKILL')?.at ?? firstStop;
    const end = started + total;
    return {
      pollIntervalMs,
      totalMs: total,
      reads: reads.length,
      readMs,
      markerReads,
      markerMs,
      signals: signals.length,
      collectMs: firstStop - started,
      freezeMs: firstTerm - firstStop,
      signalMs: lastCont - firstTerm,
      waitMs: end - lastCont,
      actualDeathMs: deadAt === undefined ? undefined : deadAt - lastCont,
      deathMs: (() => {
        const rel = (pid: number | undefined): number | undefined => {
          const at = pid === undefined ? undefined : diedAt.get(pid);
          return at === undefined ? undefined : at - lastCont;
        };
        const workerTimes = workers.map(rel).filter((value): value is number => value !== undefined);
        return {
          shell: rel(rootPid),
          launchPy: rel(launchPy),
          firstWorker: workerTimes.length > 0 ? Math.min(...workerTimes) : undefined,
          lastWorker: workerTimes.length === workers.length && workerTimes.length > 0 ? Math.max(...workerTimes) : undefined,
        };
      })(),
      pollTimeline: reads
        .filter((r) => r.at > lastCont)
        .map((r) => ({ atMs: round2(r.at - lastCont), readMs: round2(r.readMs), alive: r.alive, aliveStates: r.aliveStates })),
    };
  } finally {
    clearInterval(observer);
    process.kill = originalKill;
    await cleanupTree(tree);
  }
}

export async function runTerminateBench(options: { rounds?: number; profileRounds?: number; quiet?: boolean } = {}): Promise<TerminateBenchResult> {
  const rounds = options.rounds ?? 20;
  const profileRounds = options.profileRounds ?? 8;
  const machine = machineInfo();
  const log = options.quiet === true ? () => undefined : (line: string) => console.log(line);
  log(`\n== 1. stop-to-confirmed-dead, tree (a): bash webui.sh --port 0 --workers 8 (cooperative), ${rounds} rounds each, alternating ==`);

  // One untimed warmup of each, so module loading and the first ps spawn are not measured.
  await wardenRound(-1);
  await treeKillRound(-1);

  const warden: WardenRound[] = [];
  const killer: TreeKillRound[] = [];
  for (let round = 0; round < rounds; round += 1) {
    warden.push(await wardenRound(round));
    killer.push(await treeKillRound(round));
    const w = warden[round] as WardenRound;
    const k = killer[round] as TreeKillRound;
    if (options.quiet !== true) {
      process.stdout.write(
        `  round ${String(round + 1).padStart(2)}: warden ${ms(w.ms).padStart(6)} ms (survivors ${w.survivors}, reads ${w.reads})` +
          `   tree-kill ${ms(k.ms).padStart(6)} ms (alive after 1 s: ${k.aliveAfter1s})\n`,
      );
    }
  }

  // Where Warden's time goes (instrumented rounds, not part of the headline figures).
  const profiles: ProfileRound[] = [];
  for (let i = 0; i < profileRounds; i += 1) profiles.push(await profileRound(20));
  // Sensitivity: the same protocol with shorter re-read intervals (a public option, no code change), interleaved
  // with the default interval and with tree-kill so the ratios compare rounds taken at the same time.
  const killStats = stats(killer.map((r) => r.ms));
  const variants: (number | 'tree-kill')[] = [20, 5, 2, 'tree-kill'];
  const sensitivityTimes = new Map<number | 'tree-kill', number[]>(variants.map((v) => [v, []]));
  const sensitivityPresent = new Map<number, string[][]>([[20, []], [5, []], [2, []]]);
  for (let i = 0; i < profileRounds; i += 1) {
    for (let j = 0; j < variants.length; j += 1) {
      const variant = variants[(i + j) % variants.length] as number | 'tree-kill';
      if (variant === 'tree-kill') {
        (sensitivityTimes.get(variant) as number[]).push((await treeKillRound(i)).ms);
        continue;
      }
      const r = await wardenRound(i, { pollIntervalMs: variant });
      if (r.survivors > 0 || r.markedAfter > 0) throw new Error(`pollIntervalMs ${variant} round left survivors`);
      (sensitivityTimes.get(variant) as number[]).push(r.ms);
      (sensitivityPresent.get(variant) as string[][]).push(r.presentAtReturn);
    }
  }
  const sensitivityKill = stats(sensitivityTimes.get('tree-kill') as number[]);
  const pollSensitivity: TerminateBenchResult['pollSensitivity'] = [20, 5, 2].map((pollIntervalMs) => {
    const s = stats(sensitivityTimes.get(pollIntervalMs) as number[]);
    const present = sensitivityPresent.get(pollIntervalMs) as string[][];
    return {
      pollIntervalMs,
      stats: s,
      ratioToTreeKillMedian: s.median / sensitivityKill.median,
      roundsReturnedWhileTreeProcessPresent: present.filter((list) => list.length > 0).length,
      presentAtReturn: present.filter((list) => list.length > 0),
    };
  });
  const sensitivityTreeKill = sensitivityKill;

  const wardenStats = stats(warden.map((r) => r.ms));
  const ratioOfMedians = wardenStats.median / killStats.median;
  const medianPairRatio = stats(warden.map((w, i) => w.ms / (killer[i] as TreeKillRound).ms)).median;
  const pick = (key: keyof ProfileRound): number => stats(profiles.map((p) => Number(p[key] ?? NaN)).filter(Number.isFinite)).median;
  const medians = {
    totalMs: pick('totalMs'),
    collectMs: pick('collectMs'),
    freezeMs: pick('freezeMs'),
    signalMs: pick('signalMs'),
    waitMs: pick('waitMs'),
    actualDeathMs: pick('actualDeathMs'),
    reads: pick('reads'),
    readMs: pick('readMs'),
    markerReads: pick('markerReads'),
    markerMs: pick('markerMs'),
    shellDeadMs: stats(profiles.map((p) => p.deathMs.shell ?? NaN).filter(Number.isFinite)).median,
    launchPyDeadMs: stats(profiles.map((p) => p.deathMs.launchPy ?? NaN).filter(Number.isFinite)).median,
    firstWorkerDeadMs: stats(profiles.map((p) => p.deathMs.firstWorker ?? NaN).filter(Number.isFinite)).median,
    lastWorkerDeadMs: stats(profiles.map((p) => p.deathMs.lastWorker ?? NaN).filter(Number.isFinite)).median,
  };

  const result: TerminateBenchResult = {
    name: 'terminate',
    machine,
    command: `npx tsx bench/terminate.bench.ts --rounds ${rounds}`,
    tree: 'bash webui.sh --port 0 --workers 8 (bash → launch.py → 8 workers), launch() from examples/fake-webui, cooperative',
    rounds,
    warden: wardenStats,
    treeKill: killStats,
    ratioOfMedians,
    medianPairRatio,
    goal: 0.5,
    goalMet: ratioOfMedians <= 0.5,
    wardenSurvivorsTotal: warden.reduce((sum, r) => sum + r.survivors, 0),
    wardenMarkedAfterTotal: warden.reduce((sum, r) => sum + r.markedAfter, 0),
    wardenEscalations: warden.filter((r) => r.escalated).length,
    wardenReturnedWhilePresent: warden.filter((r) => r.presentAtReturn.length > 0).length,
    wardenPresentAtReturn: warden.filter((r) => r.presentAtReturn.length > 0).map((r) => r.presentAtReturn),
    treeKillAliveAfter1s: stats(killer.map((r) => r.aliveAfter1s)),
    treeKillReapedTotal: killer.reduce((sum, r) => sum + r.reapedByTerminate, 0),
    profile: { rounds: profiles, medians },
    pollSensitivity,
    pollSensitivityTreeKill: sensitivityTreeKill,
    raw: { warden, treeKill: killer },
  };

  log('');
  log(
    table(
      ['tree (a), ms', 'n', 'median', 'p90', 'mean', 'min', 'max', 'left alive'],
      [
        ['warden terminate → confirmed dead', wardenStats.n, ms(wardenStats.median), ms(wardenStats.p90), ms(wardenStats.mean), ms(wardenStats.min), ms(wardenStats.max), `${result.wardenMarkedAfterTotal} (read back)`],
        ['tree-kill SIGTERM → callback', killStats.n, ms(killStats.median), ms(killStats.p90), ms(killStats.mean), ms(killStats.min), ms(killStats.max), `${killer.reduce((s, r) => s + r.aliveAfter1s, 0)} after 1 s`],
      ],
    ),
  );
  log(
    `ratio warden/tree-kill: median ${ratioOfMedians.toFixed(2)} (median of pair ratios ${medianPairRatio.toFixed(2)}), goal ≤ 0.50: ${result.goalMet ? 'MET' : 'NOT MET'}`,
  );
  log(`warden: ${result.wardenSurvivorsTotal} survivors reported, ${result.wardenEscalations} escalations to SIGKILL over ${rounds} rounds`);
  log(
    `warden: in ${result.wardenReturnedWhilePresent}/${rounds} rounds terminate returned while a tree process was still in /proc and not a zombie` +
      (result.wardenReturnedWhilePresent > 0 ? ` (${result.wardenPresentAtReturn.map((list) => list.join(',')).join('; ')})` : ''),
  );
  log('');
  log(`where warden's time goes (${profiles.length} instrumented rounds, poll 20 ms; medians, ms):`);
  log(
    table(
      ['phase', 'median ms'],
      [
        ['first collect (read + ownership) → first SIGSTOP', ms(medians.collectMs)],
        ['freeze + re-collect → first SIGTERM/SIGKILL', ms(medians.freezeMs)],
        ['SIGTERM/SIGKILL + SIGCONT to all', ms(medians.signalMs)],
        ['grace polling: last SIGCONT → return', ms(medians.waitMs)],
        ['  tree actually dead (1 ms observer), after last SIGCONT', ms(medians.actualDeathMs)],
        ['    bash gone / first worker / last worker / launch.py', `${ms(medians.shellDeadMs)} / ${ms(medians.firstWorkerDeadMs)} / ${ms(medians.lastWorkerDeadMs)} / ${ms(medians.launchPyDeadMs)}`],
        ['total', ms(medians.totalMs)],
        [`table reads (${medians.reads} per stop), total`, ms(medians.readMs)],
        [`marker reads (${medians.markerReads} per stop), total`, ms(medians.markerMs)],
      ],
    ),
  );
  log('');
  log(
    table(
      ['sensitivity (interleaved rounds)', 'n', 'median', 'p90', 'ratio vs tree-kill median', 'returned while a tree process still present'],
      [
        ...pollSensitivity.map((p) => [
          `warden, pollIntervalMs ${p.pollIntervalMs}${p.pollIntervalMs === 20 ? ' (default)' : ''}`,
          p.stats.n,
          ms(p.stats.median),
          ms(p.stats.p90),
          p.ratioToTreeKillMedian.toFixed(2),
          `${p.roundsReturnedWhileTreeProcessPresent}/${p.stats.n}`,
        ]),
        ['tree-kill SIGTERM → callback', sensitivityTreeKill.n, ms(sensitivityTreeKill.median), ms(sensitivityTreeKill.p90), '1.00', ''],
      ],
    ),
  );
  const path = writeResults('terminate', result);
  log(`results: ${path}`);
  return result;
}

runStandalone(import.meta.url, async (argv) => {
  printMachine(machineInfo());
  await runTerminateBench({ rounds: numberFlag(argv, '--rounds', 20), profileRounds: numberFlag(argv, '--profile-rounds', 8) });
});
