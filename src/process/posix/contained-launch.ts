// What launch() puts in front of a POSIX command for its containment backend, and how it confirms the tree is
// contained before the launch counts: the cgroup join step (sh writes its pid into cgroup.procs, then execs), or
// the subreaper shim (node subreaper-main, reporting on fd 3). The marker backend adds nothing.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cgroupJoinArgv, createCgroup, removeCgroup, waitCgroupEvents } from './cgroup.js';
import type { ContainmentChoice } from '../containment.js';

/** The spawned process, as much of it as confirming needs. */
interface Spawned {
  readonly stdio: ReadonlyArray<unknown>;
}

/** How to start a contained command, and how to confirm it is contained once spawned. */
export interface ContainedStart {
  file: string;
  args: string[];
  /** Whether the spawn needs the fd 3 control pipe (the subreaper shim). */
  control: boolean;
  /** The launch cgroup (already created, still empty). */
  cgroup?: string;
  /** Registers who hears the command's own exit before the root's (the shim outlives its command). */
  onCommandExit?: (settle: (code: number | null, signal: string | null) => void) => void;
  /** Resolves once the root is contained (the shim's command pid with it); rejects with why not. */
  confirm(spawned: Spawned, pid: number, exited: Promise<{ code: number | null; signal: string | null }>): Promise<{ commandPid?: number }>;
  /** Undoes what was made before the spawn (the empty cgroup) after a refused launch. */
  abandon(): void;
}

/** How long the root may take to join its cgroup or the shim to start the command (node + tsx cold start). */
const CONFIRM_TIMEOUT_MS = 15_000;

// The command that runs the shim: the .ts source through tsx (tests), or the built .js with plain node.
function shimArgs(): string[] {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    return ['--import', tsx, join(dirname(here), 'subreaper-main.ts')];
  }
  return [join(dirname(here), 'subreaper-main.js')];
}

// The start for `choice`, or undefined for the marker backend. Creates the launch cgroup (throws when it cannot).
export function startContained(choice: ContainmentChoice, marker: string, application: string, args: readonly string[]): ContainedStart | undefined {
  if (choice.backend === 'cgroup') {
    if (choice.cgroupParent === undefined) throw new Error('containment "cgroup" without a cgroup parent');
    const cgroup = createCgroup(choice.cgroupParent, marker);
    const argv = cgroupJoinArgv(cgroup, application, args);
    return {
      ...argv,
      control: false,
      cgroup,
      confirm: async (_spawned, pid, exited) => {
        // populated 1: the only process that can be in a fresh cgroup is our root, which wrote itself there.
        const joined = waitCgroupEvents(cgroup, (events) => events?.populated === true, CONFIRM_TIMEOUT_MS);
        const outcome = await Promise.race([joined.then((ok) => (ok ? 'joined' : 'timeout')), exited.then((exit) => exit)]);
        if (outcome === 'joined') return {};
        if (outcome === 'timeout') throw new Error(`the root (pid ${pid}) did not join cgroup ${cgroup} within ${CONFIRM_TIMEOUT_MS} ms`);
        // Exited before we saw it inside: only the join step's own failure is a refusal (it ran and ended fast otherwise).
        if (outcome.code === 125) throw new Error(`the root (pid ${pid}) could not join cgroup ${cgroup} (cgroup.procs not writable)`);
        return {};
      },
      abandon: () => void removeCgroup(cgroup),
    };
  }
  if (choice.backend === 'subreaper') {
    let onExit: ((code: number | null, signal: string | null) => void) | undefined;
    return {
      file: process.execPath,
      args: [...shimArgs(), application, ...args],
      control: true,
      onCommandExit: (settle) => {
        onExit = settle;
      },
      confirm: (spawned, pid, exited) =>
        new Promise((resolveReady, rejectReady) => {
          const pipe = spawned.stdio[3] as Readable | undefined;
          if (pipe === undefined || pipe === null) return rejectReady(new Error('the subreaper shim has no control pipe'));
          let settled = false;
          const timer = setTimeout(() => fail(`the subreaper shim (pid ${pid}) did not start the command within ${CONFIRM_TIMEOUT_MS} ms`), CONFIRM_TIMEOUT_MS);
          const fail = (message: string): void => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            rejectReady(new Error(message));
          };
          createInterface({ input: pipe, crlfDelay: Infinity }).on('line', (line) => {
            const space = line.indexOf(' ');
            const kind = line.slice(0, space);
            let fields: Record<string, unknown> = {};
            try {
              fields = JSON.parse(line.slice(space + 1)) as Record<string, unknown>;
            } catch {
              return;
            }
            if (kind === 'ready' && typeof fields.pid === 'number' && !settled) {
              settled = true;
              clearTimeout(timer);
              resolveReady({ commandPid: fields.pid });
            } else if (kind === 'error') {
              fail(String(fields.message));
            } else if (kind === 'exit') {
              onExit?.(typeof fields.code === 'number' ? fields.code : null, typeof fields.signal === 'string' ? fields.signal : null);
            }
          });
          void exited.then((exit) => fail(`the subreaper shim (pid ${pid}) exited (code ${String(exit.code)}) before the command ran`));
        }),
      abandon: () => undefined,
    };
  }
  return undefined;
}
