// Runs every benchmark in one process, prints the tables and a summary against the goals, writes bench/results/*.json.
//
//   npx tsx bench/run.ts [--rounds 20] [--survivor-rounds 5] [--snapshot-rounds 50] [--profile-rounds 8]
//   (npm run bench -- --rounds 30)
import os from 'node:os';
import { installSignalCleanup, cleanupAll, machineInfo, ms, numberFlag, printMachine, table, writeResults } from './lib.js';
import { runSnapshotBench } from './snapshot.bench.js';
import { runSurvivorsBench } from './survivors.bench.js';
import { runTerminateBench } from './terminate.bench.js';
import { runContainmentBench } from './containment.bench.js';

async function main(argv: string[]): Promise<void> {
  installSignalCleanup();
  const started = performance.now();
  const machine = machineInfo();
  const options = {
    rounds: numberFlag(argv, '--rounds', 20),
    survivorRounds: numberFlag(argv, '--survivor-rounds', 5),
    snapshotRounds: numberFlag(argv, '--snapshot-rounds', 50),
    profileRounds: numberFlag(argv, '--profile-rounds', 8),
  };
  console.log(`webui-warden benchmarks: npx tsx bench/run.ts ${argv.join(' ')}`.trimEnd());
  printMachine(machine);

  const terminate = await runTerminateBench({ rounds: options.rounds, profileRounds: options.profileRounds });
  const survivors = await runSurvivorsBench({ rounds: options.survivorRounds });
  const snap = await runSnapshotBench({ rounds: options.snapshotRounds, warmup: 5 });
  const containment = await runContainmentBench({ rounds: options.rounds });
  const elapsedS = (performance.now() - started) / 1000;

  console.log('\n== summary ==');
  console.log(
    table(
      ['benchmark', 'warden', 'peer', 'ratio', 'goal', 'verdict'],
      [
        [
          'tree (a) stop → confirmed dead vs tree-kill signal (median ms)',
          ms(terminate.warden.median),
          ms(terminate.treeKill.median),
          terminate.ratioOfMedians.toFixed(2),
          '≤ 0.50',
          terminate.goalMet ? 'met' : 'NOT MET',
        ],
        [
          'tree (b) processes left alive (median per round)',
          String(survivors.warden.markedAfter.median),
          String(survivors.treeKill.aliveAfter1s.median),
          '',
          '0',
          survivors.warden.markedAfter.max === 0 ? 'met' : 'NOT MET',
        ],
        [
          'tree (a) cgroup.kill → populated 0 vs tree-kill signal (median ms)',
          ms(containment.cgroupImmediate.median),
          ms(containment.treeKill.median),
          containment.ratioImmediate.toFixed(2),
          '≤ 0.30',
          containment.goalMet ? 'met' : 'NOT MET',
        ],
        [
          'snapshot() vs psList() (median ms)',
          ms(snap.snapshot.median),
          ms(snap.psList.median),
          snap.ratio.toFixed(3),
          '≤ 0.25',
          snap.goalMet ? 'met' : 'NOT MET',
        ],
      ],
    ),
  );
  const loadAtEnd = os.loadavg().map((value) => Math.round(value * 100) / 100);
  console.log(`total bench time ${elapsedS.toFixed(1)} s; load average at start ${machine.loadAverage.join(' ')}, at end ${loadAtEnd.join(' ')}`);
  const path = writeResults('run', {
    name: 'run',
    command: `npx tsx bench/run.ts ${argv.join(' ')}`.trimEnd(),
    machine,
    options,
    elapsedS,
    loadAtEnd,
    summary: {
      terminate: { wardenMedianMs: terminate.warden.median, treeKillMedianMs: terminate.treeKill.median, ratio: terminate.ratioOfMedians, goal: 0.5, met: terminate.goalMet },
      survivors: { wardenLeftAlive: survivors.warden.markedAfter, treeKillLeftAlive: survivors.treeKill.aliveAfter1s },
      containment: { cgroupStopMedianMs: containment.cgroupStop.median, cgroupImmediateMedianMs: containment.cgroupImmediate.median, treeKillMedianMs: containment.treeKill.median, ratio: containment.ratioImmediate, gracefulRatio: containment.ratioStop, goal: 0.3, met: containment.goalMet },
      snapshot: { snapshotMedianMs: snap.snapshot.median, psListMedianMs: snap.psList.median, ratio: snap.ratio, goal: 0.25, met: snap.goalMet },
    },
  });
  console.log(`results: ${path} (+ terminate.json, survivors.json, snapshot.json)`);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  async (error: unknown) => {
    console.error(error);
    await cleanupAll();
    process.exit(1);
  },
);
