// The `warden` command line: commander definitions; each command lives in its own module, loaded when used.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { EXIT, reportError } from './exit.js';
import { packageVersion } from './package.js';

// `--grace-ms 500`: a whole number ≥ min, or a usage error naming the option.
const integer = (min: number, max = Number.MAX_SAFE_INTEGER) => (value: string): number => {
  const parsed = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new InvalidArgumentError(`expected a whole number from ${min} to ${max} (got "${value}")`);
  }
  return parsed;
};

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

// Builds the program; `done` receives each action's exit code.
export function buildProgram(done: (code: number) => void): Command {
  const program = new Command('warden')
    .description('Supervises a local Stable Diffusion WebUI and proves its whole shell + Python tree dead on every stop.')
    .version(packageVersion(), '-V, --version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      // One line, `warden: …`, like every other error.
      outputError: (text, write) => write(`warden: ${text.replace(/^error: /, '')}`),
    });

  program
    .command('demo')
    .description('supervise the bundled fake WebUI through a crash, a runaway and a shutdown, printing states, pids and counts')
    .option('--keep-running', 'after the story, keep supervising with the control API and dashboard until Ctrl-C')
    .option('--json', 'print one JSON summary instead of the story')
    .option('--id <id>', 'instance id (default webui-<4 random hex digits>)')
    .addOption(new Option('--workers <n>', 'workers of the fake WebUI').argParser(integer(1, 5)).default(4).hideHelp())
    .addOption(new Option('--runaway <n>', 'strays injected in step 3').argParser(integer(1, 64)).default(12).hideHelp())
    .action(async (options: { keepRunning?: boolean; json?: boolean; id?: string; workers: number; runaway: number }) => {
      const { demoCommand } = await import('./demo.js');
      done(await demoCommand(options));
    });

  program
    .command('run')
    .description('supervise the configured instances for real, serve the control API on loopback; SIGINT/SIGTERM shuts down')
    .requiredOption('-c, --config <file>', 'warden.config.json')
    .option('--inspect', 'stream the machines to the Stately inspector (its page loads from stately.ai)')
    .option('--inspect-port <port>', 'port of the local inspector bridge', integer(1, 65535), 8080)
    .option('--json', 'print events as JSON lines')
    .option('--no-sentinel', "start no force-close sentinel (Windows: guard); a killed `warden run` then leaves its trees to the next start's reap or `warden reap`")
    .option('--owner-pid <pid>', 'the controller that owns this run: when it exits, stop every instance (confirmed dead) and exit; refused if it is not running', integer(1))
    .option('--lifeline', "stdin is a pipe held by the owner: when it closes (the owner exited or was killed), stop every instance and exit")
    .action(async (options: { config: string; inspect?: boolean; inspectPort: number; json?: boolean; sentinel: boolean; ownerPid?: number; lifeline?: boolean }) => {
      const { runCommand } = await import('./run.js');
      done(await runCommand(options));
    });

  program
    .command('status')
    .description('ask a running `warden run` for its instances, states, pids, counts and watchdog level')
    .option('-c, --config <file>', 'the config `warden run` was started with (for its stateDir)')
    .option('--state-dir <dir>', 'the state directory, without a config (default ./.warden)')
    .option('--json', 'print the API answer as JSON')
    .action(async (options: { config?: string; stateDir?: string; json?: boolean }) => {
      const { statusCommand } = await import('./status.js');
      done(await statusCommand(options));
    });

  program
    .command('audit')
    .description('list owned, stale (ours, left by an earlier run) and foreign look-alike processes; exit 0 ok, 1 warning, 2 critical')
    .option('-c, --config <file>', 'only markers of its instance ids are ours; its stateDir and watchdog thresholds apply')
    .option('--state-dir <dir>', 'the state directory, without a config (default ./.warden)')
    .option('--instance <id>', 'also treat markers of this instance id as ours (repeatable)', collect)
    .option('--all-state-dirs', 'with --config/--state-dir: count stale markers launched from any state dir, not only that one')
    .option('--json', 'print the report as JSON')
    .action(async (options: { config?: string; stateDir?: string; instance?: string[]; allStateDirs?: boolean; json?: boolean }) => {
      const { auditCommand } = await import('./audit.js');
      done(await auditCommand(options));
    });

  program
    .command('reap')
    .description('kill what earlier runs left: registry records and stale markers of managed instance ids, nothing else')
    .option('-c, --config <file>', 'its instance ids are managed; its stateDir holds the registry')
    .option('--state-dir <dir>', 'the state directory, without a config (default ./.warden)')
    .option('--instance <id>', 'also reap stale markers of this instance id (repeatable)', collect)
    .option('--all-state-dirs', 'also reap stale markers launched from other state dirs (or from none: older Wardens)')
    .option('--dry-run', 'list what would be killed; signal nothing')
    .option('--forget <marker>', 'drop a registry record that cannot be proven ours (Windows), after its processes were ended by hand; kills nothing (repeatable)', collect)
    .option('--grace-ms <ms>', 'between SIGTERM and SIGKILL', integer(0, 600_000))
    .option('--json', 'print the report as JSON')
    .action(async (options: { config?: string; stateDir?: string; instance?: string[]; allStateDirs?: boolean; dryRun?: boolean; forget?: string[]; graceMs?: number; json?: boolean }) => {
      const { reapCommand } = await import('./reap.js');
      done(await reapCommand(options));
    });

  return program;
}

// Parses argv and runs the command; resolves with the process exit code (usage errors 64, help and version 0).
export async function main(argv: readonly string[]): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram((result) => {
    code = result;
  });
  try {
    await program.parseAsync([...argv]);
    return code;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    return reportError(error);
  }
}
