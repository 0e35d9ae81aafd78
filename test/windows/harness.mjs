// The Windows side of the Wine suite: runs one scenario with real Windows processes and writes the outcome
// as JSON to a FILE (Windows node.exe under Wine dies with EBADF when it writes to a Unix pipe).
//
//   node.exe harness.mjs <scenario>[-nojob] <workdir> <python.exe>
//   node.exe harness.mjs controller <workdir> <python.exe> guard|no-guard job|nojob   (started by the harness itself)
//
// By default the tree runs inside a kill-on-close Job Object (launch()'s Windows default: the job launcher is
// the root, cmd.exe its child). A scenario name ending in -nojob launches with `windowsJob: false`, the
// strategy that has only the tracker, taskkill and the guard.
//
// It drives Warden's compiled process layer (dist/, built by `npm run build`): launch() starts
// `cmd.exe /d /s /c webui-user.bat`, whose relaunch loop runs the fake python.exe (a renamed node.exe running
// fixtures/launch.cjs, which starts two worker python.exe). Every fake process records its pid/ppid in
// <workdir>/state/pids, and the harness keeps its own listings, so the final check ("nothing owned alive,
// read from a fresh listing") does not rely on Warden's tracker alone.
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { alive, createDecoys, createListings, finishRun, recordedIn, rowsOf, show } from './harness-common.mjs';
import { independentTree } from './independent-tree.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const fixtures = join(here, 'fixtures');
// A private build (test/windows/global-setup.ts: tsc --outDir .wine-test/dist), so a concurrent `npm run build`
// cannot swap dist/ under a running scenario; WARDEN_WINE_DIST overrides it.
const dist = process.env.WARDEN_WINE_DIST ?? join(repo, '.wine-test', 'dist');
const proc = await import(pathToFileURL(join(dist, 'src', 'process', 'index.js')).href);
const win = await import(pathToFileURL(join(dist, 'src', 'process', 'windows', 'index.js')).href);
// The product's polite request (node:http): Node's fetch cannot connect under Wine 8 ("connect UNKNOWN").
const { postQuietly } = await import(pathToFileURL(join(dist, 'src', 'health.js')).href);

const [mode, workdirArg, pythonExe, extra, jobArg] = process.argv.slice(2);
if (mode === undefined || workdirArg === undefined || pythonExe === undefined) {
  throw new Error('usage: node harness.mjs <scenario> <workdir> <python.exe>');
}
// The scenario without its -nojob suffix, and whether the tree gets a Job Object.
const withJob = mode === 'controller' ? jobArg !== 'nojob' : !mode.endsWith('-nojob');
const scenario = mode.replace(/-nojob$/, '');
const workdir = resolve(workdirArg);
const stateDir = join(workdir, 'state');
const pidDir = join(stateDir, 'pids');
mkdirSync(pidDir, { recursive: true });
const logFile = join(workdir, `${mode}.log`);
const log = (...parts) => appendFileSync(logFile, `${new Date().toISOString()} ${parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join(' ')}\n`);

const writeJson = (file, value) => {
  writeFileSync(`${file}.tmp`, JSON.stringify(value, null, 2));
  renameSync(`${file}.tmp`, file);
};
const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));
const readTail = (file) => (existsSync(file) ? readFileSync(file, 'utf8').slice(-4000) : '(no file)');

// ---------------------------------------------------------------------------------------------------------
// Listings

const read = () => proc.snapshot({ backend: 'ps-list', cmdline: false });
const taken = createListings();
const { listings, keep } = taken;
const recorded = () => recordedIn(pidDir);

