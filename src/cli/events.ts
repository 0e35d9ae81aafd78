// Live lines for the supervisor's events: `[  2.31s] webui  running → stopping (crash: process exited …)`.
import type { Supervisor, WardenEvent } from '../runtime/supervisor.js';
import { byRole, duration, plural, stamp } from './output.js';
import type { Output } from './output.js';

export interface EventPrinterOptions {
  /** performance.now() of time zero. */
  origin: number;
  /** Print `launch` events (pid and marker). Default true. */
  launches?: boolean;
}

// A function that prints one event (or nothing, for samples and sub-state moves that say nothing new).
export function createEventPrinter(supervisor: Supervisor, out: Output, options: EventPrinterOptions): (event: WardenEvent) => void {
  const { style } = out;
  const width = Math.max(8, ...supervisor.config.instances.map((instance) => instance.id.length));
  const name = (id: string): string => style.cyan(id.padEnd(width));
  const at = (): string => style.dim(stamp(options.origin));
  const system = (label: string): string => style.bold(label.padEnd(width));
  let watchdogLevel = 'ok';
  const crashedAt = new Map<string, number>();

  const why = (id: string, to: string, from: string | null): string => {
    const status = supervisor.status().instances.find((instance) => instance.id === id);
    if (status === undefined) return '';
    if (to === 'stopping') {
      const reason = status.stopReason ?? 'stop';
      return reason === 'crash' && status.lastError !== null ? ` (crash: ${status.lastError})` : ` (${reason})`;
    }
    if (to === 'crashed') {
      crashedAt.set(id, performance.now());
      const restart = supervisor.config.instances.find((instance) => instance.id === id)?.restart;
      return restart === undefined ? '' : `  backoff before restart ${status.restarts + 1} of at most ${restart.maxRestarts}`;
    }
    if (to === 'spawning' && from === 'crashed') {
      const since = crashedAt.get(id);
      crashedAt.delete(id);
      return since === undefined ? '' : ` (after ${duration(performance.now() - since)} of backoff)`;
    }
    if (to === 'failed') return ` (${status.lastError ?? 'failed'})`;
    if (to === 'running') {
      const pids = [status.shellPid !== null && `shell pid ${status.shellPid}`, status.pythonPid !== null && `python pid ${status.pythonPid}`].filter(Boolean);
      return pids.length > 0 ? `  ${pids.join(', ')}` : '';
    }
    return '';
  };

  return (event) => {
    switch (event.type) {
      case 'transition': {
        if (event.from === event.to && !event.detail.endsWith('retrying')) return;
        const from = event.from ?? 'start';
        const to = event.to === 'stopping' && event.detail.endsWith('retrying') ? `${style.red('stopping (retrying, escalated)')}` : event.to;
        out.line(`${at()} ${name(event.instance)} ${from} → ${style.bold(to)}${why(event.instance, event.to, event.from)}`);
        return;
      }
      case 'launch':
        if (options.launches !== false) out.line(`${at()} ${name(event.instance)} ${style.dim(`launched pid ${event.pid}, marker ${event.marker}`)}`);
        return;
      case 'termination': {
        const { report } = event;
        const survivors = report.survivors.length;
        const text = `confirmed dead (${event.reason}): ${plural(report.killed.length, 'process', 'processes')} stopped [${byRole(report.killed)}] in ${duration(report.durationMs)}, survivors ${survivors}`;
        out.line(`${at()} ${name(event.instance)} ${survivors === 0 ? style.green(text) : style.red(text.replace('confirmed dead', 'NOT confirmed dead'))}`);
        return;
      }
      case 'stale-reaped': {
        const survivors = event.report.survivors.length;
        const text = `stale marker ${event.marker}: ${plural(event.report.killed.length, 'process', 'processes')} killed, survivors ${survivors}`;
        out.line(`${at()} ${name(event.instance)} ${survivors === 0 ? text : style.red(text)}`);
        return;
      }
      case 'reap': {
        const { report } = event;
        const acted = report.entries.filter((entry) => entry.action === 'reaped' || entry.action === 'nothing-left');
        const alone = report.entries.filter((entry) => entry.action === 'left-alone').length;
        const others = alone === 0 ? '' : ` (${plural(alone, 'marker')} of other instance ids left alone)`;
        const unprovable = report.entries.filter((entry) => entry.action === 'unprovable');
        for (const entry of unprovable) {
          out.line(`${at()} ${system('reap')} ${style.red(`record ${entry.marker} not reaped: ${entry.problem ?? 'ownership cannot be proven'}`)}`);
        }
        if (acted.length === 0) {
          if (unprovable.length === 0) out.line(`${at()} ${system('reap')} nothing of ours left to reap${others}`);
          return;
        }
        const killed = acted.reduce((sum, entry) => sum + entry.killed.length, 0);
        out.line(`${at()} ${system('reap')} ${plural(acted.length, 'leftover marker')}: ${plural(killed, 'process', 'processes')} killed, survivors ${report.survivors.length}${others}`);
        return;
      }
      case 'alert':
        if (event.source === 'watchdog') {
          const text = `${watchdogLevel} → ${event.level}: ${event.message}`;
          watchdogLevel = event.level;
          const coloured = event.level === 'ok' ? style.green(text) : event.level === 'warning' ? style.yellow(text) : style.red(text);
          out.line(`${at()} ${system('watchdog')} ${coloured}`);
        } else {
          out.line(`${at()} ${event.instance === undefined ? system(event.source) : name(event.instance)} ${style.red(`! ${event.message}`)}`);
        }
        return;
      case 'emergency':
        out.line(`${at()} ${system('EMERGENCY')} ${style.red(`${event.level}: stopping every instance, reaping leftovers, writing a diagnostic bundle; restarts held until reset`)}`);
        return;
      case 'bundle':
        out.line(`${at()} ${system('bundle')} diagnostic bundle written: ${event.path}`);
        return;
      case 'sample':
        return;
    }
  };
}
