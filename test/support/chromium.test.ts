// The Chromium locator: the env var first, then the npm package, then the system path; none → every one named.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { findChromium } from './chromium.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('findChromium', () => {
  test('WARDEN_CHROMIUM wins when it names an executable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-chromium-'));
    dirs.push(dir);
    const fake = join(dir, 'my-chromium');
    writeFileSync(fake, '#!/bin/sh\n');
    chmodSync(fake, 0o755);
    expect(await findChromium({ env: { WARDEN_CHROMIUM: fake } })).toEqual({ path: fake, source: 'WARDEN_CHROMIUM' });
  });

  test('the npm package inflates a runnable Chromium when the env var is unset', async () => {
    const found = await findChromium({ env: {}, systemPath: '/nonexistent/chromium' });
    expect(found.source).toBe('npm');
    expect(found.path).toMatch(/node_modules\/\.cache\/warden-chromium\/[\d.]+\/chromium$/);
    expect(execFileSync(found.path, ['--version'], { encoding: 'utf8' })).toMatch(/^Chromium \d+\./);
  }, 120_000);

  test('nothing found: the error names the env var, the package and the system path, each with why', async () => {
    const error = await findChromium({ env: { WARDEN_CHROMIUM: '/nonexistent/a' }, packageName: 'warden-no-such-chromium-package', systemPath: '/nonexistent/chromium' }).catch((caught: unknown) => caught as Error);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toContain('WARDEN_CHROMIUM="/nonexistent/a": no such file');
    expect(message).toContain('npm package warden-no-such-chromium-package: package warden-no-such-chromium-package is not installed');
    expect(message).toContain('/nonexistent/chromium: no such file');
  });
});