async function waitFor(what, timeoutMs, condition, sample) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const table = await sample();
    const value = condition(table);
    if (value) return value;
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${table?.processes === undefined ? '' : `; last listing: ${show(rowsOf(table))}`}`);
    }
    await sleep(100);
  }
}


// ---------------------------------------------------------------------------------------------------------
// Decoys: started outside Warden, must survive every stop

const { decoys, startDecoy, killDecoys } = createDecoys({ fixtures, pythonExe, stateDir, pidDir, read, log });

// ---------------------------------------------------------------------------------------------------------
// The launched tree

// The tree's own output (cmd.exe's echo lines, python.exe's errors), through Warden's logger, into a file.
const { createRequire } = await import('node:module');
const pino = createRequire(join(repo, 'package.json'))('pino');
const treeLogger = pino({ level: 'info' }, pino.destination({ dest: join(workdir, `${mode}-tree.log`), sync: true }));

function launchSpec() {
  return {
    logger: treeLogger,
    instanceId: `wine-${mode}`.slice(0, 60),
    command: 'cmd.exe',
    args: ['/d', '/s', '/c', join(fixtures, 'webui-user.bat')],
    cwd: workdir,
    env: { PYTHON: pythonExe, FAKE_WEBUI_STATE_DIR: stateDir },
    // Discovery off: the sampler below feeds the tracker, one read at a time (no out-of-order tables).
    discoverIntervalMs: 0,
    windowsJob: withJob,
  };
}

// The watchdog's part: re-read the table and feed the tracker, one read at a time.
function startSampler(tracker, reader, intervalMs = 200) {
  let stopped = false;
  let last = Promise.resolve();
  const timer = setInterval(() => {
    if (stopped) return;
    last = last.then(async () => {
      if (stopped) return;
      try {
        keep(await tracker.refresh(reader));
      } catch (error) {
        log('sampler read failed', String(error));
      }
    });
  }, intervalMs);
  return async () => {
    stopped = true;
    clearInterval(timer);
    await last;
  };
}

const launchesOf = () => recorded().filter((e) => e.kind === 'launch' && e.role === 'launch');
const workersOf = (launchPid) => recorded().filter((e) => e.kind === 'worker' && e.role === 'launch' && e.ppid === launchPid);
// A generation is up when its launch.cjs serves and both workers are listed with it as their parent.
const generationUp = (rows, launch) => launch !== undefined && alive(rows, launch.pid) && launch.workers.every((w) => alive(rows, w, launch.pid));

async function post(port, path) {
  const ok = await postQuietly(`http://127.0.0.1:${port}${path}`, 5000);
  if (!ok) log('POST failed', path);
  return ok;
}

// ---------------------------------------------------------------------------------------------------------
// The controller (a separate node.exe, killed by the harness in the force-close scenarios)

async function controller() {
  const guarded = extra !== 'no-guard';
  const reader = win.sequencedReader(read);
  const handle = await proc.launch(launchSpec());
  const tracker = handle.windows;
  const stopSampler = startSampler(tracker, reader, 200);
  let guard;
  if (guarded) guard = await win.startWindowsGuard({ logPath: join(workdir, 'guard.log') });
  // The registry's part: the tracker's record, persisted after every change, for a reap after a force close.
  const persist = () => writeJson(join(workdir, 'record.json'), tracker.toJSON());
  const table = await waitFor('the tree to come up', 30_000, (t) => (generationUp(rowsOf(t), launchesOf()[0]) ? t : undefined), async () => {
    if (handle.hasExited && launchesOf().length === 0) {
      writeJson(join(workdir, 'controller-flake.json'), { what: 'the root cmd.exe exited before python.exe started', exit: await handle.exited, tree: readTail(join(workdir, `${mode}-tree.log`)) });
      process.exit(3);
    }
    return tracker.refresh(reader);
  });
  persist();
  if (guard !== undefined) await guard.track(tracker);
  setInterval(persist, 200);
  writeJson(join(workdir, 'controller-ready.json'), { controllerPid: process.pid, rootPid: handle.root.pid, guardPid: guard?.pid, owned: tracker.owned(table).map((o) => o.info.pid) });
  log('controller ready', { root: handle.root.pid, guard: guard?.pid });
  void stopSampler;
  // Runs until the harness kills it (TerminateProcess, what Task Manager's "End task" does).
  setInterval(() => undefined, 60_000);
}

// ---------------------------------------------------------------------------------------------------------
// Scenarios

const result = { scenario: mode, failures: [], notes: [], timings: {} };
const fail = (message) => {
  result.failures.push(message);
  log('FAIL', message);
};
const t0 = performance.now();
const mark = (name) => {
  result.timings[name] = Math.round(performance.now() - t0);
};

