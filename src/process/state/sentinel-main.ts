// The sentinel process: holds the supervisor's owner records and, if the supervisor goes away without a goodbye,
// stops every tracked tree with the ordinary stop protocol, logs a report and exits. Started by startSentinel.
//
//   node sentinel-main.js --log <stateDir>/sentinel.log --supervisor-pid <pid> [--supervisor-start <ticks>]
//
// stdin: newline-delimited JSON SentinelMessage lines. stdout: one `ready` line, nothing after. stderr: the log file.
import { constants, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { isLaunchCgroup } from '../posix/cgroup.js';
import { identityHoldsNow } from '../identity.js';
import type { OwnerRecord } from '../ownership.js';
import type { SentinelMessage } from './sentinel.js';
import { openNoFollowSync } from './statedir.js';
import { terminate } from '../terminate.js';
import type { TerminationReport } from '../report.js';
import type { ProcessIdentity } from '../types.js';

/** The stop protocol the sentinel runs on each tree: short grace, the supervisor is already gone. */
const TERMINATE_OPTIONS = { graceMs: 300, confirmTimeoutMs: 3000 } as const;
/** How often the supervisor's identity is re-checked (covers a pipe end inherited by someone else). */
const SUPERVISOR_POLL_MS = 200;
/** How long a supervisor seen gone gets for its pipe to report EOF before the sentinel stops waiting for it. */
const SUPERVISOR_GONE_WAIT_MS = 50;
/** The sentinel never outlives its job: it exits this long after a cleanup began, whatever happened. */
const HARD_DEADLINE_MS = 10_000;

const { values } = parseArgs({
  options: {
    log: { type: 'string' },
    'supervisor-pid': { type: 'string' },
    'supervisor-start': { type: 'string' },
  },
  strict: true,
});
const logPath = values.log;
const supervisorPid = Number(values['supervisor-pid']);
const supervisorStart = values['supervisor-start'] === undefined ? undefined : Number(values['supervisor-start']);
if (logPath === undefined || !Number.isInteger(supervisorPid) || supervisorPid <= 1 || (supervisorStart !== undefined && !Number.isInteger(supervisorStart))) {
  process.stderr.write(`sentinel: usage: --log <path> --supervisor-pid <pid> [--supervisor-start <ticks>] (got ${JSON.stringify(process.argv.slice(2))})\n`);
  process.exit(2);
}
const supervisor: ProcessIdentity = { pid: supervisorPid, startTime: supervisorStart, clock: 'proc' };
// Opened once, never through a symlink (a link planted later cannot redirect what we append); -1: no log, still kill.
const logFd = ((): number => {
  try {
    return openNoFollowSync(logPath, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
  } catch (error) {
    process.stderr.write(`sentinel: cannot open the log ${logPath}: ${(error as Error).message}\n`);
    return -1;
  }
})();

// One JSON line per event; a log that cannot be written must not stop the sentinel from killing.
function log(event: string, fields: Record<string, unknown> = {}): void {
  try {
    if (logFd >= 0) writeSync(logFd, `${JSON.stringify({ time: new Date().toISOString(), pid: process.pid, event, ...fields })}\n`);
  } catch {
    // nowhere left to report it
  }
}

// A message from the pipe, or a description of why it is not one.
function parseMessage(line: string): SentinelMessage | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'not JSON';
  }
  if (typeof value !== 'object' || value === null) return 'not an object';
  const message = value as Record<string, unknown>;
  if (message.type === 'goodbye') return { type: 'goodbye' };
  if (message.type === 'untrack') return typeof message.marker === 'string' ? { type: 'untrack', marker: message.marker } : 'untrack without a marker';
  if (message.type !== 'track') return `unknown type ${JSON.stringify(message.type)}`;
  const record = message.record as Partial<OwnerRecord> | undefined;
  const root = record?.root;
  if (typeof record?.instanceId !== 'string' || typeof record.marker !== 'string' || record.marker === '') return 'track: record needs instanceId and marker';
  // pid 1 and below are never anyone's tree; terminate's ownership proofs also refuse them.
  // root.pid 0: a launch about to happen, guarded by its marker alone until the real root is known.
  if (typeof root?.pid !== 'number' || !Number.isInteger(root.pid) || (root.pid !== 0 && root.pid <= 1)) return 'track: record.root.pid must be 0 (not spawned yet) or a pid above 1';
  if (record.pgid !== undefined && record.pgid !== null && (typeof record.pgid !== 'number' || record.pgid <= 1)) return 'track: record.pgid must be a pid above 1';
  // A cgroup is killed whole: only a launch cgroup Warden made for this very marker is accepted.
  if (record.cgroup !== undefined && !isLaunchCgroup(record.cgroup, record.marker)) return `track: record.cgroup ${JSON.stringify(record.cgroup)} is not a Warden launch cgroup of this marker`;
  return {
    type: 'track',
    record: {
      instanceId: record.instanceId,
      marker: record.marker,
      root: { pid: root.pid, startTime: typeof root.startTime === 'number' ? root.startTime : undefined, ...(root.clock !== undefined && { clock: root.clock }) },
      pgid: typeof record.pgid === 'number' ? record.pgid : undefined,
      ...(typeof record.cgroup === 'string' && { cgroup: record.cgroup }),
    },
  };
}

