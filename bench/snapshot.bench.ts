// Benchmark 3: snapshot() (the /proc reader, default options) vs psList() (ps-list, which runs `ps`), alternating in
// the same run, plus snapshot({ cmdline: false }) and snapshot({ cmdline: false, uid: false }) (terminate's re-read).
//
//   npx tsx bench/snapshot.bench.ts [--snapshot-rounds 50] [--warmup 5]
import { statSync } from 'node:fs';
import psList from 'ps-list';
import { snapshot } from '../src/process/index.js';
import { listProcPids, readCmdline, readStartTime } from '../src/process/posix/procfs.js';
import { machineInfo, ms, numberFlag, printMachine, runStandalone, stats, table, writeResults } from './lib.js';
import type { MachineInfo, Stats } from './lib.js';

export interface SnapshotBenchResult {
  name: 'snapshot';
  machine: MachineInfo;
  rounds: number;
  warmup: number;
  processesProc: Stats;
  processesPsList: Stats;
  snapshot: Stats;
  snapshotNoCmdline: Stats;
  /** snapshot({ cmdline: false, uid: false }): what terminate re-reads with. */
  snapshotMinimal: Stats;
  psList: Stats;
  ratio: number;
  ratioNoCmdline: number;
  ratioMinimal: number;
  medianPairRatio: number;
  goal: number;
  goalMet: boolean;
  /** Median cost of each kind of /proc access over one full pass (what snapshot() is made of), ms. */
  breakdown: Record<string, number>;
  raw: { snapshot: number[]; snapshotNoCmdline: number[]; snapshotMinimal: number[]; psList: number[] };
}

type Reader = 'snapshot' | 'snapshotNoCmdline' | 'snapshotMinimal' | 'psList';

async function timeOnce(reader: Reader): Promise<{ ms: number; count: number }> {
  const started = performance.now();
  let count: number;
  if (reader === 'psList') count = (await psList()).length;
  else if (reader === 'snapshot') count = (await snapshot()).processes.size;
  else if (reader === 'snapshotNoCmdline') count = (await snapshot({ cmdline: false })).processes.size;
  else count = (await snapshot({ cmdline: false, uid: false })).processes.size;
  return { ms: performance.now() - started, count };
}

const quietly = (fn: () => unknown): void => {
  try {
    fn();
  } catch {
    // a process vanished mid-pass
  }
};

// Times each kind of /proc access snapshot() makes, with src/process/posix/procfs.ts's own readers, over every pid,
// `passes` times; medians in ms.
function procBreakdown(passes: number): Record<string, number> {
  const parts: Record<string, number[]> = {
    'list /proc (readdir)': [],
    'read + parse /proc/PID/stat': [],
    'stat /proc/PID (uid)': [],
    'read /proc/PID/cmdline': [],
  };
  const time = (name: string, fn: () => void): void => {
    const started = performance.now();
    fn();
    (parts[name] as number[]).push(performance.now() - started);
  };
  for (let pass = 0; pass < passes; pass += 1) {
    let pids: number[] = [];
    time('list /proc (readdir)', () => {
      pids = listProcPids();
    });
    time('read + parse /proc/PID/stat', () => pids.forEach((pid) => void readStartTime(pid)));
    time('stat /proc/PID (uid)', () => pids.forEach((pid) => quietly(() => statSync(`/proc/${pid}`))));
    time('read /proc/PID/cmdline', () => pids.forEach((pid) => void readCmdline(pid)));
  }
  return Object.fromEntries(Object.entries(parts).map(([name, values]) => [name, stats(values).median]));
}