// The common ending: a fresh listing shows nothing of the tree alive, and every decoy still alive.
async function finalCheck({ rootPid, rootPpid, tracker, killedPids }) {
  const fresh = keep(await read());
  const rows = rowsOf(fresh);
  result.freshListing = show(rows);
  const tree = independentTree(rootPid, rootPpid, listings);
  const ownedEver = new Map(tree.map((r) => [`${r.pid}:${r.ppid}`, r]));
  for (const entry of recorded().filter((e) => e.role === 'launch')) ownedEver.set(`${entry.pid}:${entry.ppid}`, { pid: entry.pid, ppid: entry.ppid, name: 'python.exe' });
  result.ownedEver = [...ownedEver.values()].map((r) => `${r.pid}<${r.ppid} ${r.name || '?'}`);
  for (const row of ownedEver.values()) {
    if (alive(rows, row.pid, row.ppid)) fail(`owned process still alive in a fresh listing: ${row.pid}<${row.ppid} ${row.name}`);
  }
  if (tracker !== undefined) {
    const owned = tracker.owned(fresh);
    if (owned.length > 0) fail(`the tracker still owns live processes: ${owned.map((o) => `${o.info.pid} ${o.info.name}`).join(', ')}`);
  }
  for (const decoy of decoys) {
    if (!alive(rows, decoy.cmd)) fail(`decoy ${decoy.label} cmd.exe ${decoy.cmd} was killed`);
    if (decoy.python === undefined || !alive(rows, decoy.python, decoy.cmd)) fail(`decoy ${decoy.label} python.exe ${decoy.python} was killed`);
    for (const pid of [decoy.cmd, decoy.python]) if (killedPids?.includes(pid)) fail(`Warden reports killing decoy pid ${pid}`);
  }
  const launches = recorded().filter((e) => e.role === 'launch');
  result.recorded = launches.map((e) => `${e.kind} ${e.pid}<${e.ppid}`);
}

