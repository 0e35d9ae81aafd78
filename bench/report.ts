// Renders the last run's bench/results/*.json as the Markdown tables used in docs/BENCHMARKS.md.
//
//   npx tsx bench/report.ts [results-dir]
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RESULTS_DIR, ms } from './lib.js';
import type { MachineInfo, Stats } from './lib.js';
import type { SnapshotBenchResult } from './snapshot.bench.js';
import type { SurvivorsBenchResult } from './survivors.bench.js';
import type { TerminateBenchResult } from './terminate.bench.js';

const dir = resolve(process.argv[2] ?? RESULTS_DIR);
const read = <T>(name: string): T => JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as T;

const run = read<{ command: string; machine: MachineInfo; elapsedS: number; loadAtEnd?: number[] }>('run');
const t = read<TerminateBenchResult>('terminate');
const b = read<SurvivorsBenchResult>('survivors');
const s = read<SnapshotBenchResult>('snapshot');

const md = (headers: string[], rows: (string | number)[][]): string =>
  [`| ${headers.join(' | ')} |`, `|${headers.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
const row = (label: string, x: Stats, extra: (string | number)[] = []): (string | number)[] => [label, x.n, ms(x.median), ms(x.p90), ms(x.mean), ms(x.min), ms(x.max), ...extra];
const m = run.machine;

console.log(`Command: \`${run.command}\` (${run.elapsedS.toFixed(0)} s)\n`);
console.log(
  `Machine: ${m.nproc} vCPU (${m.cpuModel}), ${m.memoryGiB} GiB RAM, ${m.platform}, kernel ${m.kernel}, Node ${m.node}, ` +
    `${m.processes} processes at start, load average ${m.loadAverage.join(' / ')} at start` +
    `${run.loadAtEnd === undefined ? '' : ` and ${run.loadAtEnd.join(' / ')} at the end`}, ${m.date}.\n`,
);
console.log('### 1. Stop-to-confirmed-dead, tree (a)\n');
console.log(
  md(['tree (a), ms', 'n', 'median', 'p90', 'mean', 'min', 'max', 'left alive'], [
    row('Warden `terminate(handle, { graceMs: 5000 })` → survivors [] (confirmed)', t.warden, [`${t.wardenMarkedAfterTotal} (marker read-back)`]),
    row("tree-kill `treeKill(root, 'SIGTERM', cb)` → callback (signalled only)", t.treeKill, [`${t.raw.treeKill.reduce((a, r) => a + r.aliveAfter1s, 0)} at callback + 1 s`]),
  ]),
);
console.log(
  `\nRatio warden/tree-kill: **${t.ratioOfMedians.toFixed(2)}** (ratio of medians; median of the ${t.rounds} per-pair ratios ${t.medianPairRatio.toFixed(2)}). ` +
    `Goal ≤ 0.50: **${t.goalMet ? 'met' : 'not met'}**. Warden: ${t.wardenSurvivorsTotal} survivors reported, ${t.wardenEscalations} escalations; ` +
    `in ${t.wardenReturnedWhilePresent ?? '?'}/${t.rounds} rounds terminate returned while a tree process was still in /proc and not a zombie` +
    `${(t.wardenPresentAtReturn ?? []).length > 0 ? ` (${(t.wardenPresentAtReturn ?? []).map((l) => l.join(', ')).join('; ')})` : ''}.\n`,
);
const p = t.profile.medians;
console.log(`Where Warden's time goes (${t.profile.rounds.length} instrumented rounds, default 20 ms poll, medians):\n`);
console.log(
  md(['phase', 'ms'], [
    ['first collect (table read + ownership) → first SIGSTOP', ms(p.collectMs ?? NaN)],
    ['freeze (SIGSTOP all) + re-collect → first SIGTERM/SIGKILL', ms(p.freezeMs ?? NaN)],
    ['SIGKILL bash, SIGTERM the rest, SIGCONT all', ms(p.signalMs ?? NaN)],
    ['grace polling: last SIGCONT → terminate returns', ms(p.waitMs ?? NaN)],
    ['↳ tree actually gone after the last SIGCONT (1 ms observer)', ms(p.actualDeathMs ?? NaN)],
    ['↳ bash / first worker / last worker / launch.py gone', `${ms(p.shellDeadMs ?? NaN)} / ${ms(p.firstWorkerDeadMs ?? NaN)} / ${ms(p.lastWorkerDeadMs ?? NaN)} / ${ms(p.launchPyDeadMs ?? NaN)}`],
    ['total', ms(p.totalMs ?? NaN)],
    [`time inside the ${p.reads} table reads`, ms(p.readMs ?? NaN)],
    [`time inside the ${p.markerReads} marker (environ) reads`, ms(p.markerMs ?? NaN)],
  ]),
);
console.log(`\nRe-read interval sensitivity (interleaved rounds, same period):\n`);
console.log(
  md(['variant', 'n', 'median', 'p90', 'ratio vs tree-kill', 'returned while a tree process was still present'], [
    ...t.pollSensitivity.map((x) => [
      `Warden, \`pollIntervalMs: ${x.pollIntervalMs}\`${x.pollIntervalMs === 20 ? ' (default)' : ''}`,
      x.stats.n,
      ms(x.stats.median),
      ms(x.stats.p90),
      x.ratioToTreeKillMedian.toFixed(2),
      `${x.roundsReturnedWhileTreeProcessPresent ?? '?'}/${x.stats.n}`,
    ]),
    ['tree-kill', t.pollSensitivityTreeKill.n, ms(t.pollSensitivityTreeKill.median), ms(t.pollSensitivityTreeKill.p90), '1.00', ''],
  ]),
);
console.log('\n### 2. Survivors on tree (b)\n');
console.log(
  md(['tree (b)', 'rounds', 'owned before', 'left alive (median)', 'min', 'max', 'of which orphaned old workers'], [
    ["tree-kill `treeKill(root, 'SIGTERM')`, counted at callback + 1 s", b.rounds, b.raw.treeKill[0]?.owned ?? '', b.treeKill.aliveAfter1s.median, b.treeKill.aliveAfter1s.min, b.treeKill.aliveAfter1s.max, b.treeKill.orphansAlive.median],
    ['Warden `terminate(handle, { graceMs: 5000 })`, read back by marker', b.rounds, b.raw.warden[0]?.owned ?? '', b.warden.markedAfter.median, b.warden.markedAfter.min, b.warden.markedAfter.max, 0],
  ]),
);
console.log(
  `\nOrphans reparented to pid ${b.orphanParents.join(', ')}. Warden: ${b.raw.warden.reduce((a, r) => a + r.survivors, 0)} survivors reported in total, ` +
    `${b.warden.killed.median} processes killed per round, ${ms(b.warden.ms.median)} ms median (p90 ${ms(b.warden.ms.p90)}), ${b.warden.escalations} escalations. ` +
    `After the tree-kill rounds, \`terminate({ immediate: true })\` reaped ${b.treeKill.reapedTotal} processes in total (${b.rounds} rounds).\n`,
);
console.log('### 3. snapshot() vs ps-list\n');
console.log(
  md(['process table read, ms', 'n', 'median', 'p90', 'mean', 'min', 'max', 'ratio vs psList'], [
    row('`snapshot()` (/proc, with cmdline; default)', s.snapshot, [s.ratio.toFixed(3)]),
    row('`snapshot({ cmdline: false })`', s.snapshotNoCmdline, [s.ratioNoCmdline.toFixed(3)]),
    row('`snapshot({ cmdline: false, uid: false })` (terminate\'s re-read)', s.snapshotMinimal, [s.ratioMinimal.toFixed(3)]),
    row('`psList()` (ps-list 9: one `ps` child process)', s.psList, ['1.000']),
  ]),
);
console.log(
  `\nProcesses on the machine: ${s.processesProc.median} (median over the snapshot rounds, range ${s.processesProc.min}–${s.processesProc.max}). ` +
    `Ratio **${s.ratio.toFixed(3)}** (median of pair ratios ${s.medianPairRatio.toFixed(3)}); goal ≤ 0.25: **${s.goalMet ? 'met' : 'not met'}**.\n`,
);
console.log(md(['one pass over every pid (median of 20)', 'ms'], Object.entries(s.breakdown).map(([k, v]) => [k, ms(v)])));
