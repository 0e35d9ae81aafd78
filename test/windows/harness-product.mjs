// The Windows side of the product scenarios of the Wine suite: the compiled `warden` CLI itself, under Wine,
// supervising `cmd.exe /d /s /c webui-user.bat` → python.exe → 2 workers, killed like Task Manager's "End task",
// then `warden audit` and `warden reap` run as a user would after the incident. The outcome goes to a FILE as
// JSON (Windows node.exe under Wine dies with EBADF when it writes to a Unix pipe).
//
//   node.exe harness-product.mjs <scenario> <workdir> <python.exe>
//     cli-killed-unguarded   `warden run --no-sentinel`, killed: the python tree outlives it; audit lists it as stale
//                            (exit 1), `reap --dry-run` kills nothing, `reap` stops it from the registry's tree record
//     cli-killed-guarded     `warden run` (force-close guard on), killed: the guard stops the tree; audit shows
//                            nothing stale (exit 0); reap only forgets the record
//     cli-killed-restart     `warden run --no-sentinel`, killed; a second `warden run` reaps the orphaned tree before
//                            it spawns, then POST /api/shutdown stops its own tree (confirmed, exit 0)
//
// It runs the private build (test/windows/global-setup.ts: tsc --outDir .wine-test/dist; WARDEN_WINE_DIST overrides).
// Every fake process records its pid/ppid in <workdir>/state/pids, and the harness keeps its own listings, so the
// final check ("nothing of the tree alive in a fresh listing, both decoys alive") does not rely on Warden's word.
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { alive, createDecoys, createListings, finishRun, recordedIn, rowsOf, show } from './harness-common.mjs';
import { independentTree as independentTreeOf } from './independent-tree.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const fixtures = join(here, 'fixtures');
const dist = process.env.WARDEN_WINE_DIST ?? join(repo, '.wine-test', 'dist');
const cli = join(dist, 'src', 'cli.js');
const proc = await import(pathToFileURL(join(dist, 'src', 'process', 'index.js')).href);
// `warden run` serves the dashboard from dist/src/server/dashboard or <dist>/../src/server/dashboard (the package's
// layout); the private build sits one level deeper than dist/, so the files go next to its server code.
cpSync(join(repo, 'src', 'server', 'dashboard'), join(dist, 'src', 'server', 'dashboard'), { recursive: true });
// These scenarios are about what happens when nothing in the kernel holds the tree (the tracker, the registry, the
// guard): where the config knows a Job Object option (`instances[].windowsJob`), they turn it off.
const { configJsonSchema } = await import(pathToFileURL(join(dist, 'src', 'config', 'index.js')).href);
const knowsWindowsJob = JSON.stringify(configJsonSchema()).includes('"windowsJob"');

const [scenario, workdirArg, pythonExe] = process.argv.slice(2);
if (scenario === undefined || workdirArg === undefined || pythonExe === undefined) {
  throw new Error('usage: node harness-product.mjs <scenario> <workdir> <python.exe>');
}
const workdir = resolve(workdirArg);
// The fake WebUI's state (pid files, tmp\restart), and Warden's state directory (lock, registry, guard log).
const stateDir = join(workdir, 'state');
const pidDir = join(stateDir, 'pids');
const wardenDir = join(workdir, 'warden');
const configFile = join(workdir, 'warden.config.json');
const instanceId = 'wine-webui';
mkdirSync(pidDir, { recursive: true });
const logFile = join(workdir, 'harness.log');
const log = (...parts) => appendFileSync(logFile, `${new Date().toISOString()} ${parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join(' ')}\n`);

const writeJson = (file, value) => {
  writeFileSync(`${file}.tmp`, JSON.stringify(value, null, 2));
  renameSync(`${file}.tmp`, file);
};
const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));
const readTail = (file, chars = 4000) => (existsSync(file) ? readFileSync(file, 'utf8').slice(-chars) : '(no file)');

// ---------------------------------------------------------------------------------------------------------
// Listings (the harness's own, independent of Warden's tracker)

const read = () => proc.snapshot({ backend: 'ps-list', cmdline: false });
const taken = createListings();
const { listings, keep } = taken;
const sorted = (pids) => [...pids].sort((a, b) => a - b);
const recorded = () => recordedIn(pidDir);
const launchesOf = () => recorded().filter((e) => e.kind === 'launch' && e.role === 'launch');

