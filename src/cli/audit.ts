// `warden audit`: owned, stale and foreign look-alike processes on this machine; exit 0 ok, 1 warning, 2 critical.
import { hostname } from 'node:os';
import { DEFAULT_THRESHOLDS } from '../../machines/index.js';
import type { CountLimit } from '../../machines/index.js';
import { STATE_DIR_VARIABLE, parseMarker, readEnvironVariable } from '../process/index.js';
import type { Lookalike, ProcessTable } from '../process/index.js';
import { reapLeftovers } from '../process/state/reap.js';
import { launchCgroups } from '../process/posix/cgroup.js';
import { chooseContainment } from '../process/containment.js';
import type { ContainmentBackend } from '../process/containment.js';
import type { ReapEntry } from '../process/state/reap.js';
import type { LaunchRecord, Registry } from '../process/state/registry.js';
import { EXIT } from './exit.js';
import { createOutput, plural } from './output.js';
import type { Output } from './output.js';
import { foreignLookalikes, listed, markedInstanceIds, ownedBy, readTable } from './scan.js';
import type { ListedProcess } from './scan.js';
import { readLockHolder, readRegistryRecords, resolveTarget } from './state.js';
import type { LockHolderInfo, Target } from './state.js';

export interface AuditOptions {
  config?: string;
  stateDir?: string;
  instance?: string[];
  allStateDirs?: boolean;
  json?: boolean;
}

/** A marker's processes in the report. */
export interface MarkerGroup {
  instanceId: string;
  marker: string;
  /** The state directory the tree was launched from (WARDEN_STATE_DIR beside the marker); null when it carries none. */
  launchedFrom: string | null;
  processes: ListedProcess[];
}

/** What `warden audit` found and concluded; `--json` prints exactly this. */
export interface AuditReport {
  host: string;
  at: string;
  stateDir: string;
  configFile: string | null;
  /** `configured`: only markers of the config's (and --instance) ids are ours; `every-marker`: no config, all are. */
  scope: 'configured' | 'every-marker';
  managedIds: string[];
  /** Stale markers count only when launched from this state directory; null: from any (no --config/--state-dir, or --all-state-dirs). */
  stateDirScope: string | null;
  supervisor: LockHolderInfo | null;
  thresholds: { warning: CountLimit; critical: CountLimit; source: 'config' | 'defaults' };
  /** Live launches of the live supervisor holding the state directory. */
  owned: MarkerGroup[];
  /**
   * Ours, from an earlier run or launch: exactly what `warden reap` would kill. `parent` is the live parent of the
   * group's top process when that parent is not in the group: a leftover's parent is init (or a subreaper); a
   * node parent may be a live supervisor using another state dir (said, never decided on).
   */
  stale: Array<MarkerGroup & { source: 'registry' | 'stale-marker'; parent: { pid: number; name: string } | null }>;
  /** Warden markers of instance ids not managed here, or launched from another state directory: reported, never counted, never reaped. */
  unmanaged: Array<MarkerGroup & { why: 'other-id' | 'other-state-dir' }>;
  /**
   * Windows: registry records that cannot prove which processes are their tree (no tree record: an older Warden's;
   * or a supervisor gone before its first listing). Not counted, never reaped; `problem` says why and what to do.
   */
  unproven: Array<{ instanceId: string; marker: string; rootPid: number; problem: string }>;
  /** Look like a WebUI, carry no marker: never Warden's to kill. */
  foreign: Array<Lookalike & { command: string }>;
  /**
   * How trees are contained on this machine: what `auto` picks here and why, what each configured instance asks
   * for, and every Warden launch cgroup on disk (`populated`: has live members; `recorded`: a registry record names it).
   */
  containment: {
    auto: { backend: ContainmentBackend; reason: string } | { backend: null; reason: string };
    instances: Array<{ id: string; requested: string }>;
    cgroups: Array<{ path: string; populated: boolean; recorded: boolean }>;
  };
  counts: { python: number; shell: number; total: number; owned: number; stale: number; unmanaged: number; foreign: number };
  level: 'ok' | 'warning' | 'critical';
  reason: string;
  exitCode: number;
  problems: string[];
}

// Runs the audit and prints it; resolves with the exit code.
export async function auditCommand(options: AuditOptions): Promise<number> {
  const target = await resolveTarget(options);
  const report = await audit(target, options.instance ?? [], options.allStateDirs === true);
  const out = createOutput();
  if (options.json === true) out.json(report);
  else printAudit(out, report);
  return report.exitCode;
}

