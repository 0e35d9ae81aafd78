// Output capture on real trees: per-start log files (rotated, pruned), the tail, and crash hints from real messages.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { WardenEvent } from '../../src/index.js';
import { kernelOomLines } from '../../src/logs/kernel-oom.js';
import { OutputLog } from '../../src/logs/output-log.js';
import { tempDir } from '../support/processes.js';
import { cleanupRuntime, fakeInstance, makeSupervisor, pidsOfInstance } from '../support/runtime.js';

afterEach(cleanupRuntime);

describe('output capture', () => {
  test('each start writes its own log file, lines prefixed with time and stream; the tail spans starts', async () => {
    const instance = await fakeInstance({ args: ['--workers', '2'] });
    const supervisor = makeSupervisor([instance]);
    await supervisor.start(instance.id);
    await waitUntil(() => supervisor.logs(instance.id).lines.some((line) => line.text.includes('worker 1 started')), 10_000);
    const first = supervisor.status().instances[0]?.logFile;
    expect(first).toMatch(new RegExp(`/logs/${instance.id}/\\d{4}-\\d\\d-\\d\\dT\\d\\d-\\d\\d-\\d\\d\\.\\d{3}Z-1\\.log$`));
    expect(first?.startsWith(supervisor.config.stateDir)).toBe(true);

    await supervisor.restart(instance.id);
    await waitUntil(() => supervisor.logs(instance.id).lines.filter((line) => line.text.startsWith('Running on local URL')).length >= 2, 10_000);
    const second = supervisor.logs(instance.id).file;
    expect(second).not.toBe(first);
    await supervisor.stop(instance.id);

    const text = readFileSync(first as string, 'utf8');
    expect(text).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z stdout Python 3/m);
    expect(text).toMatch(/Z stdout Running on local URL: {2}http:\/\/127\.0\.0\.1:\d+$/m);
    expect(readFileSync(second as string, 'utf8')).toContain('Running on local URL');

    const logs = supervisor.logs(instance.id, { tail: 10_000 });
    expect(logs.lines.filter((line) => line.text.startsWith('Launching Web UI with arguments'))).toHaveLength(2);
    expect(logs.lines.every((line) => !Number.isNaN(Date.parse(line.at)) && (line.stream === 'stdout' || line.stream === 'stderr'))).toBe(true);
    expect(supervisor.logs(instance.id, { tail: 3 }).lines).toEqual(logs.lines.slice(-3));
    expect(() => supervisor.logs(instance.id, { tail: 10_001 })).toThrow(/tail must be an integer from 0 to 10000 \(got 10001\)/);
    expect(() => supervisor.logs('nope')).toThrow(/No instance "nope"/);
  }, 40_000);

  test('a log file past maxBytes is rotated to .1, and only the newest keepFiles starts are kept', async () => {
    const instance = { ...(await fakeInstance({ args: ['--workers', '14'] })), logs: { maxBytes: 1024, keepFiles: 2 } };
    // 14 workers are the point here, not a runaway: thresholds above them.
    const supervisor = makeSupervisor([instance], { watchdog: { warning: { python: 60, shell: 6 }, critical: { python: 120, shell: 12 } } });
    await supervisor.start(instance.id);
    for (let round = 0; round < 2; round += 1) await supervisor.restart(instance.id);
    await waitUntil(() => supervisor.logs(instance.id).lines.filter((line) => line.text.startsWith('worker 13 started')).length >= 3, 15_000);
    await supervisor.stop(instance.id);

    const dir = join(supervisor.config.stateDir, 'logs', instance.id);
    const files = readdirSync(dir).sort();
    const starts = files.filter((name) => name.endsWith('.log'));
    // Three starts, two kept, each with its rotated part.
    expect(starts).toHaveLength(2);
    expect(files.filter((name) => name.endsWith('.log.1'))).toHaveLength(2);
    for (const name of files) expect(readFileSync(join(dir, name)).length).toBeLessThanOrEqual(1024 + 200);
    expect(starts.at(-1)).toBe(supervisor.logs(instance.id).file?.split('/').at(-1));
    // Under 2 × maxBytes per start, nothing is lost: the two files hold every worker line.
    const current = join(dir, starts.at(-1) as string);
    const text = readFileSync(`${current}.1`, 'utf8') + readFileSync(current, 'utf8');
    for (let worker = 0; worker < 14; worker += 1) expect(text).toContain(`stdout worker ${worker} started pid`);
  }, 60_000);
});

