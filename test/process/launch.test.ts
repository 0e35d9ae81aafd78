// The one spawn point: marker, process group, roles, output lines, and clear refusals that leave nothing running.
import { Writable } from 'node:stream';
import { afterEach, describe, expect, test } from 'vitest';
import { pino } from 'pino';
import { LaunchError, launch, snapshotProcSync } from '../../src/process/index.js';
import { readEnvironVariable } from '../../src/process/posix/procfs.js';
import { FAKE_WEBUI_DIR, cleanupProcesses, launchFakeWebui, ownForCleanup, tempDir, waitFor, waitForPythons } from '../support/processes.js';

afterEach(cleanupProcesses);

const childrenOfThisProcess = (): number[] =>
  [...snapshotProcSync(false).processes.values()].filter((info) => info.ppid === process.pid && info.state !== 'Z').map((info) => info.pid);

describe('launch', () => {
  test('every process of the tree carries the marker and the root leads its own process group', async () => {
    const tree = await launchFakeWebui(['--workers', '2']);
    const owned = await waitForPythons(tree, 3);
    expect(tree.marker).toMatch(new RegExp(`^${tree.instanceId}:[0-9a-f]{16}$`));
    expect(tree.pgid).toBe(tree.root.pid);
    expect(tree.root.startTime).toBeTypeOf('number');
    for (const entry of owned) expect(readEnvironVariable(entry.info.pid, 'WARDEN_INSTANCE')).toBe(tree.marker);
    expect(owned.find((entry) => entry.info.pid === tree.root.pid)?.info.pgid).toBe(tree.root.pid);
  });

  test('the shell parent and the first Python are identified as they appear', async () => {
    const tree = await launchFakeWebui(['--workers', '1']);
    await waitFor(() => tree.python !== undefined, 10_000, 'python to be identified');
    expect(tree.shell?.pid).toBe(tree.root.pid);
    const python = snapshotProcSync(true).processes.get(tree.python?.pid as number);
    expect(python?.ppid).toBe(tree.root.pid);
    expect(python?.cmdline?.join(' ')).toContain('launch.py');
  });

  test('output lines go through the logger with the instance id', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        callback();
      },
    });
    const handle = await launch({
      instanceId: 'logged',
      command: './webui.sh',
      args: ['-f', '--port', '0'],
      cwd: FAKE_WEBUI_DIR,
      env: { FAKE_WEBUI_STATE_DIR: tempDir() },
      logger: pino({ level: 'info' }, sink),
    });
    ownForCleanup(handle);
    await waitFor(() => lines.some((line) => String(line.msg).includes('Running on local URL')), 10_000, 'the Running on line');
    const running = lines.find((line) => String(line.msg).includes('Running on local URL'));
    expect(running).toMatchObject({ instance: 'logged', stream: 'stdout', pid: handle.root.pid });
  });

  test('a missing command is refused with its path named and nothing left running', async () => {
    const before = childrenOfThisProcess();
    const attempt = launch({ instanceId: 'webui', command: './no-such-webui.sh', cwd: FAKE_WEBUI_DIR });
    await expect(attempt).rejects.toBeInstanceOf(LaunchError);
    await expect(attempt).rejects.toMatchObject({ code: 'COMMAND_NOT_FOUND', message: expect.stringContaining('no-such-webui.sh') });
    expect(childrenOfThisProcess()).toEqual(before);
  });

  test('a missing working directory is refused with the directory named and nothing left running', async () => {
    const before = childrenOfThisProcess();
    const attempt = launch({ instanceId: 'webui', command: 'bash', args: ['webui.sh'], cwd: '/nonexistent/stable-diffusion-webui' });
    await expect(attempt).rejects.toMatchObject({ code: 'CWD_NOT_FOUND', message: expect.stringContaining('/nonexistent/stable-diffusion-webui') });
    expect(childrenOfThisProcess()).toEqual(before);
  });

  test('a command that is not on PATH, or not executable, is refused by name', async () => {
    await expect(launch({ instanceId: 'webui', command: 'no-such-python-xyz', cwd: FAKE_WEBUI_DIR })).rejects.toMatchObject({
      code: 'COMMAND_NOT_FOUND',
      message: expect.stringContaining('"no-such-python-xyz"'),
    });
    await expect(launch({ instanceId: 'webui', command: './webui.bat', cwd: FAKE_WEBUI_DIR })).rejects.toMatchObject({
      code: 'COMMAND_NOT_EXECUTABLE',
    });
  });

  test('an instance id that cannot be a marker is refused', async () => {
    await expect(launch({ instanceId: 'web ui', command: 'bash', cwd: FAKE_WEBUI_DIR })).rejects.toMatchObject({ code: 'INVALID_INSTANCE_ID' });
  });
});
