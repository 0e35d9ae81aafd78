// The /proc stat parser reads bytes, not a decoded line: these pin it to what the kernel writes, odd names included,
// and compare it with a plain split of the real files of live processes.
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { hasProcfs, listProcPids, parseStat, readProcess, readStartTime } from '../../src/process/posix/procfs.js';

// The obvious parse: split the fields after the last ')' (field 3 is the first one after it).
function reference(line: string): { state: string; ppid: number; pgid: number; sid: number; startTime: number; name: string } {
  const close = line.lastIndexOf(')');
  const fields = line.slice(close + 2).trimEnd().split(' ');
  return {
    name: line.slice(line.indexOf('(') + 1, close),
    state: fields[0] as string,
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    sid: Number(fields[3]),
    startTime: Number(fields[19]),
  };
}

const tail = '0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 9 10 11\n';

describe('parseStat', () => {
  test('a comm with spaces and parentheses is split at the last ")"', () => {
    expect(parseStat(42, `42 (a) (b c) S 7 42 7 ${tail}`)).toEqual({
      pid: 42, ppid: 7, pgid: 42, sid: 7, startTime: 123456, state: 'S', name: 'a) (b c', cmdline: undefined, uid: undefined,
    });
  });

  test('a zombie, a negative tty_nr and a line without its newline still parse', () => {
    expect(parseStat(9, `9 (sh) Z 1 9 1 ${tail.trimEnd()}`)).toMatchObject({ state: 'Z', ppid: 1, startTime: 123456 });
  });

  test('a truncated or malformed line is not a row', () => {
    expect(parseStat(5, '5 (x) S 1 5')).toBeUndefined();
    expect(parseStat(5, '5 x S 1 5 1')).toBeUndefined();
    expect(parseStat(5, `5 (x) S - 5 1 ${tail}`)).toBeUndefined();
  });

  test('a non-ASCII comm reads back byte for byte (latin1: offsets never shift)', () => {
    const line = Buffer.concat([Buffer.from('77 ('), Buffer.from('zoë', 'utf8'), Buffer.from(`) R 3 77 3 ${tail}`)]).toString('latin1');
    expect(Buffer.from(parseStat(77, line)?.name ?? '', 'latin1').toString('utf8')).toBe('zoë');
  });
});

describe.runIf(hasProcfs)('readProcess on live processes', () => {
  test('every readable process matches the plain split of its own stat file', () => {
    let compared = 0;
    for (const pid of listProcPids()) {
      let line: string;
      try {
        line = readFileSync(`/proc/${pid}/stat`, 'latin1');
      } catch {
        continue;
      }
      const row = readProcess(pid, false, false);
      if (row === undefined) continue;
      const expected = reference(line);
      // A process may change state between the two reads; everything else is fixed for its life.
      expect({ ...row, state: expected.state }).toEqual({ pid, ...expected, cmdline: undefined, uid: undefined });
      compared += 1;
    }
    expect(compared).toBeGreaterThan(3);
  });

  test('this process: cmdline and uid filled in, and readStartTime agrees', () => {
    const row = readProcess(process.pid);
    expect(row).toMatchObject({ pid: process.pid, ppid: process.ppid, uid: process.getuid?.() });
    expect(row?.cmdline).toEqual(readFileSync('/proc/self/cmdline', 'utf8').replace(/\0$/, '').split('\0'));
    expect(readStartTime(process.pid)?.startTime).toBe(row?.startTime);
  });
});