describe('the output log itself', () => {
  test('a log folder that cannot be created keeps the output in memory and says why', () => {
    const blocker = join(tempDir('warden-logs-'), 'not-a-dir');
    writeFileSync(blocker, 'a file where the folder should be');
    const errors: Error[] = [];
    const log = new OutputLog({ dir: join(blocker, 'webui'), maxBytes: 1024, keepFiles: 2, onError: (error) => errors.push(error) });
    expect(log.begin()).toBeNull();
    log.write('stderr', 'ModuleNotFoundError: No module named \'xformers\'');
    expect(errors.map((error) => (error as NodeJS.ErrnoException).code)).toEqual(['ENOTDIR']);
    expect(log.tail(5)).toEqual([{ at: expect.any(String), stream: 'stderr', text: "ModuleNotFoundError: No module named 'xformers'" }]);
    expect(log.currentStart(5)).toHaveLength(1);
    log.close();
  });

  test('a line longer than 16 KiB (a progress bar without newlines) is cut and marked', () => {
    const log = new OutputLog({ dir: tempDir('warden-logs-'), maxBytes: 1024 * 1024, keepFiles: 2 });
    log.begin();
    log.write('stdout', 'x'.repeat(100_000));
    const [line] = log.tail(1);
    expect(line?.text).toHaveLength(16_384);
    expect(line?.text.endsWith('…')).toBe(true);
    log.close();
  });
});

describe('crash hints', () => {
  test.each([
    ['cuda-oom', 'CUDA out of memory'],
    ['module-not-found', "No module named 'xformers'"],
    ['torch-no-gpu', 'Torch is not able to use GPU'],
    ['port-in-use', 'address already in use'],
  ])('a start that dies of %s is rejected naming the cause, and the crash report quotes the line', async (cause, quoted) => {
    const instance = await fakeInstance({ args: ['--fail-with', cause], restart: { onCrash: false } });
    const supervisor = makeSupervisor([instance]);
    const terminations: Array<Extract<WardenEvent, { type: 'termination' }>> = [];
    supervisor.events$.subscribe((event) => {
      if (event.type === 'termination') terminations.push(event);
    });

    // A1111's webui.sh exits 0 whatever Python did (so does the fake): the hint, not the code, names the cause.
    await expect(supervisor.start(instance.id)).rejects.toThrow(new RegExp(`process exited \\(code 0, signal none\\); ${hintWords(cause)}`));

    const hint = terminations[0]?.hints?.[0];
    expect(terminations[0]?.reason).toBe('crash');
    expect(hint?.cause).toBe(cause);
    expect(hint?.lines.some((line) => line.includes(quoted))).toBe(true);
    await waitUntil(() => supervisor.status().instances[0]?.lastReport?.hints !== undefined, 5000);
    expect(supervisor.status().instances[0]?.lastReport?.hints?.[0]?.cause).toBe(cause);
    expect(pidsOfInstance(instance.id)).toEqual([]);
  }, 30_000);

  test('a Python killed by SIGKILL that Warden did not send is reported as a possible OOM kill', async () => {
    // Python as the root (no wrapper): A1111's webui.sh exits 0 whatever killed Python, so only a root that is
    // Python itself (or a wrapper that passes 128+N on, the unit-tested code-137 path) shows the SIGKILL.
    const base = await fakeInstance({ restart: { onCrash: false } });
    const instance = { ...base, command: 'python3', args: [base.command.replace(/webui\.sh$/, 'launch.py'), '--port', String(base.port), '--fail-with', 'sigkill'] };
    const supervisor = makeSupervisor([instance]);
    const readable = kernelOomLines([]) !== null;

    const error = await supervisor.start(instance.id).then(() => undefined, (reason: unknown) => reason as Error);

    expect(error?.message).toMatch(/process exited \(code [^,]*, signal SIGKILL\)/);
    const hint = supervisor.status().instances[0]?.lastReport?.hints?.[0];
    expect(hint?.cause).toBe('oom-killed');
    // This machine's kernel log names no OOM kill of ours (the fake killed itself), so the fallback is said.
    expect(hint?.message).toBe(
      `killed by SIGKILL, not by Warden (possibly the OOM killer; ${readable ? 'the kernel log names none of its pids' : 'the kernel log is not readable'})`,
    );
    console.log(`kernel log (/dev/kmsg) readable: ${readable}`);
  }, 30_000);
});

function hintWords(cause: string): string {
  return { 'cuda-oom': 'CUDA out of memory', 'module-not-found': 'a Python module is missing', 'torch-no-gpu': 'PyTorch cannot use the GPU', 'port-in-use': 'the port is already in use' }[cause] ?? cause;
}

async function waitUntil(predicate: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

