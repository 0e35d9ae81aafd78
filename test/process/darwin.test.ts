// macOS start times, on recorded `ps` output (this machine is Linux: the parsing and the refusal are proven here,
// the ps invocation itself only on a Mac; docs/ARCHITECTURE.md says so).
import { describe, expect, test } from 'vitest';
import { parseLstart, parsePsStartTimes, readStartTimeDarwin } from '../../src/process/posix/darwin.js';
import { darwinIdentityHolds } from '../../src/process/identity.js';

// Recorded on macOS 14 (`ps -o lstart= -p 98231`, `ps -A -o pid=,lstart=`): day-of-month padded with a space.
const ONE = 'Fri Dec  4 20:45:23 2026\n';
const LISTING = ['    1 Thu Nov 27 09:12:44 2026', '  312 Thu Nov 27 09:12:51 2026', '98231 Fri Dec  4 20:45:23 2026', '98240 (garbage)', ''].join('\n');

describe('macOS start times from ps lstart', () => {
  test('lstart text parses to the local time it names, padded day or not, and equals what ps-list derives', () => {
    const expected = new Date(2026, 11, 4, 20, 45, 23).getTime();
    expect(parseLstart(ONE)).toBe(expected);
    expect(parseLstart('Fri Dec 4 20:45:23 2026')).toBe(expected);
    // ps-list's own parse of the same field: new Date(<lstart>).
    expect(parseLstart(ONE)).toBe(new Date('Fri Dec  4 20:45:23 2026').getTime());
  });

  test('anything that is not an lstart is refused, never guessed', () => {
    for (const text of ['', '   ', '20:45:23', 'Fri Dec  4 2026', 'STARTED', 'Fri Foo 99 99:99:99 2026']) expect(parseLstart(text)).toBeUndefined();
  });

  test('a ps -A listing gives one start time per pid and drops the lines it cannot read', () => {
    const times = parsePsStartTimes(LISTING);
    expect([...times.keys()]).toEqual([1, 312, 98231]);
    expect(times.get(98231)).toBe(new Date(2026, 11, 4, 20, 45, 23).getTime());
  });

  test('one pid is read with ps -o lstart= -p PID; a pid that is gone (ps exits 1, no output) has no start time', () => {
    const calls: string[][] = [];
    expect(readStartTimeDarwin(98231, (args) => (calls.push(args), ONE))).toBe(new Date(2026, 11, 4, 20, 45, 23).getTime());
    expect(calls).toEqual([['-o', 'lstart=', '-p', '98231']]);
    expect(readStartTimeDarwin(98232, () => { throw new Error('exit 1'); })).toBeUndefined();
    expect(readStartTimeDarwin(98233, () => '')).toBeUndefined();
    expect(readStartTimeDarwin(0, () => ONE)).toBeUndefined();
  });

  test('a pid is signalled only while its start time reads back equal: unreadable, reused or unrecorded means refused', () => {
    const start = new Date(2026, 11, 4, 20, 45, 23).getTime();
    const identity = { pid: 98231, startTime: start, clock: 'ps-list' as const };
    expect(darwinIdentityHolds(identity, () => start)).toBe(true);
    // Reused: same pid, another process started a second later.
    expect(darwinIdentityHolds(identity, () => start + 1000)).toBe(false);
    // Start time cannot be read (ps failed, process gone): refused.
    expect(darwinIdentityHolds(identity, () => undefined)).toBe(false);
    // Recorded without a start time, or in another clock: a pid alone proves nothing.
    expect(darwinIdentityHolds({ pid: 98231, startTime: undefined }, () => start)).toBe(false);
    expect(darwinIdentityHolds({ pid: 98231, startTime: 12345, clock: 'proc' }, () => 12345)).toBe(false);
  });
});
