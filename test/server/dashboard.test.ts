// The dashboard in real headless Chromium: token entered once, live state and counts, restart through the button.
// WARDEN_UPDATE_SCREENSHOT=1 also writes docs/dashboard.png.
import { resolve } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterEach, describe, expect, test } from 'vitest';
import type { Supervisor } from '../../src/index.js';
import { startControlServer } from '../../src/server/index.js';
import type { ControlServer } from '../../src/server/index.js';
import { CHROMIUM_ARGS, findChromium } from '../support/chromium.js';
import { waitFor } from '../support/processes.js';
import { cleanupRuntime, fakeInstance, makeSupervisor } from '../support/runtime.js';

const SCREENSHOT = resolve(import.meta.dirname, '../../docs/dashboard.png');

let server: ControlServer | undefined;
let browser: Browser | undefined;

afterEach(async () => {
  await browser?.close();
  await server?.close();
  browser = undefined;
  server = undefined;
  await cleanupRuntime();
});

// Two fake WebUIs (1 and 2 workers) under one supervisor, and its control server.
async function setup(): Promise<{ supervisor: Supervisor; ids: string[]; url: string; token: string }> {
  const instances = [await fakeInstance({ args: ['--workers', '1'] }), await fakeInstance({ args: ['--workers', '2'] })];
  // Headroom above two fake WebUIs, so no alert interrupts the story; the lines are still drawn.
  const supervisor = makeSupervisor(instances, { watchdog: { sampleIntervalMs: 250, warning: { python: 6, shell: 6 }, critical: { python: 12, shell: 12 } } });
  server = await startControlServer(supervisor, { host: '127.0.0.1', port: 0, stateDir: supervisor.config.stateDir });
  return { supervisor, ids: instances.map((instance) => instance.id), url: server.url, token: server.token };
}

async function openBrowser(): Promise<Page> {
  // Playwright gives each launch a fresh --user-data-dir of its own.
  browser = await chromium.launch({ executablePath: (await findChromium()).path, args: CHROMIUM_ARGS });
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
const field = (page: Page, id: string, name: string): Promise<string | null> => page.locator(`[data-instance="${id}"] [data-field="${name}"]`).textContent();

describe('dashboard', () => {
  test('restart from the button walks the instance through stopping → spawning → running while the chart moves', async () => {
    const { supervisor, ids, url, token } = await setup();
    const [first = '', second = ''] = ids;
    await Promise.all(ids.map((id) => supervisor.start(id)));
    const page = await openBrowser();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));

    await page.goto(url);
    await page.locator('#token').fill(token);
    await page.locator('#connect').click();
    await waitFor(async () => (await stateOf(page, first)) === 'running', 10_000, 'the card to show running');
    expect(await stateOf(page, second)).toBe('running');
    expect(await page.locator('#connection').textContent()).toBe('live');
    await waitFor(async () => (await pointsOf(page)) >= 4, 10_000, 'plotted samples');
    // Thresholds from /api/config are drawn; one line per instance plus the total.
    expect(await page.locator('#chart-python .threshold-label').allTextContents()).toEqual(['warning > 6', 'critical > 12']);
    expect(await page.locator('#chart-shell .threshold-label').allTextContents()).toEqual(['warning > 6', 'critical > 12']);
    expect(await page.locator('#chart-python path.series').evaluateAll((paths) => paths.map((path) => path.getAttribute('data-series')))).toEqual([first, second, 'total']);
    await waitFor(async () => Number(await field(page, first, 'python')) >= 2, 10_000, 'the python count');

    // Record every state the card shows from here on.
    // (Browser-side code as a string: this tsconfig has no DOM types.)
    await page.evaluate(`(() => {
      const node = document.querySelector('[data-instance="${first}"] .state');
      const seen = (window.seenStates = []);
      new MutationObserver(() => {
        if (seen[seen.length - 1] !== node.textContent) seen.push(node.textContent);
      }).observe(node, { childList: true, characterData: true, subtree: true });
    })()`);
    const seenStates = (): Promise<string[]> => page.evaluate('window.seenStates') as Promise<string[]>;
    const before = await pointsOf(page);
    const pythonPidBefore = await field(page, first, 'pythonPid');

    await page.locator(`[data-instance="${first}"] button[data-action="restart"]`).click();
    await waitFor(async () => (await seenStates()).includes('running'), 15_000, 'running again');
    expect(await seenStates()).toEqual(['stopping', 'spawning', 'running']);
    await waitFor(async () => (await pointsOf(page)) >= before + 4, 10_000, 'the chart to move');
    expect(await pointsOf(page)).toBeGreaterThan(before);

    // The last termination report, the new pids and the event log follow.
    await waitFor(async () => (await field(page, first, 'report'))?.startsWith('restart') === true, 5000, 'the termination report');
    expect(await field(page, first, 'report')).toMatch(/^restart at .* killed \d+ .*survivors 0 · escalated no/);
    await waitFor(async () => ![pythonPidBefore, '—'].includes(await field(page, first, 'pythonPid')), 5000, 'the new python pid');
    expect(await page.locator('#log li').allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining(`${first}: running → stopping`)]));
    expect(await page.locator('#watchdog').textContent()).toBe('watchdog ok');
    expect(await stateOf(page, second)).toBe('running');

    // The token is entered once: a reload goes straight to the live view. It lives in this tab's
    // sessionStorage, never in localStorage (on disk, for every later visitor of the origin).
    await page.reload();
    await waitFor(async () => (await stateOf(page, first)) === 'running', 10_000, 'the live view after reload');
    expect(await page.locator('#login').isHidden()).toBe(true);
    expect(await page.evaluate('localStorage.length')).toBe(0);
    expect(await page.evaluate('sessionStorage.getItem("warden.token")')).toBe(token);

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
    await waitFor(() => page.locator('#login-error').isVisible(), 5000, 'the login error');
    expect(await page.locator('#login-error').textContent()).toContain('refused');
    expect(await page.locator('#main').isHidden()).toBe(true);
    expect(await page.evaluate('localStorage.getItem("warden.token")')).toBeNull();
    expect(await page.evaluate('sessionStorage.getItem("warden.token")')).toBeNull();
  });
});
