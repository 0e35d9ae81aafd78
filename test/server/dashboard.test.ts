// The dashboard in real headless Chromium: token entered once, live state and counts, restart through the button.
// WARDEN_UPDATE_SCREENSHOT=1 also writes docs/dashboard.png.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterEach, describe, expect, test } from 'vitest';
import { createSupervisor } from '../../src/index.js';
import type { Supervisor } from '../../src/index.js';
import { startControlServer } from '../../src/server/index.js';
import type { ControlServer } from '../../src/server/index.js';
import { FAKE_WEBUI_DIR, cleanupProcesses, pidsWithVariable, tempDir } from '../support/processes.js';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOT = resolve(import.meta.dirname, '../../docs/dashboard.png');

let supervisor: Supervisor | undefined;
let server: ControlServer | undefined;
let browser: Browser | undefined;
const fakeStateDirs: string[] = [];

afterEach(async () => {
  await browser?.close();
  await server?.close();
  await supervisor?.shutdown();
  browser = undefined;
  server = undefined;
  supervisor = undefined;
  // Anything still carrying this test's FAKE_WEBUI_STATE_DIR (an exact, per-test value) is ours.
  for (const dir of fakeStateDirs.splice(0)) {
    for (const pid of pidsWithVariable('FAKE_WEBUI_STATE_DIR', dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  await cleanupProcesses();
});

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((done) => probe.close(() => done()));
  return port;
}

// Two fake WebUIs (1 and 2 workers) under one supervisor, and its control server.
async function setup(): Promise<{ ids: string[]; url: string; token: string }> {
  const tag = randomBytes(2).toString('hex');
  const instances = [];
  const ids: string[] = [];
  for (const [index, workers] of [1, 2].entries()) {
    const dir = tempDir('warden-dash-');
    fakeStateDirs.push(dir);
    const port = await freePort();
    const id = index === 0 ? `webui-${tag}` : `webui-${tag}-b`;
    ids.push(id);
    instances.push({
      id,
      command: join(FAKE_WEBUI_DIR, 'webui.sh'),
      args: ['--port', String(port), '--workers', String(workers)],
      cwd: dir,
      env: { FAKE_WEBUI_STATE_DIR: dir },
      health: { url: `http://127.0.0.1:${port}/internal/ping`, intervalMs: 200, timeoutMs: 150 },
      startupTimeoutMs: 15_000,
      stopGraceMs: 2000,
    });
  }
  const stateDir = join(tempDir('warden-dash-state-'), 'state');
  supervisor = createSupervisor({
    stateDir,
    instances,
    // Headroom above two fake WebUIs (and the wrapper's short-lived forks), so no alert interrupts the story.
    watchdog: { sampleIntervalMs: 250, warning: { python: 6, shell: 6 }, critical: { python: 12, shell: 12 } },
  });
  server = await startControlServer(supervisor, { host: '127.0.0.1', port: 0, stateDir });
  return { ids, url: server.url, token: server.token };
}

async function openBrowser(): Promise<Page> {
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  const page = await browser.newPage({ viewport: { width: 1280, height: 980 } });
  // The page must make no request beyond this server (the machine has no network; neither do users' dashboards).
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.protocol !== 'data:' && url.hostname !== '127.0.0.1') throw new Error(`unexpected request to ${request.url()}`);
  });
  return page;
}

const stateOf = (page: Page, id: string): Promise<string | null> => page.locator(`[data-instance="${id}"] .state`).textContent();
const pointsOf = async (page: Page): Promise<number> => Number(await page.locator('#chart-python svg').getAttribute('data-points'));