export async function runSnapshotBench(options: { rounds?: number; warmup?: number; quiet?: boolean } = {}): Promise<SnapshotBenchResult> {
  const rounds = options.rounds ?? 50;
  const warmup = options.warmup ?? 5;
  const log = options.quiet === true ? () => undefined : (line: string) => console.log(line);
  const machine = machineInfo();
  log(`\n== 3. snapshot() on /proc vs psList(), ${rounds} rounds each after ${warmup} warmup, alternating ==`);
  const base: Reader[] = ['snapshot', 'psList', 'snapshotNoCmdline', 'snapshotMinimal'];
  const orders: Reader[][] = base.map((_, shift) => base.map((__, i) => base[(i + shift) % base.length] as Reader));
  for (let i = 0; i < warmup; i += 1) for (const reader of orders[0] as Reader[]) await timeOnce(reader);

  const times: Record<Reader, number[]> = { snapshot: [], snapshotNoCmdline: [], snapshotMinimal: [], psList: [] };
  const procCounts: number[] = [];
  const psCounts: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    // Rotate the order each round so no reader always runs right after another.
    for (const reader of orders[round % orders.length] as Reader[]) {
      const { ms: elapsed, count } = await timeOnce(reader);
      times[reader].push(elapsed);
      if (reader === 'snapshot') procCounts.push(count);
      if (reader === 'psList') psCounts.push(count);
    }
  }
  const breakdown = procBreakdown(20);
  const s = stats(times.snapshot);
  const sNo = stats(times.snapshotNoCmdline);
  const sMin = stats(times.snapshotMinimal);
  const p = stats(times.psList);
  const ratio = s.median / p.median;
  const result: SnapshotBenchResult = {
    name: 'snapshot',
    machine,
    rounds,
    warmup,
    processesProc: stats(procCounts),
    processesPsList: stats(psCounts),
    snapshot: s,
    snapshotNoCmdline: sNo,
    snapshotMinimal: sMin,
    psList: p,
    ratio,
    ratioNoCmdline: sNo.median / p.median,
    ratioMinimal: sMin.median / p.median,
    medianPairRatio: stats(times.snapshot.map((value, i) => value / (times.psList[i] as number))).median,
    goal: 0.25,
    goalMet: ratio <= 0.25,
    breakdown,
    raw: times,
  };
  log('');
  log(
    table(
      ['process table read, ms', 'n', 'median', 'p90', 'mean', 'min', 'max', 'ratio vs psList'],
      [
        ['snapshot() (proc, with cmdline)', s.n, ms(s.median), ms(s.p90), ms(s.mean), ms(s.min), ms(s.max), ratio.toFixed(3)],
        ['snapshot({ cmdline: false })', sNo.n, ms(sNo.median), ms(sNo.p90), ms(sNo.mean), ms(sNo.min), ms(sNo.max), result.ratioNoCmdline.toFixed(3)],
        ['snapshot({ cmdline: false, uid: false })', sMin.n, ms(sMin.median), ms(sMin.p90), ms(sMin.mean), ms(sMin.min), ms(sMin.max), result.ratioMinimal.toFixed(3)],
        ['psList() (ps-list 9)', p.n, ms(p.median), ms(p.p90), ms(p.mean), ms(p.min), ms(p.max), '1.000'],
      ],
    ),
  );
  log(
    `processes on the machine: ${result.processesProc.median} (snapshot, median; ${result.processesProc.min}–${result.processesProc.max}), ` +
      `${result.processesPsList.median} (psList, includes its own ps)`,
  );
  log('');
  log(
    table(
      ['what one snapshot() pass costs (20 passes, median)', 'ms'],
      [
        ...Object.entries(breakdown).map(([name, value]) => [name, ms(value)]),
        ['sum of the above', ms(Object.values(breakdown).reduce((a, b) => a + b, 0))],
        ['snapshot() measured above (median)', ms(s.median)],
      ],
    ),
  );
  log(`ratio snapshot/psList: median ${ratio.toFixed(3)} (median of pair ratios ${result.medianPairRatio.toFixed(3)}), goal ≤ 0.25: ${result.goalMet ? 'MET' : 'NOT MET'}`);
  const path = writeResults('snapshot', result);
  log(`results: ${path}`);
  return result;
}

runStandalone(import.meta.url, async (argv) => {
  printMachine(machineInfo());
  await runSnapshotBench({ rounds: numberFlag(argv, '--snapshot-rounds', 50), warmup: numberFlag(argv, '--warmup', 5) });
});