const tracked = new Map<string, OwnerRecord>();
/** One stop per tree, started at most once; a record that arrives during the cleanup joins it. */
const stops = new Map<string, Promise<TreeOutcome>>();
let leaving = false;
let cleaning = false;

type TreeOutcome = { instanceId: string; marker: string; survivors: unknown[] } & (Partial<TerminationReport> | { error: string });

function stop(record: OwnerRecord): void {
  if (stops.has(record.marker)) return;
  // A cgroup tree is killed at once (cgroup.kill, confirmed by populated 0): nobody is left to wait for a graceful exit.
  const outcome = terminate(record, record.cgroup === undefined ? TERMINATE_OPTIONS : { ...TERMINATE_OPTIONS, immediate: true }).then(
    (report): TreeOutcome => ({ instanceId: record.instanceId, marker: record.marker, ...report }),
    (error: unknown): TreeOutcome => ({ instanceId: record.instanceId, marker: record.marker, error: String(error), survivors: [{ pid: record.root.pid, reason: 'terminate failed' }] }),
  );
  stops.set(record.marker, outcome);
}

// The supervisor is gone without a goodbye: stop every tracked tree in parallel, report, exit.
async function cleanup(reason: 'pipe-closed' | 'pipe-error' | 'supervisor-gone'): Promise<void> {
  if (leaving) return;
  leaving = true;
  cleaning = true;
  clearInterval(supervisorWatch);
  setTimeout(() => {
    log('deadline', { reason, afterMs: HARD_DEADLINE_MS, pending: stops.size });
    process.exit(3);
  }, HARD_DEADLINE_MS);
  const started = performance.now();
  log('cleanup', { reason, trees: tracked.size });
  for (const record of tracked.values()) stop(record);
  let trees: TreeOutcome[] = [];
  do trees = await Promise.all(stops.values());
  while (trees.length < stops.size);
  const survivors = trees.reduce((sum, tree) => sum + tree.survivors.length, 0);
  log('report', { reason, durationMs: Math.round(performance.now() - started), survivors, trees });
  process.exit(survivors === 0 ? 0 : 1);
}

// A Ctrl-C or a hangup meant for the controller's terminal must not take the sentinel with it.
for (const signal of ['SIGINT', 'SIGHUP'] as const) process.on(signal, () => log('signal-ignored', { signal }));

const supervisorWatch = setInterval(() => {
  if (leaving || identityHoldsNow(supervisor)) return;
  // A short wait lets lines already in the pipe be read first (a last track or goodbye still counts). The EOF
  // usually lands in it too: a SIGKILLed multi-threaded supervisor shows as a zombie a moment before its last
  // thread closes the pipe. Either way the same cleanup runs; only the logged reason differs.
  setTimeout(() => void cleanup('supervisor-gone'), SUPERVISOR_GONE_WAIT_MS);
}, SUPERVISOR_POLL_MS);

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  if (line.trim() === '' || (leaving && !cleaning)) return;
  const message = parseMessage(line);
  if (typeof message === 'string') {
    log('bad-message', { problem: message, line: line.slice(0, 500) });
    return;
  }
  switch (message.type) {
    case 'track':
      tracked.set(message.record.marker, message.record);
      log('track', { record: message.record, trees: tracked.size });
      // Written just before the supervisor died: it is stopped with the others.
      if (cleaning) stop(message.record);
      break;
    case 'untrack':
      if (cleaning) log('untrack-too-late', { marker: message.marker });
      else log('untrack', { marker: message.marker, known: tracked.delete(message.marker), trees: tracked.size });
      break;
    case 'goodbye':
      if (cleaning) {
        log('goodbye-too-late', { trees: tracked.size });
        break;
      }
      leaving = true;
      log('goodbye', { trees: tracked.size });
      process.exit(0);
  }
});
// readline emits every buffered line before 'close', so a goodbye written just before EOF is always seen.
lines.on('close', () => void cleanup('pipe-closed'));
process.stdin.on('error', (error) => {
  log('pipe-error', { error: String(error) });
  void cleanup('pipe-error');
});

log('started', { supervisor, terminate: TERMINATE_OPTIONS });
process.stdout.write('ready\n');