async function waitFor(what, timeoutMs, condition, sample, describeLast = () => '') {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = condition(await sample());
    if (value) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${describeLast()}`);
    await sleep(150);
  }
}

// The processes of the tree, from the harness's own listings (test/windows/independent-tree.mjs).
const independentTree = (rootPid, rootPpid) => independentTreeOf(rootPid, rootPpid, listings);

// Re-reads the table every 150 ms for the whole scenario, so short-lived members show up in the tree above.
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    try {
      keep(await read());
    } catch (error) {
      log('listing failed', String(error));
    }
    await sleep(150);
  }
})();

// ---------------------------------------------------------------------------------------------------------
// Decoys: a cmd.exe running a python.exe, started outside Warden; they must survive everything

const { decoys, startDecoy, killDecoys } = createDecoys({ fixtures, pythonExe, stateDir, pidDir, read, log });

// ---------------------------------------------------------------------------------------------------------
// The product: `node.exe dist/src/cli.js <command>`, output to files

// Starts a warden command; stdout and stderr go to <name>.out / <name>.err (never a pipe: EBADF under Wine).
function startWarden(name, args) {
  const out = openSync(join(workdir, `${name}.out`), 'w');
  const err = openSync(join(workdir, `${name}.err`), 'w');
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: node.exe running the compiled CLI is this harness's direct child (its pid, its exit event).
  // Cleanup handled by: `audit`/`reap` exit by themselves (awaited, killed by pid on timeout); `run` is killed by
  //   pid below (the scenario itself); the Linux afterEach ends everything left with `wineserver -k` on OUR prefix.
  // Known risks: a `run` that hangs past the scenario lives until that afterEach.
  const child = spawn(process.execPath, [cli, ...args], {
    stdio: ['ignore', out, err],
    windowsHide: true,
    env: { ...process.env, WARDEN_LOG_LEVEL: 'info', NO_COLOR: '1' },
  });
  closeSync(out);
  closeSync(err);
  const exited = new Promise((ok) => child.once('exit', (code, signal) => ok({ code, signal })));
  log('started warden', name, args.join(' '), { pid: child.pid });
  return { name, child, exited };
}

// Runs a warden command to its end; resolves with its exit code, its stdout and (for --json) the parsed value.
async function warden(name, args, timeoutMs = 40_000) {
  const started = performance.now();
  const run = startWarden(name, args);
  const timer = sleep(timeoutMs).then(() => 'timeout');
  const outcome = await Promise.race([run.exited, timer]);
  if (outcome === 'timeout') {
    run.child.kill();
    throw new Error(`warden ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr: ${readTail(join(workdir, `${name}.err`))}`);
  }
  const stdout = readFileSync(join(workdir, `${name}.out`), 'utf8');
  let json;
  if (args.includes('--json')) {
    try {
      json = JSON.parse(stdout);
    } catch (error) {
      throw new Error(`warden ${args.join(' ')} printed no JSON (${error}); stdout: ${stdout.slice(0, 2000)} stderr: ${readTail(join(workdir, `${name}.err`))}`);
    }
  }
  const ms = Math.round(performance.now() - started);
  log('warden', name, { code: outcome.code, ms });
  return { code: outcome.code, stdout, json, ms };
}

// The JSON lines a `warden run --json` (started as `name`) printed so far.
function runEvents(name = 'run') {
  const file = join(workdir, `${name}.out`);
  if (!existsSync(file)) return [];
  const events = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      events.push(JSON.parse(line));
    } catch {
      // a line being written
    }
  }
  return events;
}

function readRegistry() {
  try {
    return readJson(join(wardenDir, 'registry.json')).records;
  } catch {
    return undefined; // missing, or being replaced right now
  }
}

function guardLog() {
  const file = join(wardenDir, 'windows-guard.log');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

// ---------------------------------------------------------------------------------------------------------
// The scenario

const result = { scenario, failures: [], notes: [], timings: {}, cli: {} };
const fail = (message) => {
  result.failures.push(message);
  log('FAIL', message);
};
const check = (condition, message) => {
  if (!condition) fail(message);
  return condition;
};
const t0 = performance.now();
const mark = (name) => {
  result.timings[name] = Math.round(performance.now() - t0);
};

function writeConfig(job = false) {
  writeJson(configFile, {
    stateDir: wardenDir,
    instances: [
      {
        id: instanceId,
        command: 'cmd.exe',
        args: ['/d', '/s', '/c', join(fixtures, 'webui-user.bat')],
        cwd: workdir,
        env: { PYTHON: pythonExe, FAKE_WEBUI_STATE_DIR: stateDir },
        // The fake serves on a port it picks itself: no health URL to probe (running = its root runs).
        health: null,
        gracefulStop: false,
        startupTimeoutMs: 60_000,
        ...(knowsWindowsJob && !job && { windowsJob: false }),
      },
    ],
    watchdog: { sampleIntervalMs: 500 },
    server: { host: '127.0.0.1', port: 0 },
  });
  if (knowsWindowsJob) result.notes.push(job ? 'windowsJob: true (the default: a Job Object around the tree)' : 'windowsJob: false (no Job Object around the tree)');
}

// Starts `warden run --config <file> --json` as `name` (output in <name>.out / <name>.err).
function startRun(name, guarded) {
  const run = startWarden(name, ['run', '--config', configFile, '--json', ...(guarded ? [] : ['--no-sentinel'])]);
  run.exit = undefined;
  void run.exited.then((exit) => {
    run.exit = exit;
    log(`warden ${name} exited`, exit);
  });
  return run;
}

// Up = the instance is running, the newest launch's python.exe and both workers are listed, and the registry's
// record of that launch already holds all three, alive, in its Windows tree record.
async function waitUp(run) {
  const up = await waitFor(
    `warden ${run.name} to have the tree up and recorded`,
    60_000,
    (rows) => {
      if (run.exit !== undefined) throw new Error(`warden ${run.name} exited early (${JSON.stringify(run.exit)}): ${readTail(join(workdir, `${run.name}.err`))}`);
      const events = runEvents(run.name);
      const launchEvent = events.filter((e) => e.type === 'launch' && e.instance === instanceId).at(-1);
      if (launchEvent === undefined || rows === undefined) return undefined;
      const running = events.some((e) => e.type === 'transition' && e.instance === instanceId && e.to === 'running' && e.at >= launchEvent.at);
      const record = readRegistry()?.find((r) => r.marker === launchEvent.marker);
      const liveMembers = new Set((record?.windows?.members ?? []).filter((m) => m.goneAt == null).map((m) => m.pid));
      const launch = launchesOf().find((e) => liveMembers.has(e.pid) && alive(rows, e.pid, e.ppid));
      if (!running || launch === undefined) return undefined;
      const tree = [launch.pid, ...launch.workers];
      if (!launch.workers.every((w) => alive(rows, w, launch.pid))) return undefined;
      if (!tree.every((pid) => liveMembers.has(pid))) return undefined;
      return { launchEvent, launch, record, launches: events.filter((e) => e.type === 'launch').length };
    },
    async () => rowsOf(await read()),
    () => `; run events: ${JSON.stringify(runEvents(run.name).slice(-6))}; registry: ${JSON.stringify(readRegistry())}; stderr: ${readTail(join(workdir, `${run.name}.err`), 2000)}`,
  );
  const rootPid = up.launchEvent.pid;
  if (up.launches > 1) result.notes.push(`warden ${run.name} launched ${up.launches} times before the tree was up (a failed start, restarted by its policy)`);
  check(up.record.root.pid === rootPid && up.record.windows.root.pid === rootPid, `the registry record's root (${up.record.root.pid}, tree ${up.record.windows.root.pid}) is not the launched root ${rootPid}`);
  return { ...up, rootPid, pythons: [up.launch.pid, ...up.launch.workers] };
}

