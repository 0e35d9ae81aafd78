// The warden-client pytest suite (python/tests), run as the README says, against real `warden run` processes.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { startPiped } from '../support/child.js';
import type { PipedChild } from '../support/child.js';
import { tempDir } from '../support/processes.js';
import { pidsOfInstance } from '../support/runtime.js';

const ROOT = resolve(import.meta.dirname, '../..');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
/** The suite has this many tests today; fewer means tests went missing (or were deselected) without anyone saying. */
const AT_LEAST = 42;

let run: PipedChild | undefined;
let idsFile: string | undefined;

afterEach(async () => {
  // Only what this file started: the pytest process by its handle; then whatever still carries one of the instance
  // ids that run wrote to its ids file (unique ids, so nobody else's processes).
  if (run !== undefined && run.child.exitCode === null && run.child.signalCode === null) {
    run.child.kill('SIGKILL');
    await run.done;
  }
  run = undefined;
  if (idsFile !== undefined && existsSync(idsFile)) {
    await sleep(200);
    for (const id of readFileSync(idsFile, 'utf8').split('\n').filter(Boolean)) {
      for (const pid of pidsOfInstance(id)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  }
  idsFile = undefined;
});

// The python3 that runs the suite, and whether it can import pytest: a missing pytest fails, never skips.
function pythonWithPytest(): string {
  let python: string;
  try {
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: synchronous child, awaited here.   Cleanup handled by: it exits by itself.   Known risks: none.
    python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  } catch (error) {
    throw new Error(`python3 is needed for the warden-client suite and could not run: ${String(error)}`);
  }
  try {
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: synchronous child, awaited here.   Cleanup handled by: it exits by itself.   Known risks: none.
    execFileSync(python, ['-c', 'import pytest'], { stdio: 'pipe' });
  } catch {
    throw new Error(`pytest is not importable by ${python}: install it with \`${python} -m pip install pytest\` (or \`apt-get install python3-pytest\`), then run npm test again.`);
  }
  return python;
}

describe('the warden-client Python package', () => {
  test('python3 -m pytest python/tests passes against a real warden run', async () => {
    const python = pythonWithPytest();
    idsFile = join(tempDir('warden-pytest-'), 'ids');
    // The same warden a user runs (src/cli.ts through tsx, like the other end-to-end tests), as WARDEN_BIN.
    const warden = `${process.execPath} --import ${TSX} ${join(ROOT, 'src/cli.ts')}`;
    run = startPiped(python, ['-m', 'pytest', 'python/tests', '-q', '-p', 'no:cacheprovider', '-rfEs'], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', WARDEN_BIN: warden, WARDEN_PYTEST_IDS_FILE: idsFile, PYTHONDONTWRITEBYTECODE: '1' },
    });
    const result = await run.done;
    const summary = `pytest exited ${String(result.code)}:\n${result.stdout}\n${result.stderr}`;
    expect(result.code, summary).toBe(0);
    const passed = Number(/(\d+) passed/.exec(result.stdout)?.[1] ?? 0);
    expect(passed, summary).toBeGreaterThanOrEqual(AT_LEAST);
    expect(result.stdout, summary).not.toMatch(/\d+ (failed|skipped|error|errors|xfailed)\b/);
  }, 180_000);
});
