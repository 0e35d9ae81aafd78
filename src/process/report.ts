// What a stop observed: who died and how, who survived and why. Shared by every platform's stop protocol.
import type { ProcessRole } from './types.js';

/** One process that died under the protocol, and the strongest signal it received (`none`: it exited by itself). */
export interface KilledProcess {
  pid: number;
  name: string;
  role: ProcessRole;
  signal: 'SIGTERM' | 'SIGKILL' | 'none';
}

/** One owned process still alive when the protocol gave up, and why we think it survived. */
export interface Survivor {
  pid: number;
  name: string;
  role: ProcessRole;
  reason: string;
  /** The kernel refused our signals (EPERM): no retry can kill it; the report names it and the stop ends. */
  denied?: boolean;
}

/** What terminate observed. `survivors` empty is the only success, and it was read back from the table. */
export interface TerminationReport {
  survivors: Survivor[];
  killed: KilledProcess[];
  /** True when SIGKILL was needed (grace expired, or `immediate`). */
  escalated: boolean;
  durationMs: number;
  /** How many process-table reads the protocol made. */
  reads: number;
  /** The cgroup backend: which cgroup was stopped and whether it was removed after `populated 0`. */
  containment?: { backend: 'cgroup'; cgroup: string; removed: boolean };
}