// Task Manager's "End task": TerminateProcess on the supervisor, no chance to clean up.
async function killSupervisor(run) {
  process.kill(run.child.pid);
  await run.exited;
}

// The incident: Node's kill-on-close job ended cmd.exe at most; python.exe and its workers live on.
async function checkIncident(up) {
  await sleep(1500);
  const rows = rowsOf(keep(await read()));
  result.notes.push(alive(rows, up.rootPid) ? `root cmd.exe ${up.rootPid} outlived the supervisor` : `root cmd.exe ${up.rootPid} died with the supervisor (Node's kill-on-close job)`);
  const outlived = up.pythons.filter((pid) => alive(rows, pid));
  result.notes.push(`unguarded: ${outlived.length} of 3 python.exe outlived the supervisor (${outlived})`);
  check(outlived.length === 3, `expected the python tree to outlive the killed supervisor (the incident), alive: ${outlived}`);
}

async function cliKilled(guarded, job = false) {
  writeConfig(job);
  await startDecoy('before-launch');
  mark('decoyBefore');

  const run = startRun('run', guarded);
  const supervisorPid = run.child.pid;
  const up = await waitUp(run);
  mark('treeUpAndRecorded');
  const { rootPid, pythons } = up;
  result.root = rootPid;
  result.supervisor = supervisorPid;
  result.pythons = pythons;
  result.recordedMembers = up.record.windows.members.map((m) => `${m.pid}<${m.ppid} ${m.name || '?'}${m.goneAt == null ? '' : ' (dead)'}`);
  const guardPid = guarded ? guardLog().find((line) => line.event === 'start')?.pid : undefined;
  if (guarded) check(guardPid !== undefined, 'warden run started no force-close guard (no start line in windows-guard.log)');
  else check(!existsSync(join(wardenDir, 'windows-guard.log')), 'warden run --no-sentinel started a force-close guard anyway');

  if (job) check(up.record.windows.job === true, 'the registry record does not say the tree has a Job Object');
  if (!guarded) {
    // A steady tree adopts nothing: the supervisor must not rewrite the registry on every sample (3+ ticks here).
    const registryFile = join(wardenDir, 'registry.json');
    const before = { mtimeMs: statSync(registryFile).mtimeMs, text: readFileSync(registryFile, 'utf8') };
    await sleep(1600);
    const after = { mtimeMs: statSync(registryFile).mtimeMs, text: readFileSync(registryFile, 'utf8') };
    check(after.mtimeMs === before.mtimeMs && after.text === before.text, `the registry was rewritten while the tree stood still (mtime ${before.mtimeMs} → ${after.mtimeMs})`);
    mark('registrySteady');
  }
  await startDecoy('after-launch');
  mark('decoyAfter');

  await killSupervisor(run);
  mark('supervisorKilled');

  if (guarded) {
    await waitFor('the guard to finish', 30_000, (rows) => !alive(rows, guardPid), async () => rowsOf(await read())).catch((error) => fail(error.message));
    mark('guardDone');
    const lines = guardLog();
    result.guard = lines.map((line) => line.event);
    const stopped = lines.filter((line) => line.event === 'stopped');
    check(stopped.length === 1, `the guard logged ${stopped.length} stops: ${JSON.stringify(lines)}`);
    for (const entry of stopped) check(entry.report.survivors.length === 0, `the guard reported survivors: ${JSON.stringify(entry.report.survivors)}`);
    result.guardReport = stopped[0]?.report;
  } else if (job) {
    // The Job Object: the job launcher's tether hit EOF when warden run died; closing the job ended the tree.
    const killedAt = performance.now();
    const tree = up.record.windows.members.filter((m) => m.goneAt == null).map((m) => m.pid);
    const gone = await waitFor('the whole tree to die with warden run', 15_000, (rows) => tree.every((pid) => !alive(rows, pid)), async () => rowsOf(await read())).catch((error) => fail(`${error.message} (the Job Object should have ended it)`));
    if (gone !== undefined) result.notes.push(`job: all ${tree.length} processes of the tree gone ${Math.round(performance.now() - killedAt)} ms after warden run was killed`);
    mark('treeGone');
  } else {
    await checkIncident(up);
  }

  // `warden audit`: a dead supervisor's tree is stale (exit 1, warning), or nothing is (exit 0).
  const audit = await warden('audit', ['audit', '--config', configFile, '--json']);
  result.cli.audit = { code: audit.code, ms: audit.ms, level: audit.json.level, reason: audit.json.reason, stale: audit.json.stale, unproven: audit.json.unproven, supervisor: audit.json.supervisor };
  mark('audit');
  check(audit.json.supervisor?.status === 'dead', `audit sees the killed supervisor as ${JSON.stringify(audit.json.supervisor)}, not dead`);
  check(audit.json.unproven.length === 0, `audit could not prove the record: ${JSON.stringify(audit.json.unproven)}`);
  const stalePids = audit.json.stale.flatMap((group) => group.processes.map((p) => p.pid));
  if (guarded || job) {
    check(audit.code === 0 && audit.json.stale.length === 0, `audit after the guard: exit ${audit.code}, stale ${JSON.stringify(audit.json.stale)}`);
  } else {
    check(audit.code === 1 && audit.json.level === 'warning', `audit of the orphaned tree: exit ${audit.code} (${audit.json.level}: ${audit.json.reason}), expected 1 (warning)`);
    check(audit.json.stale.length === 1 && audit.json.stale[0].source === 'registry', `audit stale groups: ${JSON.stringify(audit.json.stale)}`);
    for (const pid of pythons) check(stalePids.includes(pid), `audit does not list python.exe ${pid} as stale (stale: ${stalePids})`);
    check(audit.json.counts.python === 3, `audit counts ${audit.json.counts.python} python, expected 3`);

    // `warden reap --dry-run`: lists the same tree, signals nothing.
    const dry = await warden('reap-dry', ['reap', '--config', configFile, '--dry-run', '--json']);
    result.cli.reapDryRun = { code: dry.code, ms: dry.ms, entries: dry.json.entries.map((e) => ({ action: e.action, found: e.found.map((f) => f.pid) })) };
    mark('reapDryRun');
    const wouldReap = dry.json.entries.filter((e) => e.action === 'would-reap').flatMap((e) => e.found.map((f) => f.pid));
    check(dry.code === 0 && sorted(wouldReap).join() === sorted(stalePids).join(), `reap --dry-run: exit ${dry.code}, would reap ${wouldReap}, audit said ${stalePids}`);
    const rows = rowsOf(keep(await read()));
    check(pythons.every((pid) => alive(rows, pid)), 'reap --dry-run killed something');
  }

  // `warden reap`: stops what the registry's tree record still proves ours; a fresh listing must agree.
  const reap = await warden('reap', ['reap', '--config', configFile, '--json']);
  result.cli.reap = { code: reap.code, ms: reap.ms, entries: reap.json.entries.map((e) => ({ action: e.action, recordRemoved: e.recordRemoved, killed: e.killed, survivors: e.survivors, problem: e.problem })) };
  mark('reap');
  const entry = reap.json.entries.find((e) => e.marker === up.launchEvent.marker);
  check(reap.code === 0, `reap exited ${reap.code}: ${reap.stdout.slice(0, 2000)}`);
  check(entry !== undefined && entry.recordRemoved === true && entry.survivors.length === 0, `reap entry: ${JSON.stringify(entry)}`);
  if (guarded || job) {
    check(entry?.action === 'nothing-left', `reap after the guard did ${entry?.action}, expected nothing-left`);
  } else {
    check(entry?.action === 'reaped', `reap did ${entry?.action}, expected reaped`);
    const killed = (entry?.killed ?? []).map((k) => k.pid);
    for (const pid of pythons) check(killed.includes(pid), `reap did not report stopping python.exe ${pid} (killed: ${killed})`);
  }
  result.killedPids = [...(result.guardReport?.killed ?? []), ...(entry?.killed ?? [])].map((k) => k.pid);
  check(Array.isArray(readRegistry()) && readRegistry().length === 0, `the registry still lists ${JSON.stringify(readRegistry())}`);

  // Afterwards the audit is clean.
  const after = await warden('audit-after', ['audit', '--config', configFile, '--json']);
  result.cli.auditAfter = { code: after.code, ms: after.ms, level: after.json.level, stale: after.json.stale };
  mark('auditAfter');
  check(after.code === 0 && after.json.stale.length === 0, `audit after the reap: exit ${after.code}, stale ${JSON.stringify(after.json.stale)}`);

  await finalCheck([[rootPid, supervisorPid]]);
}

