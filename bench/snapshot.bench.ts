// Benchmark 3: snapshot() (the /proc reader, default options) vs psList() (ps-list, which runs `ps`), alternating in
// the same run, plus snapshot({ cmdline: false }) (what terminate polls with).
//
//   npx tsx bench/snapshot.bench.ts [--snapshot-rounds 50] [--warmup 5]
import { closeSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import psList from 'ps-list';
import { snapshot } from '../src/process/index.js';
import { listProcPids } from '../src/process/procfs.js';
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
  psList: Stats;
  ratio: number;
  ratioNoCmdline: number;
  medianPairRatio: number;
  goal: number;
  goalMet: boolean;
  /** Median cost of each kind of /proc access over one full pass (what snapshot() is made of), ms. */
  breakdown: Record<string, number>;
  raw: { snapshot: number[]; snapshotNoCmdline: number[]; psList: number[] };
}

type Reader = 'snapshot' | 'snapshotNoCmdline' | 'psList';

async function timeOnce(reader: Reader): Promise<{ ms: number; count: number }> {
  const started = performance.now();
  let count: number;
  if (reader === 'psList') count = (await psList()).length;
  else count = (await snapshot(reader === 'snapshot' ? {} : { cmdline: false })).processes.size;
  return { ms: performance.now() - started, count };
}

const quietly = (fn: () => unknown): void => {
  try {
    fn();
  } catch {
    // a process vanished mid-pass
  }
};

// Not what snapshot() does: the alternative read of the stat file, for comparison (open + one read into a reused buffer).
const ALT = 'alternative, not in snapshot(): stat via openSync+readSync(reused buffer)';
const scratch = Buffer.alloc(4096);
function readSmall(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const length = readSync(fd, scratch, 0, scratch.length, 0);
    return scratch.toString('latin1', 0, length);
  } finally {
    closeSync(fd);
  }
}

// Times each kind of /proc access separately over every pid, `passes` times; medians in ms.
function procBreakdown(passes: number): Record<string, number> {
  const parts: Record<string, number[]> = { 'readdir /proc': [], 'read /proc/PID/stat': [], 'stat /proc/PID (uid)': [], 'read /proc/PID/cmdline': [], [ALT]: [] };
  const time = (name: string, fn: () => void): void => {
    const started = performance.now();
    fn();
    (parts[name] as number[]).push(performance.now() - started);
  };
  for (let pass = 0; pass < passes; pass += 1) {
    time('readdir /proc', () => void readdirSync('/proc'));
    const pids = listProcPids();
    time('read /proc/PID/stat', () => pids.forEach((pid) => quietly(() => readFileSync(`/proc/${pid}/stat`, 'latin1'))));
    time('stat /proc/PID (uid)', () => pids.forEach((pid) => quietly(() => statSync(`/proc/${pid}`))));
    time('read /proc/PID/cmdline', () => pids.forEach((pid) => quietly(() => readFileSync(`/proc/${pid}/cmdline`, 'latin1'))));
    time(ALT, () => pids.forEach((pid) => quietly(() => readSmall(`/proc/${pid}/stat`))));
  }
  return Object.fromEntries(Object.entries(parts).map(([name, values]) => [name, stats(values).median]));
}

export async function runSnapshotBench(options: { rounds?: number; warmup?: number; quiet?: boolean } = {}): Promise<SnapshotBenchResult> {
  const rounds = options.rounds ?? 50;
  const warmup = options.warmup ?? 5;
  const log = options.quiet === true ? () => undefined : (line: string) => console.log(line);
  const machine = machineInfo();
  log(`\n== 3. snapshot() on /proc vs psList(), ${rounds} rounds each after ${warmup} warmup, alternating ==`);
  const orders: Reader[][] = [
    ['snapshot', 'psList', 'snapshotNoCmdline'],
    ['psList', 'snapshotNoCmdline', 'snapshot'],
    ['snapshotNoCmdline', 'snapshot', 'psList'],
  ];
  for (let i = 0; i < warmup; i += 1) for (const reader of orders[0] as Reader[]) await timeOnce(reader);

  const times: Record<Reader, number[]> = { snapshot: [], snapshotNoCmdline: [], psList: [] };
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
    psList: p,
    ratio,
    ratioNoCmdline: sNo.median / p.median,
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
        ...Object.entries(breakdown).filter(([name]) => name !== ALT).map(([name, value]) => [name, ms(value)]),
        ['sum of the above', ms(Object.entries(breakdown).filter(([name]) => name !== ALT).reduce((a, [, b]) => a + b, 0))],
        ['snapshot() measured above (median)', ms(s.median)],
        [ALT, ms(breakdown[ALT] ?? NaN)],
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
