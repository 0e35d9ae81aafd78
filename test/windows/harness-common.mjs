// What both Wine harnesses (harness.mjs: the process layer; harness-product.mjs: the CLI) share: their own
// listings, independent of Warden's tracker; the pids the fake processes record about themselves; and the decoys,
// a cmd.exe running a python.exe started outside Warden, which must survive every scenario.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A table's rows as plain `{ pid, ppid, name }` (a missing name, as fastlist gives while a process starts, is ''). */
export const rowsOf = (table) => [...table.processes.values()].map((r) => ({ pid: r.pid, ppid: r.ppid, name: typeof r.name === 'string' ? r.name : '' }));
/** The row of a live pid (under that parent, when given). */
export const alive = (rows, pid, ppid) => rows.find((r) => r.pid === pid && (ppid === undefined || r.ppid === ppid));
/** Rows as `pid<ppid name`, for messages. */
export const show = (rows) => rows.map((r) => `${r.pid}<${r.ppid} ${r.name || '(no name)'}`).join(', ');

/** Every listing a harness takes is kept (`keep(table)`), so the final check can compute the tree by itself. */
export function createListings() {
  const listings = [];
  let emptyNames = 0;
  return {
    listings,
    get emptyNames() {
      return emptyNames;
    },
    keep(table) {
      const rows = rowsOf(table);
      if (rows.some((r) => r.name === '')) emptyNames += 1;
      listings.push({ takenAt: table.takenAt, rows });
      return table;
    },
  };
}

/** Every pid the fake processes recorded about themselves in `pidDir` (kind, role, pid, ppid, ...). */
export function recordedIn(pidDir) {
  const entries = [];
  for (const file of readdirSync(pidDir)) {
    if (!file.endsWith('.json')) continue;
    try {
      entries.push(JSON.parse(readFileSync(join(pidDir, file), 'utf8')));
    } catch {
      // being written
    }
  }
  return entries;
}

/** Decoys: `startDecoy(label)` before and after a launch, `killDecoys()` at the end; `decoys` for the checks. */
export function createDecoys({ fixtures, pythonExe, stateDir, pidDir, read, log }) {
  const decoys = [];
  async function startDecoy(label) {
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: the decoy cmd.exe is this harness's direct child (its pid); its python.exe records its own
    //   pid and ppid in <state>/pids (role "decoy").
    // Cleanup handled by: killDecoys() at the end (python.exe only while the listing still shows it under that
    //   cmd.exe), and `wineserver -k` on the suite's own prefix in the Linux afterEach.
    // Known risks: none beyond the prefix; nothing here is found or killed by name.
    const child = spawn('cmd.exe', ['/d', '/s', '/c', join(fixtures, 'decoy.bat')], {
      stdio: 'ignore',
      windowsHide: true,
      env: { ...process.env, PYTHON: pythonExe, FAKE_WEBUI_STATE_DIR: stateDir },
    });
    await new Promise((ok, fail) => child.once('spawn', ok).once('error', fail));
    const decoy = { label, cmd: child.pid, child, python: undefined };
    decoys.push(decoy);
    const deadline = performance.now() + 20_000;
    for (;;) {
      const entry = recordedIn(pidDir).find((e) => e.role === 'decoy' && e.ppid === child.pid);
      if (entry !== undefined) {
        decoy.python = entry.pid;
        break;
      }
      if (performance.now() > deadline) throw new Error(`timed out after 20000 ms waiting for decoy ${label}'s python.exe`);
      await sleep(100);
    }
    log('decoy', label, { cmd: decoy.cmd, python: decoy.python });
    return decoy;
  }
  async function killDecoys() {
    const rows = rowsOf(await read());
    for (const decoy of decoys) {
      // Only what we started, and only while the listing still shows it under the same parent.
      if (decoy.python !== undefined && alive(rows, decoy.python, decoy.cmd)) {
        try {
          process.kill(decoy.python);
        } catch {
          // gone meanwhile
        }
      }
      decoy.child.kill();
    }
  }
  return { decoys, startDecoy, killDecoys };
}

/** Ends a harness run: decoys killed, listing counts added, the result written atomically to `file`, exit 0. */
export async function finishRun({ result, killDecoys, taken, mark, file }) {
  try {
    await killDecoys();
  } catch (error) {
    result.notes.push(`decoy cleanup failed: ${error}`);
  }
  mark('total');
  result.listings = taken.listings.length;
  result.listingsWithEmptyName = taken.emptyNames;
  writeFileSync(`${file}.tmp`, JSON.stringify(result, null, 2));
  renameSync(`${file}.tmp`, file);
  process.exit(0);
}
