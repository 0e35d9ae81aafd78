// `warden reap`: kills what earlier runs left, on registry and marker proof only; refuses while a supervisor owns them.
import { existsSync } from 'node:fs';
import { acquireLock } from '../process/state/lock.js';
import type { Lock } from '../process/state/lock.js';
import { reapLeftovers } from '../process/state/reap.js';
import type { ReapEntry, ReapReport } from '../process/state/reap.js';
import { Registry } from '../process/state/registry.js';
import { describeHolder, launchedFrom, readOnlyRegistry } from './audit.js';
import { CliError, EXIT } from './exit.js';
import { createOutput, plural } from './output.js';
import type { Output } from './output.js';
import { readLockHolder, readRegistryRecords, resolveTarget } from './state.js';

export interface ReapOptions {
  config?: string;
  stateDir?: string;
  instance?: string[];
  allStateDirs?: boolean;
  dryRun?: boolean;
  /** Markers of unprovable registry records to drop (nothing is killed). */
  forget?: string[];
  graceMs?: number;
  json?: boolean;
}

// Runs the reap (or the dry run) and prints what it did; resolves with the exit code.
export async function reapCommand(options: ReapOptions): Promise<number> {
  const target = await resolveTarget(options);
  const managed = [...new Set([...(target.config?.instances.map((instance) => instance.id) ?? []), ...(options.instance ?? [])])];
  const dryRun = options.dryRun === true;

  const holder = readLockHolder(target.stateDir);
  if (holder !== undefined && holder.status !== 'dead') {
    throw new CliError(
      `refusing to reap: a live Warden supervisor (${describeHolder(holder)}) holds ${target.stateDir}; ` +
        `it owns those trees and reaps its own leftovers. Stop it first (Ctrl-C, or SIGTERM to pid ${holder.pid}).`,
      EXIT.busy,
    );
  }

  // A stale marker is ours only if its tree was launched from this state dir, as the supervisor itself decides;
  // --all-state-dirs widens that to any state dir (and to trees of older Wardens that carry none).
  const scope = options.allStateDirs === true ? {} : { stateDir: target.stateDir };
  const common = { instanceIds: managed, ...scope, ...(options.graceMs !== undefined && { graceMs: options.graceMs }) };
  if (options.forget !== undefined && options.forget.length > 0) return forgetRecords(target.stateDir, options.forget, common, options.json === true);
  let report: ReapReport;
  if (dryRun || !existsSync(target.stateDir)) {
    // Nothing to change in a state dir for a dry run, and none to create when it does not exist.
    const { records, problem } = readRegistryRecords(target.stateDir);
    if (problem !== undefined && !dryRun) throw new CliError(`cannot reap from the registry: ${problem}`, EXIT.failure);
    if (problem !== undefined) createOutput().note(`warden: note: ${problem}`);
    report = await reapLeftovers({ registry: readOnlyRegistry(records), dryRun, ...common });
  } else {
    // Holding the lock while reaping keeps a supervisor from starting on this state dir in the middle of it.
    const lock: Lock = await acquireLock(target.stateDir);
    try {
      const registry = await Registry.open(target.stateDir);
      report = await reapLeftovers({ registry, ...common });
    } finally {
      await lock.release();
    }
  }

  const out = createOutput();
  // An unprovable record (Windows) may still have a live tree that nobody could stop: not a success either.
  const unprovable = report.entries.some((entry) => entry.action === 'unprovable');
  const exitCode = !dryRun && (report.survivors.length > 0 || unprovable) ? EXIT.failure : EXIT.ok;
  const anyStateDir = options.allStateDirs === true;
  if (options.json === true) out.json({ stateDir: target.stateDir, managedIds: managed, stateDirScope: anyStateDir ? null : target.stateDir, exitCode, ...report });
  else printReap(out, report, target.stateDir, managed, anyStateDir);
  return exitCode;
}

// Drops unprovable records (and only those: a provable one is reaped, never forgotten); all or nothing, kills nothing.
async function forgetRecords(stateDir: string, markers: string[], common: Omit<Parameters<typeof reapLeftovers>[0], 'registry'>, json: boolean): Promise<number> {
  if (!existsSync(stateDir)) throw new CliError(`cannot forget ${markers.join(', ')}: the state directory ${stateDir} does not exist`, EXIT.usage);
  const lock: Lock = await acquireLock(stateDir);
  try {
    const registry = await Registry.open(stateDir);
    // What a reap would do with each record, signalling nothing: only `unprovable` may be forgotten.
    const verdicts = await reapLeftovers({ ...common, registry, dryRun: true });
    const recorded = registry.list().map((record) => record.marker);
    for (const marker of markers) {
      if (!recorded.includes(marker)) {
        throw new CliError(`--forget ${marker}: no registry record has this marker (records: ${recorded.length > 0 ? recorded.join(', ') : 'none'})`, EXIT.usage);
      }
      const verdict = verdicts.entries.find((entry) => entry.source === 'registry' && entry.marker === marker);
      if (verdict?.action !== 'unprovable') {
        throw new CliError(`--forget ${marker}: Warden can prove this record's tree (a reap would do: ${verdict?.action ?? 'nothing'}); run \`warden reap\` instead, which stops what is left and removes the record`, EXIT.usage);
      }
    }
    for (const marker of markers) await registry.remove(marker);
  } finally {
    await lock.release();
  }
  const out = createOutput();
  if (json) out.json({ stateDir, forgotten: markers, exitCode: EXIT.ok });
  else out.line(`forgot ${plural(markers.length, 'registry record')} (nothing was signalled): ${markers.join(', ')}`);
  return EXIT.ok;
}