async function ownScenario() {
  const reader = win.sequencedReader(read);
  await startDecoy('before-launch');
  keep(await read());
  const handle = await proc.launch(launchSpec());
  const tracker = handle.windows;
  if (tracker === undefined) throw new Error('launch() made no WindowsTreeTracker: is this really win32?');
  result.root = handle.root.pid;
  void handle.exited.then((exit) => log('root cmd.exe exited', exit));
  const stopSampler = startSampler(tracker, reader);
  try {
    const sample = async () => {
      // A root that exits before its tree is up is a failed start (seen once in ~50 suite runs under Wine),
      // not a stop problem: said so, with the tree's output, so the suite can retry the scenario once.
      if (handle.hasExited && launchesOf().length === 0) {
        result.flake = { what: 'the root cmd.exe exited before python.exe started', exit: await handle.exited, tree: readTail(join(workdir, `${mode}-tree.log`)), state: readdirSync(stateDir) };
        throw new Error(result.flake.what);
      }
      return keep(await tracker.refresh(reader));
    };
    await waitFor('the tree to come up', 30_000, (t) => generationUp(rowsOf(t), launchesOf()[0]), sample);
    mark('treeUp');
    await startDecoy('after-launch');
    const first = launchesOf()[0];
    const options = {};

    if (withJob && handle.windowsJob === undefined) fail('launch() made no Job Object although windowsJob is on');
    if (!withJob && handle.windowsJob !== undefined) fail('launch() made a Job Object although windowsJob is false');
    // The shell parent: the root itself, or (Job Object) the launcher's child cmd.exe.
    const shellPid = handle.windowsJob?.pid ?? handle.root.pid;
    if (scenario === 'polite-stop') {
      options.beforeSignals = () => post(first.port, '/sdapi/v1/server-stop');
      options.politeWaitMs = 10_000;
    } else if (scenario === 'middle-killed' && withJob) {
      // launch.py crashes: webui.bat ends, cmd.exe exits, the job launcher exits with it, and the kernel ends
      // the orphaned workers with the job, before any stop is asked for.
      process.kill(first.pid);
      const crashAt = performance.now();
      const gone = await waitFor('the orphaned workers to die with the job', 15_000, (t) => {
        const rows = rowsOf(t);
        return [handle.root.pid, shellPid, ...first.workers].every((pid) => !alive(rows, pid)) ? t : undefined;
      }, sample).catch((error) => fail(String(error.message)));
      if (gone !== undefined) result.notes.push(`job: launcher, cmd.exe and both orphaned workers gone ${Math.round(performance.now() - crashAt)} ms after python.exe was killed`);
      const exit = await Promise.race([handle.exited, sleep(5000).then(() => 'no exit')]);
      result.notes.push(`root exit: ${JSON.stringify(exit)}`);
      if (exit === 'no exit') fail('the job launcher (root) did not exit after cmd.exe ended');
    } else if (scenario === 'middle-killed') {
      // launch.py crashes (TerminateProcess on the middle python.exe): its workers keep its dead pid as ppid.
      process.kill(first.pid);
      const rows = rowsOf(await waitFor('python.exe to die', 10_000, (t) => (alive(rowsOf(t), first.pid) ? undefined : t), sample));
      for (const worker of first.workers) {
        if (!alive(rows, worker, first.pid)) fail(`worker ${worker} did not survive its parent with a stale ppid ${first.pid}`);
      }
      const owned = tracker.owned(await sample()).map((o) => o.info.pid);
      for (const worker of first.workers) if (!owned.includes(worker)) fail(`the tracker lost orphan worker ${worker}`);
      result.notes.push(`orphans after the crash: ${show(rows.filter((r) => r.ppid === first.pid))}`);
    } else if (scenario === 'relaunch') {
      // server-restart leaves tmp\restart behind and exits without stopping its workers: webui.bat relaunches.
      if (!(await post(first.port, '/sdapi/v1/server-restart'))) fail('server-restart was not answered');
      const second = await waitFor('the relaunched python.exe', 20_000, (t) => {
        const next = launchesOf().find((e) => e.pid !== first.pid);
        return next !== undefined && generationUp(rowsOf(t), next) ? next : undefined;
      }, sample);
      const rows = rowsOf(await sample());
      if (second.ppid !== shellPid) fail(`the relaunch's parent is ${second.ppid}, not the tree's cmd.exe ${shellPid}`);
      for (const worker of first.workers) if (!alive(rows, worker, first.pid)) fail(`leaked worker ${worker} of the first generation is not alive before the stop`);
      const owned = tracker.owned(await sample()).map((o) => o.info.pid);
      for (const pid of [second.pid, ...second.workers, ...first.workers]) if (!owned.includes(pid)) fail(`the tracker does not own ${pid} after the relaunch`);
      // A restart file at stop time: if python.exe died before cmd.exe, the loop would relaunch again.
      writeFileSync(join(stateDir, 'tmp', 'restart'), 'restart');
      result.notes.push(`generations: ${first.pid} (workers ${first.workers}) then ${second.pid} (workers ${second.workers})`);
    }
    // Every kill the stop sends, with taskkill's own answer: the order is the claim, the answer is for diagnosis.
    const taskkill = win.taskkillExecutor();
    const kills = [];
    options.windowsKiller = {
      kill: async (pid) => {
        const outcome = await taskkill.kill(pid);
        kills.push({ pid, outcome: outcome.outcome, detail: outcome.detail?.slice(0, 200) });
        return outcome;
      },
      ...(taskkill.killTree && { killTree: taskkill.killTree }),
    };
    result.kills = kills;
    mark('beforeStop');
    const report = await proc.terminate(handle, options);
    mark('stopped');
    result.report = report;
    if (report.survivors.length > 0) fail(`terminate reported survivors: ${JSON.stringify(report.survivors)}`);
    if (scenario === 'polite-stop' && report.escalated) result.notes.push('polite stop escalated to taskkill (server-stop did not end the tree in time)');
    await stopSampler();
    await finalCheck({ rootPid: handle.root.pid, rootPpid: process.pid, tracker, killedPids: report.killed.map((k) => k.pid) });
  } finally {
    await stopSampler();
    handle.dispose();
  }
}

