// <stateDir>/server.json: how `warden status` finds a running control server ({ url, pid }).
import { randomBytes } from 'node:crypto';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What server.json holds. */
export interface ServerFile {
  url: string;
  pid: number;
}

// Where the server file of a state directory lives.
export function serverFilePath(stateDir: string): string {
  return join(stateDir, 'server.json');
}

// Writes server.json atomically (a reader sees the old file or the new one, never half of one).
export async function writeServerFile(stateDir: string, url: string): Promise<void> {
  const path = serverFilePath(stateDir);
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const content: ServerFile = { url, pid: process.pid };
  // Exclusive create: never written through a file or link already at that name.
  await writeFile(temporary, `${JSON.stringify(content)}\n`, { mode: 0o600, flag: 'wx' });
  await rename(temporary, path);
}

// Removes server.json if it is still ours (another server may have taken the state directory over since).
export async function removeServerFile(stateDir: string, url: string): Promise<void> {
  const path = serverFilePath(stateDir);
  try {
    const current = JSON.parse(await readFile(path, 'utf8')) as Partial<ServerFile>;
    if (current.pid !== process.pid || current.url !== url) return;
    await unlink(path);
  } catch {
    // absent or unreadable: nothing of ours to remove
  }
}