// Scans the machine once and classifies every marked and look-alike process.
export async function audit(target: Target, extraIds: readonly string[] = [], allStateDirs = false): Promise<AuditReport> {
  const table = await readTable();
  const problems: string[] = [];
  const supervisor = readLockHolder(target.stateDir) ?? null;
  const { records, problem } = readRegistryRecords(target.stateDir);
  if (problem !== undefined) problems.push(problem);

  const configured = target.config !== undefined || extraIds.length > 0;
  const managed = new Set<string>([...(target.config?.instances.map((instance) => instance.id) ?? []), ...extraIds]);
  if (!configured) for (const id of markedInstanceIds(table)) managed.add(id);
  for (const record of records) managed.add(record.instanceId);

  // A live supervisor (or one on another host, which we cannot check) owns every launch its registry lists.
  const supervisorLive = supervisor !== null && supervisor.status !== 'dead';
  const liveRecords = supervisorLive ? records : [];
  const owned = liveRecords.map((record) => {
    const processes = ownedBy(record, table);
    return { instanceId: record.instanceId, marker: record.marker, launchedFrom: launchedFrom(processes.map((entry) => entry.pid)), processes };
  });

  // Like the supervisor: with a config or --state-dir, a stale marker is ours only if launched from that state dir.
  const stateDirScope = target.from !== 'default' && !allStateDirs ? target.stateDir : null;
  const dryRun = await reapLeftovers({
    registry: readOnlyRegistry(records),
    instanceIds: managed,
    liveMarkers: new Set(liveRecords.map((record) => record.marker)),
    dryRun: true,
    readTable: async () => table,
    ...(stateDirScope !== null && { stateDir: stateDirScope }),
  });
  const rows = (entry: ReapEntry): ListedProcess[] => entry.found.map((found) => row(table, found));
  const from = (entry: ReapEntry): string | null => launchedFrom(entry.found.map((found) => found.pid));
  const stale = dryRun.entries
    .filter((entry) => entry.action === 'would-reap')
    .map((entry) => ({
      instanceId: entry.instanceId,
      marker: entry.marker,
      launchedFrom: from(entry),
      source: entry.source as 'registry' | 'stale-marker',
      processes: rows(entry),
      parent: parentOutside(table, entry.found.map((found) => found.pid)),
    }));
  const unmanaged = dryRun.entries
    .filter((entry) => entry.action === 'left-alone')
    .map((entry) => {
      const instanceId = entry.instanceId || (parseMarker(entry.marker)?.instanceId ?? '?');
      const why: 'other-id' | 'other-state-dir' = managed.has(instanceId) ? 'other-state-dir' : 'other-id';
      return { instanceId, marker: entry.marker, launchedFrom: from(entry), why, processes: rows(entry) };
    });
  const rootPids = new Map(records.map((record) => [record.marker, record.root.pid]));
  const unproven = dryRun.entries
    .filter((entry) => entry.action === 'unprovable')
    .map((entry) => ({ instanceId: entry.instanceId, marker: entry.marker, rootPid: rootPids.get(entry.marker) ?? 0, problem: entry.problem ?? 'ownership cannot be proven' }));
  const foreign = foreignLookalikes(table, target.config).map((lookalike) => ({
    ...lookalike,
    command: row(table, lookalike).command,
  }));

  const containment = auditContainment(target, records);
  const thresholds = target.config?.watchdog ?? DEFAULT_THRESHOLDS;
  const counted = new Map<number, ListedProcess>();
  for (const group of [...owned, ...stale]) for (const process of group.processes) counted.set(process.pid, process);
  const python = [...counted.values()].filter((entry) => entry.role === 'python').length;
  const shell = [...counted.values()].filter((entry) => entry.role === 'shell').length;
  const staleCount = new Set(stale.flatMap((group) => group.processes.map((entry) => entry.pid))).size;
  const judged = judge({ python, shell, stale: staleCount }, thresholds);
  // A dead supervisor's record that cannot be checked may hide the incident itself: never "ok".
  const { level, reason } =
    judged.level === 'ok' && unproven.length > 0
      ? { level: 'warning' as const, reason: `${plural(unproven.length, 'registry record')} whose tree cannot be proven (Windows)` }
      : judged;

  return {
    host: hostname(),
    at: new Date().toISOString(),
    stateDir: target.stateDir,
    configFile: target.configFile ?? null,
    scope: configured ? 'configured' : 'every-marker',
    managedIds: [...managed].sort(),
    stateDirScope,
    supervisor,
    thresholds: { warning: thresholds.warning, critical: thresholds.critical, source: target.config === undefined ? 'defaults' : 'config' },
    owned,
    stale,
    unmanaged,
    unproven,
    foreign,
    containment,
    counts: {
      python,
      shell,
      total: counted.size,
      owned: new Set(owned.flatMap((group) => group.processes.map((entry) => entry.pid))).size,
      stale: staleCount,
      unmanaged: unmanaged.reduce((sum, group) => sum + group.processes.length, 0),
      foreign: foreign.length,
    },
    level,
    reason,
    exitCode: level === 'critical' ? EXIT.critical : level === 'warning' ? EXIT.failure : EXIT.ok,
    problems,
  };
}