describe('dashboard', () => {
  test('restart from the button walks the instance through stopping → spawning → running while the chart moves', async () => {
    const { ids, url, token } = await setup();
    const [first = '', second = ''] = ids;
    supervisor?.events$.subscribe((e) => { if (e.type !== 'sample') console.log('DEBUG', Date.now() % 100000, JSON.stringify(e).slice(0, 400)); });
    await Promise.all(ids.map((id) => supervisor?.start(id)));
    const page = await openBrowser();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));

    await page.goto(url);
    await page.locator('#token').fill(token);
    await page.locator('#connect').click();
    await page.waitForFunction((id) => document.querySelector(`[data-instance="${id}"] .state`)?.textContent === 'running', first, { timeout: 10_000 });
    expect(await stateOf(page, second)).toBe('running');
    expect(await page.locator('#connection').textContent()).toBe('live');
    await page.waitForFunction(() => Number(document.querySelector('#chart-python svg')?.getAttribute('data-points')) >= 4, undefined, { timeout: 10_000 });
    // Thresholds from /api/config are drawn; one line per instance plus the total.
    expect(await page.locator('#chart-python .threshold-label').allTextContents()).toEqual(['warning > 6', 'critical > 12']);
    expect(await page.locator('#chart-shell .threshold-label').allTextContents()).toEqual(['warning > 6', 'critical > 12']);
    expect(await page.locator('#chart-python path.series').evaluateAll((paths) => paths.map((path) => path.getAttribute('data-series')))).toEqual([first, second, 'total']);
    await page.waitForFunction((id) => Number(document.querySelector(`[data-instance="${id}"] [data-field="python"]`)?.textContent) >= 2, first, { timeout: 10_000 });

    // Record every state the card shows from here on.
    await page.evaluate((id) => {
      const node = document.querySelector(`[data-instance="${id}"] .state`) as HTMLElement;
      const seen: string[] = [];
      (window as unknown as { seenStates: string[] }).seenStates = seen;
      new MutationObserver(() => {
        const text = node.textContent ?? '';
        if (seen.at(-1) !== text) seen.push(text);
      }).observe(node, { childList: true, characterData: true, subtree: true });
    }, first);
    const before = await pointsOf(page);
    const pythonPidBefore = await page.locator(`[data-instance="${first}"] [data-field="pythonPid"]`).textContent();

    await page.locator(`[data-instance="${first}"] button[data-action="restart"]`).click();
    await page.waitForFunction(() => (window as unknown as { seenStates: string[] }).seenStates.includes('running'), undefined, { timeout: 15_000 });
    expect(await page.evaluate(() => (window as unknown as { seenStates: string[] }).seenStates)).toEqual(['stopping', 'spawning', 'running']);
    await page.waitForFunction((count) => Number(document.querySelector('#chart-python svg')?.getAttribute('data-points')) >= count + 4, before, { timeout: 10_000 });
    expect(await pointsOf(page)).toBeGreaterThan(before);

    // The last termination report, the new pids and the event log follow.
    const report = page.locator(`[data-instance="${first}"] [data-field="report"]`);
    await page.waitForFunction((id) => document.querySelector(`[data-instance="${id}"] [data-field="report"]`)?.textContent?.startsWith('restart'), first, { timeout: 5000 });
    expect(await report.textContent()).toMatch(/^restart at .* killed \d+ .*survivors 0 · escalated no/);
    await page.waitForFunction(
      ([id, old]) => {
        const text = document.querySelector(`[data-instance="${id}"] [data-field="pythonPid"]`)?.textContent;
        return text !== old && text !== '—';
      },
      [first, pythonPidBefore] as const,
      { timeout: 5000 },
    );
    expect(await page.locator('#log li').allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining(`${first}: running → stopping`)]));
    expect(await page.locator('#watchdog').textContent()).toBe('watchdog ok');
    expect(await stateOf(page, second)).toBe('running');

    // The token is entered once: a reload goes straight to the live view.
    await page.reload();
    await page.waitForFunction((id) => document.querySelector(`[data-instance="${id}"] .state`)?.textContent === 'running', first, { timeout: 10_000 });
    expect(await page.locator('#login').isHidden()).toBe(true);

    if (process.env.WARDEN_UPDATE_SCREENSHOT === '1') {
      // Let the replayed history and a little more fill the chart before the picture.
      await page.waitForTimeout(4000);
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    }
    expect(pageErrors).toEqual([]);
  });

  test('a wrong token is refused and the form says so', async () => {
    const { url } = await setup();
    const page = await openBrowser();
    await page.goto(url);
    await page.locator('#token').fill('f'.repeat(64));
    await page.locator('#connect').click();
    await page.waitForFunction(() => !(document.querySelector('#login-error') as HTMLElement).hidden, undefined, { timeout: 5000 });
    expect(await page.locator('#login-error').textContent()).toContain('refused');
    expect(await page.locator('#main').isHidden()).toBe(true);
    expect(await page.evaluate(() => localStorage.getItem('warden.token'))).toBeNull();
  });
});