// A record Warden cannot prove (as an older Warden wrote it: no Windows tree record): audit says so, reap kills
// nothing of it and exits 1; once the tree was ended by hand (by pid), `warden reap --forget` drops the record.
async function cliUnproven() {
  writeConfig(false);
  await startDecoy('before-launch');
  const run = startRun('run', false);
  const supervisorPid = run.child.pid;
  const up = await waitUp(run);
  mark('treeUpAndRecorded');
  await killSupervisor(run);
  mark('supervisorKilled');
  await checkIncident(up);
  const marker = up.launchEvent.marker;
  // An older Warden's record: everything but the Windows tree record.
  const registryFile = join(wardenDir, 'registry.json');
  const file = readJson(registryFile);
  for (const record of file.records) delete record.windows;
  writeJson(registryFile, file);

  const audit = await warden('audit', ['audit', '--config', configFile, '--json']);
  result.cli.audit = { code: audit.code, level: audit.json.level, stale: audit.json.stale, unproven: audit.json.unproven };
  check(audit.code === 1 && audit.json.unproven.length === 1 && audit.json.unproven[0].marker === marker, `audit of an unprovable record: exit ${audit.code}, unproven ${JSON.stringify(audit.json.unproven)}`);
  const reap = await warden('reap', ['reap', '--config', configFile, '--json']);
  const entry = reap.json.entries.find((e) => e.marker === marker);
  result.cli.reap = { code: reap.code, action: entry?.action, killed: entry?.killed, problem: entry?.problem };
  check(reap.code === 1 && entry?.action === 'unprovable' && entry.killed.length === 0, `reap of an unprovable record: exit ${reap.code}, ${JSON.stringify(entry)}`);
  const rows = rowsOf(keep(await read()));
  check(up.pythons.every((pid) => alive(rows, pid)), 'the reap of an unprovable record killed something');
  mark('reapRefused');

  // The user ends the tree by pid (Task Manager → Details), then tells Warden to forget the record.
  for (const pid of up.pythons) process.kill(pid);
  await waitFor('the hand-ended tree to be gone', 10_000, (now) => up.pythons.every((pid) => !alive(now, pid)), async () => rowsOf(await read()));
  const forget = await warden('forget', ['reap', '--config', configFile, '--forget', marker, '--json']);
  result.cli.forget = { code: forget.code, forgotten: forget.json?.forgotten };
  check(forget.code === 0 && JSON.stringify(forget.json?.forgotten) === JSON.stringify([marker]), `reap --forget: exit ${forget.code}: ${forget.stdout.slice(0, 500)} ${readTail(join(workdir, 'forget.err'), 500)}`);
  check(Array.isArray(readRegistry()) && readRegistry().length === 0, `the registry still lists ${JSON.stringify(readRegistry())}`);
  const after = await warden('audit-after', ['audit', '--config', configFile, '--json']);
  result.cli.auditAfter = { code: after.code, level: after.json.level, stale: after.json.stale, unproven: after.json.unproven };
  check(after.code === 0 && after.json.unproven.length === 0, `audit after --forget: exit ${after.code}, unproven ${JSON.stringify(after.json.unproven)}`);
  mark('forgotten');
  await finalCheck([[up.rootPid, supervisorPid]]);
}