/**
 * The audit's level, over the processes that are ours (owned + stale; foreign and unmanaged never count):
 * critical when python > critical.python or shell > critical.shell; warning when python > warning.python or
 * shell > warning.shell, or when any stale process exists at all (an orphan is the incident, however few); else ok.
 */
export function judge(
  counts: { python: number; shell: number; stale: number },
  thresholds: { warning: CountLimit; critical: CountLimit },
): { level: AuditReport['level']; reason: string } {
  const { critical, warning } = thresholds;
  if (counts.python > critical.python) return { level: 'critical', reason: `python ${counts.python} > ${critical.python}` };
  if (counts.shell > critical.shell) return { level: 'critical', reason: `shell ${counts.shell} > ${critical.shell}` };
  if (counts.python > warning.python) return { level: 'warning', reason: `python ${counts.python} > ${warning.python}` };
  if (counts.shell > warning.shell) return { level: 'warning', reason: `shell ${counts.shell} > ${warning.shell}` };
  if (counts.stale > 0) return { level: 'warning', reason: `${plural(counts.stale, 'stale process', 'stale processes')} left by an earlier run` };
  return { level: 'ok', reason: `python ${counts.python}, shell ${counts.shell}, nothing stale` };
}

// The machine's containment as `auto` sees it (the probe makes and removes one empty cgroup), and the launch cgroups on disk.
function auditContainment(target: Target, records: LaunchRecord[]): AuditReport['containment'] {
  let auto: AuditReport['containment']['auto'];
  try {
    const choice = chooseContainment('auto');
    auto = { backend: choice.backend, reason: choice.reason };
  } catch (error) {
    auto = { backend: null, reason: (error as Error).message };
  }
  const recorded = new Set(records.map((record) => record.cgroup).filter((path): path is string => path !== undefined));
  return {
    auto,
    instances: (target.config?.instances ?? []).map((instance) => ({ id: instance.id, requested: instance.containment })),
    cgroups: launchCgroups().map((cgroup) => ({ ...cgroup, recorded: recorded.has(cgroup.path) })),
  };
}

// The state directory handed down beside the marker, read from the first carrier that has one (never on Windows:
// no process can read another's environment there, and /proc paths would name something else, e.g. Wine's host).
export function launchedFrom(pids: readonly number[]): string | null {
  if (process.platform === 'win32') return null;
  for (const pid of pids) {
    const dir = readEnvironVariable(pid, STATE_DIR_VARIABLE);
    if (dir !== undefined) return dir;
  }
  return null;
}

// The live parent of a group's top process, when it is not a member itself.
function parentOutside(table: ProcessTable, pids: number[]): { pid: number; name: string } | null {
  const members = new Set(pids);
  const top = pids.map((pid) => table.processes.get(pid)).find((info) => info !== undefined && !members.has(info.ppid));
  if (top === undefined) return null;
  const parent = table.processes.get(top.ppid);
  return parent === undefined ? null : { pid: parent.pid, name: parent.name };
}

// A reap entry's process (or a look-alike) as a report row, from the table it was found in.
function row(table: ProcessTable, found: { pid: number; name: string; role: ListedProcess['role'] }): ListedProcess {
  const info = table.processes.get(found.pid);
  return info === undefined ? { pid: found.pid, ppid: 0, name: found.name, role: found.role, command: found.name } : { ...listed(info), role: found.role };
}

// The registry's records for a dry run: reapLeftovers only lists them (nothing is removed when nothing is killed).
export function readOnlyRegistry(records: LaunchRecord[]): Registry {
  const view: Pick<Registry, 'list' | 'remove'> = { list: () => structuredClone(records), remove: async () => false };
  return view as Registry;
}

