// The job launcher (Windows): a small node.exe that holds a kill-on-close Job Object around the WebUI's tree.
//
//   node.exe job-launcher.js --warden-job-launcher <application path> <argv0> [args...]
//
// It creates the job, starts the command suspended, assigns it to the job, writes one ready line, and only
// then resumes it, so not even cmd.exe's first child can start outside the job. From then on:
// - the command exits → the launcher exits with its code; closing the job ends whatever the command left
//   behind (stale-ppid workers included) in the same instant;
// - its stdin (Warden's pipe) reaches EOF → Warden is gone (killed, crashed): the launcher exits and the
//   kernel ends the whole tree; no other process has to be alive for that to happen;
// - `terminate` on stdin → TerminateJobObject, then exit.
// Killing the launcher itself (taskkill /F, Task Manager) closes the job too: that is how a stop ends the
// tree in one step, with the per-pid sweep and the confirmation read after it as before.
import { createInterface } from 'node:readline';
import { loadJobApi, windowsCommandLine } from './job-object.js';
import type { JobApi, Win32Handle } from './job-object.js';

/** The flag that makes this module run as the launcher. */
export const JOB_LAUNCHER_FLAG = '--warden-job-launcher';
/** The first line the launcher writes on stdout, followed by JSON `{ pid, jobPids }`, before the command runs. */
export const JOB_READY_PREFIX = 'warden-job-ready ';
/** The launcher's exit code when it could not put the command in a job (nothing of the command ever ran). */
export const JOB_FAILED_EXIT = 125;

/** What the launcher needs from the outside world; `runJobLauncher` defaults to the real ones. */
export interface JobLauncherOptions {
  /** The resolved executable (CreateProcessW's application name). */
  application: string;
  /** argv[0] as the caller gave it, then the arguments: quoted like Node's spawn would quote them. */
  argv: readonly string[];
  api?: JobApi;
  /** Warden's pipe: EOF means Warden is gone. Default process.stdin. */
  control?: NodeJS.ReadableStream;
  /** Where the ready line and errors go. Default: synchronous writes to fd 1 and fd 2. */
  writeOut?: (text: string) => void;
  writeErr?: (text: string) => void;
  /** How often to check whether the command has exited. Default 50 ms. */
  pollIntervalMs?: number;
}

// Runs the launcher; resolves with the exit code the launcher process should exit with.
export async function runJobLauncher(options: JobLauncherOptions): Promise<number> {
  const { writeSync } = await import('node:fs');
  const writeOut = options.writeOut ?? ((text: string) => writeSync(1, text));
  const writeErr = options.writeErr ?? ((text: string) => writeSync(2, text));
  const fail = (message: string): number => {
    writeErr(`warden-job-launcher: ${message}\n`);
    return JOB_FAILED_EXIT;
  };
  const [argv0, ...args] = options.argv;
  if (argv0 === undefined) return fail('no command given');

  let api: JobApi;
  let job: Win32Handle;
  try {
    api = options.api ?? loadJobApi();
    job = api.createKillOnCloseJob();
  } catch (error) {
    return fail(`cannot create a Job Object: ${(error as Error).message}`);
  }
  let child;
  try {
    child = api.spawnSuspended(options.application, windowsCommandLine(argv0, args));
  } catch (error) {
    return fail(`cannot start ${options.application}: ${(error as Error).message}`);
  }
  try {
    api.assign(job, child.process);
  } catch (error) {
    // Never let it run uncontained: it is still suspended, so it has started nothing yet.
    try {
      api.terminateProcess(child.process, JOB_FAILED_EXIT);
    } catch {
      // reported below either way
    }
    return fail(`cannot assign ${options.application} (pid ${child.pid}) to the Job Object: ${(error as Error).message}`);
  }
  // Written before the command runs, so it is the first line on the stdout the command shares with us.
  writeOut(`${JOB_READY_PREFIX}${JSON.stringify({ pid: child.pid, jobPids: safeIds(api, job) })}\n`);
  try {
    api.resume(child.thread);
  } catch (error) {
    api.terminateJob(job, JOB_FAILED_EXIT);
    return fail(`cannot resume ${options.application} (pid ${child.pid}): ${(error as Error).message}`);
  }
  api.closeHandle(child.thread);

  return new Promise<number>((resolveExit) => {
    let done = false;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      clearInterval(timer);
      lines.close();
      resolveExit(code);
    };
    const timer = setInterval(() => {
      let code: number | undefined;
      try {
        code = api.exitCode(child.process);
      } catch (error) {
        writeErr(`warden-job-launcher: cannot read the exit of pid ${child.pid}: ${(error as Error).message}\n`);
        code = 1;
      }
      if (code !== undefined) finish(code);
    }, options.pollIntervalMs ?? 50);
    const lines = createInterface({ input: options.control ?? process.stdin, crlfDelay: Infinity });
    lines.on('line', (line) => {
      if (line.trim() !== 'terminate') return;
      try {
        api.terminateJob(job, 1);
      } catch (error) {
        writeErr(`warden-job-launcher: ${(error as Error).message}\n`);
      }
    });
    // EOF: Warden is gone. Exiting closes the job, and the kernel ends every process in it.
    lines.once('close', () => finish(1));
  });
}

function safeIds(api: JobApi, job: Win32Handle): number[] {
  try {
    return api.processIds(job);
  } catch {
    return [];
  }
}

// The argv that runs this module as the launcher: the built .js with plain node, or the .ts source through tsx.
export async function jobLauncherArgs(application: string, argv: readonly string[]): Promise<string[]> {
  const { fileURLToPath, pathToFileURL } = await import('node:url');
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    const { createRequire } = await import('node:module');
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    return ['--import', tsx, here, JOB_LAUNCHER_FLAG, application, ...argv];
  }
  return [here, JOB_LAUNCHER_FLAG, application, ...argv];
}

// Run as the launcher only when started as `node <this file> --warden-job-launcher <application> <argv0> ...`.
if (process.argv[2] === JOB_LAUNCHER_FLAG && process.argv[1] !== undefined) {
  const { fileURLToPath } = await import('node:url');
  const { resolve } = await import('node:path');
  if (resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    const [application, ...argv] = process.argv.slice(3);
    const code = application === undefined ? await runJobLauncher({ application: '', argv: [] }) : await runJobLauncher({ application, argv });
    // Exiting closes the job handle: whatever is still in the job ends now.
    process.exit(code);
  }
}
