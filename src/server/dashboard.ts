// The dashboard's static files, served from the package (src/server/dashboard/), whether running from src/ or dist/.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { BASE_HEADERS } from './respond.js';

/** The only files served, by URL path: a fixed list, so no path ever reaches the file system from a request. */
const FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

/** Same-origin only, nothing inline, nothing from the network: the page talks to this server and nowhere else. */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// Finds the dashboard folder: next to this file (src/server/*.ts under tsx or vitest), or from dist/src/server/*.js.
export function resolveDashboardDir(): string {
  const candidates = [new URL('./dashboard/', import.meta.url), new URL('../../../src/server/dashboard/', import.meta.url)];
  for (const candidate of candidates) {
    const dir = fileURLToPath(candidate);
    if (existsSync(`${dir}index.html`)) return dir;
  }
  throw new Error(`The dashboard files are missing (looked in ${candidates.map((url) => fileURLToPath(url)).join(' and ')}); reinstall webui-warden.`);
}

// Whether a URL path is one of the dashboard's files.
export function isDashboardPath(pathname: string): boolean {
  return Object.hasOwn(FILES, pathname);
}

// Sends one dashboard file (HEAD gets the headers only).
export async function serveDashboardFile(dir: string, pathname: string, res: ServerResponse): Promise<void> {
  const entry = FILES[pathname];
  if (entry === undefined) throw new Error(`not a dashboard file: ${pathname}`);
  const content = await readFile(`${dir}${entry.file}`);
  res.writeHead(200, {
    ...BASE_HEADERS,
    'content-type': entry.type,
    'content-length': content.length,
    'cache-control': 'no-cache',
    'content-security-policy': CONTENT_SECURITY_POLICY,
  });
  res.end(content);
}
