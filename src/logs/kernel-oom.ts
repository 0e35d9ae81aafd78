// The kernel's own word on an OOM kill: lines of the kernel log (/dev/kmsg, Linux) that name one of our pids.
import { closeSync, constants, openSync, readSync } from 'node:fs';

/** At most this many kernel records are read (the ring buffer holds a few thousand). */
const MAX_RECORDS = 20_000;

// "Out of memory: Killed process 1234 (python3)", "Memory cgroup out of memory: Killed process 1234 (python3)",
// "oom-kill:constraint=CONSTRAINT_NONE,...,task=python3,pid=1234,uid=0".
const KILLED = /Killed process (\d+)|oom-kill:.*\bpid=(\d+)/;

// The pid a kernel message says the OOM killer killed, or undefined.
export function oomKilledPid(message: string): number | undefined {
  const match = KILLED.exec(message);
  return match === null ? undefined : Number(match[1] ?? match[2]);
}

// Kernel log lines saying the OOM killer killed one of `pids`; null when the kernel log cannot be read.
export function kernelOomLines(pids: Iterable<number>, path = '/dev/kmsg'): string[] | null {
  const wanted = new Set(pids);
  let fd: number;
  try {
    // Non-blocking: /dev/kmsg blocks at its end waiting for new records; EAGAIN says we read them all.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  const found: string[] = [];
  const buffer = Buffer.alloc(8192);
  try {
    for (let records = 0; records < MAX_RECORDS; records += 1) {
      let size: number;
      try {
        size = readSync(fd, buffer, 0, buffer.length, null);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        // EPIPE: records were overwritten while we read; the next read continues with the oldest left.
        if (code === 'EPIPE') continue;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') break;
        return found.length > 0 ? found : null;
      }
      if (size === 0) break;
      // A record is "prio,seq,usec,flags;message\n" (then continuation lines).
      const record = buffer.toString('utf8', 0, size);
      const message = record.slice(record.indexOf(';') + 1).split('\n')[0] ?? '';
      const pid = oomKilledPid(message);
      if (pid !== undefined && wanted.has(pid)) found.push(message);
    }
  } finally {
    closeSync(fd);
  }
  return found;
}
