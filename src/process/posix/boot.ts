// The kernel's boot id: pids and start times (clock ticks since boot) mean nothing across a reboot, so a record
// written under another boot id is never trusted to name a live process.
import { readFileSync } from 'node:fs';

const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';
let cached: string | null | undefined;

// This boot's id (a UUID, Linux), or undefined where the system has none (macOS, Windows).
export function currentBootId(): string | undefined {
  if (cached === undefined) {
    try {
      cached = readFileSync(BOOT_ID_PATH, 'utf8').trim() || null;
    } catch {
      cached = null;
    }
  }
  return cached ?? undefined;
}

// Whether something recorded with `recorded` comes from an earlier boot; a record without a boot id (older
// Warden) or a system without one is judged as before, by pid and start time.
export function fromAnotherBoot(recorded: string | undefined): boolean {
  const now = currentBootId();
  return recorded !== undefined && now !== undefined && recorded !== now;
}