// POSTs to the control API of a `warden run` (node:http: Node's fetch cannot connect under Wine 8).
async function postApi(path) {
  const server = readJson(join(wardenDir, 'server.json'));
  const token = readFileSync(join(wardenDir, 'token'), 'utf8').trim();
  const { request } = await import('node:http');
  return new Promise((resolvePost, rejectPost) => {
    const req = request(`${server.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk) => (body += chunk)).on('end', () => resolvePost({ status: res.statusCode, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`POST ${path}: no answer within 10 s`)));
    req.on('error', rejectPost);
    req.end();
  });
}

// The next start reaps before it spawns: a second `warden run` stops the first one's orphaned tree from the
// registry record, launches a new tree, and a shutdown through the control API stops that one, confirmed.
async function cliKilledRestart() {
  writeConfig();
  await startDecoy('before-launch');
  const first = startRun('run', false);
  const up = await waitUp(first);
  mark('treeUpAndRecorded');
  result.root = up.rootPid;
  result.pythons = up.pythons;
  await startDecoy('after-launch');
  await killSupervisor(first);
  mark('supervisorKilled');
  await checkIncident(up);

  const second = startRun('run2', false);
  const next = await waitUp(second);
  mark('restartedUp');
  const reapEvent = runEvents('run2').find((e) => e.type === 'reap');
  const entry = reapEvent?.report.entries.find((e) => e.marker === up.launchEvent.marker);
  result.startupReap = entry;
  check(entry !== undefined && entry.action === 'reaped' && entry.recordRemoved === true && entry.survivors.length === 0, `the second run's reap-before-spawn: ${JSON.stringify(reapEvent)}`);
  const killed = (entry?.killed ?? []).map((k) => k.pid);
  for (const pid of up.pythons) check(killed.includes(pid), `the second run's reap did not report stopping python.exe ${pid} (killed: ${killed})`);
  const launchedAt = runEvents('run2').find((e) => e.type === 'launch')?.at ?? 0;
  check(reapEvent !== undefined && reapEvent.at <= launchedAt, 'the second run launched before it reaped');
  const rows = rowsOf(keep(await read()));
  for (const pid of up.pythons) check(!alive(rows, pid), `python.exe ${pid} of the first run is alive after the second run's start`);
  check(next.rootPid !== up.rootPid && next.pythons.every((pid) => alive(rows, pid)), 'the second run\'s tree is not up');

  // A normal shutdown (POST /api/shutdown): every tree stopped and read back dead, the record removed, exit 0.
  const answer = await postApi('/api/shutdown');
  check(answer.status === 202, `POST /api/shutdown answered ${answer.status}: ${answer.body}`);
  const exit = await Promise.race([second.exited, sleep(30_000).then(() => 'timeout')]);
  mark('shutdown');
  result.shutdown = { exit, event: runEvents('run2').find((e) => e.type === 'shutdown') };
  check(exit !== 'timeout' && exit.code === 0, `warden run2 after POST /api/shutdown: ${JSON.stringify(exit)}`);
  const termination = runEvents('run2').find((e) => e.type === 'termination' && e.reason === 'shutdown');
  result.shutdownReport = termination?.report;
  check(termination !== undefined && termination.report.survivors.length === 0, `shutdown termination: ${JSON.stringify(termination)}`);
  check(Array.isArray(readRegistry()) && readRegistry().length === 0, `the registry still lists ${JSON.stringify(readRegistry())}`);

  const after = await warden('audit-after', ['audit', '--config', configFile, '--json']);
  result.cli.auditAfter = { code: after.code, ms: after.ms, level: after.json.level, stale: after.json.stale };
  check(after.code === 0 && after.json.stale.length === 0, `audit after the shutdown: exit ${after.code}, stale ${JSON.stringify(after.json.stale)}`);
  result.killedPids = [...killed, ...(termination?.report.killed ?? []).map((k) => k.pid)];
  await finalCheck([[up.rootPid, first.child.pid], [next.rootPid, second.child.pid]]);
}

// A fresh listing shows nothing of the trees alive (trees from the harness's listings + the pids the fakes
// recorded), every decoy alive, and Warden never reported killing a decoy.
async function finalCheck(roots) {
  sampling = false;
  await sampler;
  const rows = rowsOf(keep(await read()));
  result.freshListing = show(rows);
  const ownedEver = new Map(roots.flatMap(([rootPid, supervisorPid]) => independentTree(rootPid, supervisorPid)).map((r) => [`${r.pid}:${r.ppid}`, r]));
  for (const entry of recorded().filter((e) => e.role === 'launch')) ownedEver.set(`${entry.pid}:${entry.ppid}`, { pid: entry.pid, ppid: entry.ppid, name: 'python.exe' });
  result.ownedEver = [...ownedEver.values()].map((r) => `${r.pid}<${r.ppid} ${r.name || '?'}`);
  for (const row of ownedEver.values()) check(!alive(rows, row.pid, row.ppid), `owned process still alive in a fresh listing: ${row.pid}<${row.ppid} ${row.name}`);
  for (const decoy of decoys) {
    check(alive(rows, decoy.cmd) !== undefined, `decoy ${decoy.label} cmd.exe ${decoy.cmd} was killed`);
    check(decoy.python !== undefined && alive(rows, decoy.python, decoy.cmd) !== undefined, `decoy ${decoy.label} python.exe ${decoy.python} was killed`);
    for (const pid of [decoy.cmd, decoy.python]) check(!result.killedPids?.includes(pid), `Warden reports killing decoy pid ${pid}`);
  }
  result.recorded = recorded().map((e) => `${e.role} ${e.kind} ${e.pid}<${e.ppid}`);
}

try {
  if (scenario === 'cli-killed-unguarded') await cliKilled(false);
  else if (scenario === 'cli-killed-guarded') await cliKilled(true);
  else if (scenario === 'cli-killed-job') await cliKilled(false, true);
  else if (scenario === 'cli-unproven') await cliUnproven();
  else if (scenario === 'cli-killed-restart') await cliKilledRestart();
  else throw new Error(`unknown scenario ${scenario}`);
} catch (error) {
  fail(`harness error: ${error?.stack ?? error}`);
}
sampling = false;
await sampler;
await finishRun({ result, killDecoys, taken, mark, file: join(workdir, 'result.json') });