function printReap(out: Output, report: ReapReport, stateDir: string, managed: string[], anyStateDir: boolean): void {
  const { style } = out;
  out.line(style.bold(report.dryRun ? 'Warden reap --dry-run (nothing is signalled)' : 'Warden reap'));
  out.line(`  state dir   ${stateDir}`);
  out.line(`  ours        registry records of that state dir, and stale markers of ${managed.length > 0 ? managed.join(', ') : '(no instance id: pass --config or --instance)'}`);
  out.line(`              launched from ${anyStateDir ? 'any state dir (--all-state-dirs)' : 'that state dir'}`);
  out.line(style.dim('  Foreign look-alikes and markers of other instance ids are never touched.'));
  out.line('');
  if (report.entries.length === 0) out.line('Nothing left by earlier runs.');
  for (const entry of report.entries) printEntry(out, entry, new Set(managed));

  const acted = report.entries.filter((entry) => entry.action === 'reaped' || entry.action === 'would-reap');
  const leftAlone = report.entries.filter((entry) => entry.action === 'left-alone');
  const unprovable = report.entries.filter((entry) => entry.action === 'unprovable');
  const unprovableText = unprovable.length === 0 ? '' : `; cannot prove ownership: ${plural(unprovable.length, 'record')}`;
  out.line('');
  if (report.dryRun) {
    const count = acted.reduce((sum, entry) => sum + entry.found.length, 0);
    out.line(`would kill ${plural(count, 'process', 'processes')} of ${plural(acted.length, 'marker')}; left alone: ${plural(leftAlone.length, 'marker')}${unprovableText}`);
  } else {
    const killed = acted.reduce((sum, entry) => sum + entry.killed.length, 0);
    const survivors = report.survivors.length;
    const text = `killed ${plural(killed, 'process', 'processes')} of ${plural(acted.length, 'marker')}; survivors: ${survivors}; left alone: ${plural(leftAlone.length, 'marker')}${unprovableText}`;
    out.line(survivors === 0 && unprovable.length === 0 ? text : style.red(text));
    for (const survivor of report.survivors) out.line(style.red(`  survivor ${survivor.pid} ${survivor.name} (${survivor.role}): ${survivor.reason}`));
  }
}

function printEntry(out: Output, entry: ReapEntry, managed: ReadonlySet<string>): void {
  const { style } = out;
  const label = {
    reaped: style.green('reaped    '),
    'would-reap': style.yellow('would reap'),
    'left-alone': style.dim('left alone'),
    'nothing-left': style.dim('forgotten '),
    unprovable: style.red('not proven'),
  }[entry.action];
  const why = {
    registry: 'registry record',
    'stale-marker': 'stale marker',
    unmanaged: managed.has(entry.instanceId)
      ? `launched from ${launchedFrom(entry.found.map((found) => found.pid)) ?? 'no state dir'}, not this one: another supervisor's (or pass --state-dir / --all-state-dirs)`
      : 'instance id not managed here: it may belong to another supervisor',
  }[entry.source];
  out.line(`${label}  ${entry.instanceId}  marker ${entry.marker}  [${why}]`);
  if (entry.action === 'left-alone') {
    out.line(style.dim(`            ${plural(entry.found.length, 'process', 'processes')}: ${entry.found.map((found) => `${found.pid} ${found.name}`).join(', ')}`));
    return;
  }
  if (entry.action === 'unprovable') {
    out.line(style.red(`            ${entry.problem ?? 'ownership cannot be proven'}`));
    out.line(style.dim('            the record is kept; nothing was signalled'));
    return;
  }
  if (entry.action === 'nothing-left' && entry.staleBoot !== undefined) {
    out.line(style.dim(`            recorded before a reboot (boot ${entry.staleBoot.recorded}, now ${entry.staleBoot.now}): its pids name nothing of ours, nothing was signalled; ${entry.recordRemoved === true ? 'the record was dropped' : 'the record is kept (dry run)'}`));
    return;
  }
  if (entry.action === 'nothing-left') {
    out.line(style.dim('            its tree is already gone; the record was dropped'));
    return;
  }
  if (entry.action === 'reaped') {
    for (const killed of entry.killed) out.line(`  ${String(killed.pid).padStart(7)}  ${killed.role.padEnd(6)}  ${killed.name}  ${killed.signal === 'none' ? 'exited' : killed.signal}`);
    for (const survivor of entry.survivors) out.line(style.red(`  ${String(survivor.pid).padStart(7)}  ${survivor.role.padEnd(6)}  ${survivor.name}  SURVIVED: ${survivor.reason}`));
    return;
  }
  for (const found of entry.found) out.line(`  ${String(found.pid).padStart(7)}  ${found.role.padEnd(6)}  ${found.name}`);
}
