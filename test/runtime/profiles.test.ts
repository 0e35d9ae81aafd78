// WebUI profiles on real trees: URLs and flags from the profile, readiness, the polite stop, per-start argv, and
// A1111's own in-app restart (tmp/restart) tracked as the same instance.
import { describe, expect, test } from 'vitest';
import type { WardenEvent } from '../../src/index.js';
import { planLaunch, probeReadiness } from '../../src/profiles.js';
import type { PlanInput } from '../../src/profiles.js';
import { fakeInstance, freePort, makeSupervisor, pidsOfInstance, withDecoysUntouched } from '../support/runtime.js';

withDecoysUntouched();

// A fake WebUI configured the way a user of a profile would: no health, no --port; the profile supplies them.
async function profiled(profile: string, args: string[], extra: Record<string, unknown> = {}): Promise<Record<string, unknown> & { id: string; port: number }> {
  const base = await fakeInstance({ args, health: false });
  return { ...base, args: ['-f', ...args], profile, port: base.port, ...extra };
}

async function info(port: number): Promise<{ pid: number; argv: string[]; workers: number[]; restarting: string | null; warden_port: string | null }> {
  const response = await fetch(`http://127.0.0.1:${port}/fake/info`);
  return (await response.json()) as never;
}

describe('profiles', () => {
  test('a1111: health, port flag and polite stop come from the profile; status shows port, url and ready', async () => {
    const instance = await profiled('a1111', ['--api', '--api-server-stop', '--workers', '1']);
    const supervisor = makeSupervisor([instance]);
    expect(supervisor.config.instances[0]?.health?.url).toBe(`http://127.0.0.1:${instance.port}/internal/ping`);
    expect(supervisor.config.instances[0]?.gracefulStop?.url).toBe(`http://127.0.0.1:${instance.port}/sdapi/v1/server-stop`);

    const status = await supervisor.start(instance.id);

    expect(status).toMatchObject({ state: 'running', profile: 'a1111', port: instance.port, url: `http://127.0.0.1:${instance.port}`, ready: true });
    const running = await info(instance.port);
    expect(running.argv).toEqual(['-f', '--api', '--api-server-stop', '--workers', '1', '--port', String(instance.port)]);
    expect(running.warden_port).toBe(String(instance.port));
    expect(running.restarting).toBeNull();

    const report = await supervisor.stop(instance.id);
    // The polite stop ended the tree: nobody needed a signal.
    expect(report.survivors).toEqual([]);
    expect(report.killed.length).toBeGreaterThanOrEqual(3);
    expect(report.killed.every((entry) => entry.signal === 'none')).toBe(true);
    expect(supervisor.status().instances[0]?.ready).toBe(false);
  }, 30_000);

  test('comfyui: /system_stats is the health URL and /object_info makes it ready; an A1111 profile never is', async () => {
    const comfy = await profiled('comfyui', ['--comfyui']);
    const supervisor = makeSupervisor([comfy]);
    expect(supervisor.config.instances[0]?.health?.url).toBe(`http://127.0.0.1:${comfy.port}/system_stats`);
    expect(supervisor.config.instances[0]?.gracefulStop).toBeNull();
    expect(await supervisor.start(comfy.id)).toMatchObject({ state: 'running', ready: true, profile: 'comfyui' });
    await supervisor.stop(comfy.id);

    // The same ComfyUI-shaped app under the a1111 profile: /internal/ping is not there, so it never becomes ready.
    const wrong = await profiled('a1111', ['--comfyui'], { startupTimeoutMs: 2000, restart: { onCrash: false } });
    const other = makeSupervisor([wrong]);
    await expect(other.start(wrong.id)).rejects.toThrow(/did not start/);
    expect(pidsOfInstance(wrong.id)).toEqual([]);
  }, 30_000);

  test('per-start args and launch profiles replace the configured args; restarts set SD_WEBUI_RESTARTING=1', async () => {
    const instance = await profiled('a1111', ['--workers', '1', '--autolaunch'], {
      launchProfiles: { lowvram: { args: ['-f', '--lowvram', '--autolaunch'], env: { COMMANDLINE_ARGS: '--workers 3' } } },
    });
    const supervisor = makeSupervisor([instance]);

    await supervisor.start(instance.id, { args: ['-f', '--workers', '2', '--autolaunch'] });
    const first = await info(instance.port);
    expect(first.argv).toEqual(['-f', '--workers', '2', '--autolaunch', '--port', String(instance.port)]);
    expect(first.workers).toHaveLength(2);
    expect(first.restarting).toBeNull();
    await expect(supervisor.start(instance.id, { args: ['--workers', '5'] })).rejects.toThrow(/already running; restart it to change its arguments/);

    const restarted = await supervisor.restart(instance.id, { launchProfile: 'lowvram' });
    expect(restarted.launchProfile).toBe('lowvram');
    const second = await info(instance.port);
    expect(second.argv).toEqual(['-f', '--lowvram', '--autolaunch', '--port', String(instance.port)]);
    expect(second.workers).toHaveLength(3);
    expect(second.restarting).toBe('1');
    // --autolaunch opened a browser on the first start only.
    const opened = supervisor.logs(instance.id, { tail: 1000 }).lines.filter((line) => line.text.startsWith('Opening browser'));
    expect(opened).toHaveLength(1);

    await expect(supervisor.restart(instance.id, { launchProfile: 'highvram' })).rejects.toThrow('Unknown launch profile "highvram" for "' + instance.id + '" (known: lowvram).');
    // A plain restart goes back to the configured args.
    await supervisor.restart(instance.id);
    expect((await info(instance.port)).argv).toEqual(['-f', '--workers', '1', '--autolaunch', '--port', String(instance.port)]);
  }, 60_000);

  test('A1111 restarting itself (server-restart → tmp/restart → webui.sh relaunches Python) stays the same running instance', async () => {
    // The relaunched Python takes 4 s to serve again: longer than 2 failed probes 1 s apart, which would read as
    // a hung WebUI (and a Warden restart) if the relaunch were not recognised.
    const port = await freePort();
    const instance = await profiled('a1111', ['--api', '--workers', '1', '--startup-delay', '4'], {
      port,
      health: { url: `http://127.0.0.1:${port}/internal/ping`, intervalMs: 1000, timeoutMs: 1000, failureThreshold: 2 },
    });
    const supervisor = makeSupervisor([instance]);
    const readiness = new Set<boolean>();
    const events: WardenEvent[] = [];
    supervisor.events$.subscribe((event) => {
      if (event.type !== 'sample') events.push(event);
    });
    const before = await supervisor.start(instance.id);
    const oldPython = (await info(instance.port)).pid;
    expect(before.pythonPid).toBe(oldPython);

    const reply = await fetch(`http://127.0.0.1:${instance.port}/sdapi/v1/server-restart`, { method: 'POST' });
    expect(reply.status).toBe(200);

    await waitUntil(async () => {
      const status = supervisor.status().instances[0];
      readiness.add(status?.ready === true);
      if (status?.pythonPid === oldPython || status?.ready !== true) return false;
      return (await info(instance.port).catch(() => undefined))?.pid === status.pythonPid;
    }, 20_000);
    const after = supervisor.status().instances[0];
    expect(after).toMatchObject({ state: 'running', shellPid: before.shellPid, pid: before.pid, restarts: 0 });
    // Never left running, never launched again by Warden: the app's own loop did the relaunch.
    expect(events.filter((event) => event.type === 'transition' && event.to !== 'running' && event.from === 'running')).toEqual([]);
    expect(events.filter((event) => event.type === 'launch')).toHaveLength(1);
    // While the new Python loaded, the instance was running but not ready.
    expect(readiness.has(false)).toBe(true);
    // Exactly one tree: the shell, the new Python and its worker.
    await waitUntil(() => pidsOfInstance(instance.id).length === 3, 5000);

    await supervisor.stop(instance.id);
    expect(pidsOfInstance(instance.id)).toEqual([]);
  }, 40_000);
});