async function controllerKilled(guarded) {
  await startDecoy('before-launch');
  // Our own listings all along, so the final check knows the tree without the controller's tracker.
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      try {
        keep(await read());
      } catch (error) {
        // A listing that failed even after snapshot()'s retries: the next one fills the gap.
        log('listing failed', String(error));
      }
      await sleep(150);
    }
  })();
  const out = openSync(join(workdir, 'controller.out'), 'a');
  // PROCESS LIFECYCLE: the controller is the harness's direct child; it is killed below (the scenario), and
  // the suite's `wineserver -k` on its own prefix ends anything left.
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'controller', workdir, pythonExe, guarded ? 'guard' : 'no-guard', withJob ? 'job' : 'nojob'], {
    stdio: ['ignore', out, out],
    windowsHide: true,
  });
  closeSync(out);
  const childExit = new Promise((ok) => child.once('exit', ok));
  try {
    const readyFile = join(workdir, 'controller-ready.json');
    const flakeFile = join(workdir, 'controller-flake.json');
    await waitFor('the controller to be ready', 40_000, () => {
      if (existsSync(flakeFile)) {
        result.flake = readJson(flakeFile);
        throw new Error(result.flake.what);
      }
      return existsSync(readyFile);
    }, async () => undefined);
    const ready = readJson(readyFile);
    result.root = ready.rootPid;
    mark('treeUp');
    await startDecoy('after-launch');
    const before = rowsOf(keep(await read()));
    const launch = launchesOf()[0];
    // Task Manager's "End task": TerminateProcess on the controller, no chance to clean up.
    process.kill(ready.controllerPid);
    await childExit;
    mark('controllerKilled');
    if (guarded) {
      const guardGone = await waitFor('the guard to finish', 30_000, (t) => !alive(rowsOf(t), ready.guardPid), async () => keep(await read())).catch((error) => {
        fail(String(error.message));
        return undefined;
      });
      mark('guardDone');
      const lines = existsSync(join(workdir, 'guard.log')) ? readFileSync(join(workdir, 'guard.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : [];
      const stopped = lines.filter((l) => l.event === 'stopped');
      result.guard = lines.map((l) => l.event);
      if (guardGone !== undefined && stopped.length !== 1) fail(`the guard logged ${stopped.length} stops: ${JSON.stringify(lines)}`);
      for (const s of stopped) if (s.report.survivors.length > 0) fail(`the guard reported survivors: ${JSON.stringify(s.report.survivors)}`);
      result.report = stopped[0]?.report;
    } else if (withJob) {
      // The Job Object: the controller's death ends the job launcher (its stdin pipe hits EOF, and Node's own
      // kill-on-close job ends it too), and closing the job ends every member. No guard, no reap needed.
      const killedAt = performance.now();
      const tree = [ready.rootPid, ...ready.owned, launch.pid, ...launch.workers];
      const gone = await waitFor('the whole tree to die with the controller', 15_000, (t) => (tree.every((pid) => !alive(rowsOf(t), pid)) ? t : undefined), async () => keep(await read())).catch((error) => {
        fail(`${error.message} (a Job Object should have ended it)`);
        return undefined;
      });
      if (gone !== undefined) result.notes.push(`job: all ${new Set(tree).size} processes of the tree gone ${Math.round(performance.now() - killedAt)} ms after the controller was killed`);
      mark('treeGone');
      // What the next start's reap would find: nothing.
      const tracker = win.WindowsTreeTracker.fromRecord(readJson(join(workdir, 'record.json')));
      if (!tracker.job) fail('the persisted record does not say the tree had a Job Object');
      const report = await win.terminateWindows(tracker, { immediate: true });
      result.report = report;
      if (report.killed.some((k) => k.signal === 'SIGKILL')) fail(`the reap after the job still had to kill: ${JSON.stringify(report.killed)}`);
    } else {
      // The incident, reproduced: Node's kill-on-close job ended cmd.exe only; python.exe and workers live on.
      await sleep(1500);
      const rows = rowsOf(keep(await read()));
      if (alive(rows, ready.rootPid)) result.notes.push(`root cmd.exe ${ready.rootPid} outlived the controller`);
      else result.notes.push(`root cmd.exe ${ready.rootPid} died with the controller (Node's kill-on-close job)`);
      const survivors = [launch.pid, ...launch.workers].filter((pid) => alive(rows, pid));
      result.notes.push(`unguarded: ${survivors.length} of 3 python.exe outlived the controller (${survivors})`);
      if (survivors.length !== 3) fail(`expected the unguarded python tree to survive the controller (incident reproduction), alive: ${survivors}`);
      // The next start's reap, from the persisted record (what the registry holds), through the stop protocol.
      const tracker = win.WindowsTreeTracker.fromRecord(readJson(join(workdir, 'record.json')));
      const report = await win.terminateWindows(tracker, { immediate: true });
      result.report = report;
      if (report.survivors.length > 0) fail(`reap from the record left survivors: ${JSON.stringify(report.survivors)}`);
      mark('reaped');
    }
    void before;
    sampling = false;
    await sampler;
    await finalCheck({ rootPid: ready.rootPid, rootPpid: ready.controllerPid, tracker: undefined, killedPids: result.report?.killed?.map((k) => k.pid) });
  } finally {
    sampling = false;
    await sampler;
    if (child.exitCode === null) child.kill();
  }
}

// The job launcher re-quotes the command line for CreateProcessW: a tree started through it must see exactly
// the arguments Node's own spawn (windowsJob: false) gives it.
async function argvParity() {
  const tricky = ['plain', 'with space', 'say "hi"', 'C:\\dir with space\\', '', 'tab\there', 'a\\\\"b c', '100%', '^&|<>'];
  const seen = {};
  for (const job of [true, false]) {
    const out = join(workdir, `argv-${job ? 'job' : 'nojob'}.json`);
    const handle = await proc.launch({ ...launchSpec(), command: pythonExe, args: [join(fixtures, 'argv.cjs'), out, ...tricky], windowsJob: job });
    const exit = await Promise.race([handle.exited, sleep(20_000).then(() => 'timeout')]);
    handle.dispose();
    if (!existsSync(out)) {
      fail(`${job ? 'job' : 'no job'}: the argv fixture wrote nothing (exit ${JSON.stringify(exit)})`);
      continue;
    }
    seen[job ? 'job' : 'nojob'] = readJson(out);
    if (job && handle.windowsJob?.pid !== seen.job.pid) fail(`the launcher reported pid ${handle.windowsJob?.pid}, the command says it is ${seen.job.pid}`);
  }
  result.notes.push(`argv: ${JSON.stringify(seen)}`);
  if (JSON.stringify(seen.job?.args) !== JSON.stringify(tricky)) fail(`through the job launcher the arguments arrived as ${JSON.stringify(seen.job?.args)}`);
  if (JSON.stringify(seen.nojob?.args) !== JSON.stringify(tricky)) fail(`through Node's spawn the arguments arrived as ${JSON.stringify(seen.nojob?.args)}`);
}

// A command CreateProcessW cannot run (a script, not an executable): the launcher reports the Win32 error, and
// launch() refuses with JOB_OBJECT_FAILED, leaving nothing running.
async function refusal() {
  const before = rowsOf(keep(await read()));
  const started = performance.now();
  let error;
  try {
    const handle = await proc.launch({ ...launchSpec(), command: join(fixtures, 'argv.cjs'), args: [join(workdir, 'never.json')] });
    fail(`launch() accepted a command CreateProcessW cannot run (root ${handle.root.pid})`);
  } catch (caught) {
    error = caught;
  }
  result.notes.push(`refused in ${Math.round(performance.now() - started)} ms: ${error?.code}: ${error?.message}`);
  if (error?.code !== 'JOB_OBJECT_FAILED') fail(`expected JOB_OBJECT_FAILED, got ${error?.code}: ${error?.message}`);
  if (!/Win32 error \d+/.test(String(error?.message))) fail(`the refusal does not name the Win32 error: ${error?.message}`);
  await sleep(500);
  const after = rowsOf(keep(await read()));
  const newcomers = after.filter((row) => !before.some((old) => old.pid === row.pid) && !/fastlist|conhost/i.test(row.name) && row.ppid !== process.pid);
  if (existsSync(join(workdir, 'never.json'))) fail('the refused command ran');
  const leftovers = after.filter((row) => row.ppid === process.pid && !/fastlist/i.test(row.name));
  if (leftovers.length > 0) fail(`processes left by the refused launch: ${show(leftovers)}`);
  result.notes.push(`new processes after the refusal (not ours): ${show(newcomers)}`);
}

if (mode === 'controller') {
  await controller();
} else {
  try {
    if (['plain-stop', 'polite-stop', 'middle-killed', 'relaunch'].includes(scenario)) await ownScenario();
    else if (scenario === 'argv') await argvParity();
    else if (scenario === 'refusal') await refusal();
    else if (scenario === 'controller-killed') await controllerKilled(true);
    else if (scenario === 'controller-killed-unguarded') await controllerKilled(false);
    else throw new Error(`unknown scenario ${mode}`);
  } catch (error) {
    fail(`harness error: ${error?.stack ?? error}`);
  }
  await finishRun({ result, killDecoys, taken, mark, file: join(workdir, 'result.json') });
}
