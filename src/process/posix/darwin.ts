// macOS process identity: a pid alone proves nothing (pids are reused), so its start time is read from `ps -o lstart`
// (the same field, parsed the same way, as ps-list's `startTime`, so both compare in the `ps-list` clock). A pid
// whose start time cannot be read is never signalled (identity.ts). Tested on recorded output; not run on a Mac here.
import { execFileSync } from 'node:child_process';

/** Runs `ps` with arguments and returns its stdout; throws when ps fails (a pid that is gone: exit 1, no output). */
export type PsRunner = (args: string[]) => string;

const defaultRunner: PsRunner = (args) => execFileSync('ps', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });

// `lstart` text ("Fri Dec  4 20:45:23 2026", local time, 1 s resolution) as ms since the epoch, or undefined.
export function parseLstart(text: string): number | undefined {
  const trimmed = text.trim().replace(/\s+/g, ' ');
  if (!/^\w{3} \w{3} \d{1,2} \d{2}:\d{2}:\d{2} \d{4}$/.test(trimmed)) return undefined;
  // new Date(…) as ps-list does, so a start time read here equals the one in a ps-list table for the same process.
  const value = new Date(trimmed).getTime();
  return Number.isNaN(value) ? undefined : value;
}

// `ps -A -o pid=,lstart=` output as pid → start time (ms); lines that do not parse are left out, never guessed.
export function parsePsStartTimes(output: string): Map<number, number> {
  const times = new Map<number, number>();
  for (const line of output.split('\n')) {
    const match = /^\s*(\d+)\s+(.+)$/.exec(line);
    if (match === null) continue;
    const start = parseLstart(match[2] as string);
    if (start !== undefined) times.set(Number(match[1]), start);
  }
  return times;
}

// The start time of one pid now (ms since the epoch, `ps-list` clock), or undefined when it is gone or unreadable.
export function readStartTimeDarwin(pid: number, run: PsRunner = defaultRunner): number | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let output: string;
  try {
    output = run(['-o', 'lstart=', '-p', String(pid)]);
  } catch {
    return undefined;
  }
  return parseLstart(output);
}
