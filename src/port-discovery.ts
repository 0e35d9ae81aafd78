// Port discovery: `port: "auto:7860-7870"` picks the first port of the range that nobody holds, at each start.
import { createServer } from 'node:net';
import { findMarked, listeningPids, snapshot } from './process/index.js';
import { WardenError } from './errors.js';
import type { NamedProcess } from './errors.js';

/** An inclusive port range, from `"auto:LO-HI"`. */
export interface PortRange {
  from: number;
  to: number;
}

/** The config spelling of a range. */
export const AUTO_PORT = /^auto:(\d{1,5})-(\d{1,5})$/;

// Parses `"auto:LO-HI"`; undefined when the text is not of that shape (the numbers are checked by the config).
export function parsePortRange(text: string): PortRange | undefined {
  const match = AUTO_PORT.exec(text);
  if (match === null) return undefined;
  return { from: Number(match[1]), to: Number(match[2]) };
}

/** One port of a range that was not free, and who holds it (pids from /proc on Linux; empty when unknown). */
export interface HeldPort {
  port: number;
  holders: NamedProcess[];
  /** `another instance` when one of this supervisor's own instances has it. */
  why?: string;
}

// Refused before spawning: every port of the range is held.
export class PortRangeExhaustedError extends WardenError {
  constructor(
    readonly instanceId: string,
    readonly range: PortRange,
    readonly held: HeldPort[],
  ) {
    const shown = held.slice(0, 10).map((entry) => {
      const who = entry.why ?? (entry.holders.length === 0 ? 'holder unknown' : entry.holders.map((holder) => `pid ${holder.pid} ${holder.name}`).join(', '));
      return `${entry.port}: ${who}`;
    });
    const more = held.length > shown.length ? `; and ${held.length - shown.length} more` : '';
    super('PORT_RANGE_EXHAUSTED', `Cannot start "${instanceId}": no free port in auto:${range.from}-${range.to} (${shown.join('; ')}${more}). Stop a holder or widen the range.`);
  }
}

// Whether a listening socket on every IPv4 address can be bound to `port` now (it is closed again at once).
export function canBind(port: number, host = '0.0.0.0'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

// Who holds each port: pid and name from the process table, and the Warden marker if one is carried.
export async function holdersOf(ports: readonly number[]): Promise<Map<number, NamedProcess[]>> {
  const out = new Map<number, NamedProcess[]>();
  if (ports.length === 0) return out;
  const table = await snapshot({ cmdline: false });
  const markers = findMarked(table);
  for (const port of ports) {
    out.set(
      port,
      listeningPids(port).map((pid) => {
        const marker = markers.get(pid);
        return { pid, name: table.processes.get(pid)?.name ?? '?', ...(marker !== undefined && { marker }) };
      }),
    );
  }
  return out;
}

// The first port of `range` that can be bound and is not in `taken` (ports this supervisor's other instances use).
export async function pickPort(instanceId: string, range: PortRange, taken: ReadonlySet<number> = new Set()): Promise<number> {
  const busy: number[] = [];
  for (let port = range.from; port <= range.to; port += 1) {
    if (taken.has(port)) continue;
    if (await canBind(port)) return port;
    busy.push(port);
  }
  const holders = await holdersOf(busy);
  const held: HeldPort[] = [];
  for (let port = range.from; port <= range.to; port += 1) {
    if (taken.has(port)) held.push({ port, holders: [], why: 'another instance of this supervisor' });
    else held.push({ port, holders: holders.get(port) ?? [] });
  }
  throw new PortRangeExhaustedError(instanceId, range, held);
}