function printAudit(out: Output, report: AuditReport): void {
  const { style } = out;
  const levelText = { ok: style.green('OK'), warning: style.yellow('WARNING'), critical: style.red('CRITICAL') }[report.level];
  out.line(style.bold(`Warden audit of ${report.host}`) + style.dim(`  ${report.at}`));
  out.line(`  state dir    ${report.stateDir}`);
  out.line(`  supervisor   ${describeHolder(report.supervisor)}`);
  out.line(
    `  ours         ${report.scope === 'every-marker' ? 'every Warden marker (no --config)' : `markers of ${report.managedIds.join(', ') || '(none)'}`}` +
      `, ${report.stateDirScope === null ? 'launched from any state dir' : 'launched from this state dir'}`,
  );
  const t = report.thresholds;
  out.line(`  thresholds   warning python > ${t.warning.python} or shell > ${t.warning.shell}; critical python > ${t.critical.python} or shell > ${t.critical.shell} (${t.source})`);
  const k = report.containment;
  out.line(`  containment  ${k.auto.backend ?? 'none'} here (${k.auto.reason})${k.instances.length > 0 ? `; configured: ${k.instances.map((entry) => `${entry.id} ${entry.requested}`).join(', ')}` : ''}`);
  if (k.cgroups.length > 0) {
    const populated = k.cgroups.filter((cgroup) => cgroup.populated);
    const unrecorded = populated.filter((cgroup) => !cgroup.recorded);
    out.line(`  cgroups      ${plural(k.cgroups.length, 'launch cgroup')} (${populated.length} populated${unrecorded.length > 0 ? `, ${unrecorded.length} populated without a record here: ${unrecorded.map((cgroup) => cgroup.path).join(', ')}` : ''})`);
  }
  for (const problem of report.problems) out.line(style.yellow(`  note: ${problem}`));

  section(out, `Owned by the live supervisor`, report.owned, (group) => group.processes);
  section(
    out,
    `Stale: ours, left by an earlier run (\`warden reap\` kills these)`,
    report.stale,
    (group) => group.processes,
    (group) =>
      ` [${group.source}${group.parent === null ? '' : `, parent ${group.parent.pid} ${group.parent.name}`}` +
      `${report.stateDirScope === null ? `, from ${group.launchedFrom ?? 'no state dir'}` : ''}]`,
  );
  section(
    out,
    `Unmanaged: other instance ids, or launched from another state dir (left alone)`,
    report.unmanaged,
    (group) => group.processes,
    (group) => (group.why === 'other-state-dir' ? ` [from ${group.launchedFrom ?? 'no state dir'}]` : ''),
    true,
  );
  if (report.unproven.length > 0) {
    out.line('');
    out.line(style.bold(`Cannot be proven ours: registry records without a usable Windows tree record (${report.unproven.length})`));
    for (const entry of report.unproven) {
      out.line(`  ${entry.instanceId}  marker ${entry.marker}  root pid ${entry.rootPid}`);
      out.line(style.yellow(`           ${entry.problem}`));
    }
  }
  out.line('');
  out.line(style.bold(`Foreign look-alikes: not started by Warden, never killed by it (${report.foreign.length})`));
  if (report.foreign.length === 0) out.line(style.dim('  none'));
  for (const entry of report.foreign) out.line(`  ${String(entry.pid).padStart(7)}  ${entry.role.padEnd(6)}  ${entry.why}: ${entry.command}`);

  out.line('');
  const c = report.counts;
  out.line(`counts  python ${c.python} · shell ${c.shell} · total ${c.total}  (owned ${c.owned}, stale ${c.stale}; not counted: unmanaged ${c.unmanaged}, foreign ${c.foreign})`);
  out.line(`level   ${levelText}: ${report.reason}  (exit ${report.exitCode})`);
}

function section<T extends MarkerGroup>(
  out: Output,
  title: string,
  groups: T[],
  processes: (group: T) => ListedProcess[],
  suffix: (group: T) => string = () => '',
  compact = false,
): void {
  const count = groups.reduce((sum, group) => sum + processes(group).length, 0);
  out.line('');
  out.line(out.style.bold(`${title} (${count})`));
  if (groups.length === 0) out.line(out.style.dim('  none'));
  for (const group of groups) {
    out.line(`  ${group.instanceId}  marker ${group.marker}${suffix(group)}  ${plural(processes(group).length, 'process', 'processes')}`);
    if (compact) {
      out.line(out.style.dim(`           ${processes(group).map((entry) => `${entry.pid} ${entry.name}`).join(', ')}`));
      continue;
    }
    for (const entry of processes(group)) out.line(`  ${String(entry.pid).padStart(7)}  ${entry.role.padEnd(6)}  ${entry.command}`);
  }
}

export function describeHolder(holder: LockHolderInfo | null): string {
  if (holder === null) return 'none (no lock in the state dir)';
  if (holder.status === 'live') return `pid ${holder.pid}, running since ${holder.startedAt}`;
  if (holder.status === 'unknown') return `pid ${holder.pid} on host "${holder.hostname}" (cannot be checked from here)`;
  return `none alive (stale lock of pid ${holder.pid}, started ${holder.startedAt})`;
}