describe('the launch plan', () => {
  const input: PlanInput = {
    profile: 'a1111',
    args: ['--xformers'],
    env: { A: '1' },
    health: { url: 'http://127.0.0.1:7860/internal/ping' },
    gracefulStop: { url: 'http://127.0.0.1:7860/sdapi/v1/server-stop' },
    launchProfiles: {},
  };

  test('a discovered port replaces the port of every URL and is passed as --port and WARDEN_PORT', () => {
    const plan = planLaunch('webui', input, 7863, undefined, false, true);
    expect(plan).toMatchObject({
      args: ['--xformers', '--port', '7863'],
      env: { A: '1', WARDEN_PORT: '7863' },
      url: 'http://127.0.0.1:7863',
      healthUrl: 'http://127.0.0.1:7863/internal/ping',
      stopUrl: 'http://127.0.0.1:7863/sdapi/v1/server-stop',
      readyUrls: ['http://127.0.0.1:7863/sdapi/v1/options', 'http://127.0.0.1:7863/sdapi/v1/sd-models'],
    });
    expect(planLaunch('webui', { ...input, args: ['--port=7000'] }, 7863, undefined, true).args).toEqual(['--port=7000']);
    // A fixed port leaves configured URLs as written (a health URL may name another port on purpose).
    expect(planLaunch('webui', input, 7863, undefined, false, false).healthUrl).toBe('http://127.0.0.1:7860/internal/ping');
    expect(planLaunch('webui', input, 7863, undefined, true).env.SD_WEBUI_RESTARTING).toBe('1');
    // Generic: the port reaches the app only as WARDEN_PORT.
    expect(planLaunch('webui', { ...input, profile: 'generic' }, 7863, undefined, true)).toMatchObject({ args: ['--xformers'], env: { A: '1', WARDEN_PORT: '7863' } });
  });

  test('without --api the "Running on local URL" line proves readiness; with --api only the API does', async () => {
    const closed = await freePort();
    const withoutApi = planLaunch('webui', input, closed, undefined, false, true);
    expect(withoutApi.readyLine).not.toBeNull();
    expect((await probeReadiness(withoutApi, true, 200)).ok).toBe(true);
    expect((await probeReadiness(withoutApi, false, 200)).ok).toBe(false);
    const withApi = planLaunch('webui', { ...input, args: ['--api'] }, closed, undefined, false, true);
    expect(withApi.readyLine).toBeNull();
    const probe = await probeReadiness(withApi, true, 200);
    expect(probe.ok).toBe(false);
    expect(probe.reason).toContain(`127.0.0.1:${closed}/sdapi/v1/options`);
  });
});

async function waitUntil(predicate: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
