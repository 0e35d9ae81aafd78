// The API token: 32 random bytes (hex) kept in <stateDir>/token with mode 0600, created once (fsynced) and reused.
// Never read or written through a symlink, and only in a state directory the current user owns and alone can write.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants } from 'node:fs';
import { link, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { WardenError } from '../errors.js';
import { syncDirectory } from '../process/state/registry.js';
import { ensureStateDir, openNoFollow } from '../process/state/statedir.js';

const TOKEN_PATTERN = /^[0-9a-f]{64}$/;

// Where the token of a state directory lives.
export function tokenPath(stateDir: string): string {
  return join(stateDir, 'token');
}

// Returns the state directory's token, creating it atomically (complete or absent, never half-written) on first use.
export async function loadOrCreateToken(stateDir: string): Promise<string> {
  await ensureStateDir(stateDir);
  const path = tokenPath(stateDir);
  const existing = await readToken(path);
  if (existing !== undefined) return existing;
  const token = randomBytes(32).toString('hex');
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  // Exclusive create (never through an existing file or link), fsync before it gets its name: a crash leaves
  // the whole token or none. fchmod, because the create mode is filtered by the umask.
  const file = await open(temporary, 'wx', 0o600);
  try {
    await file.chmod(0o600);
    await file.writeFile(`${token}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await link(temporary, path);
    await syncDirectory(stateDir);
    return token;
  } catch (error) {
    // Another process created it between our read and our link: theirs wins.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const theirs = await readToken(path);
    if (theirs === undefined) throw new WardenError('TOKEN_INVALID', `${path} exists but does not hold a 64-digit hex token; delete it to make a new one.`);
    return theirs;
  } finally {
    await unlink(temporary).catch(() => undefined);
  }
}

async function readToken(path: string): Promise<string | undefined> {
  let text: string;
  let file;
  try {
    file = await openNoFollow(path, constants.O_RDONLY);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    text = await file.readFile('utf8');
    const token = text.trim();
    if (!TOKEN_PATTERN.test(token)) {
      throw new WardenError('TOKEN_INVALID', `${path} does not hold a 64-digit hex token; delete it to make a new one.`);
    }
    // A copied or restored file may have lost its mode: the token is a secret, keep it the owner's only (on the
    // file we opened, not whatever the name points to by now).
    await file.chmod(0o600).catch(() => undefined);
    return token;
  } finally {
    await file.close();
  }
}

// Compares a presented token with the expected one in constant time (hashes first, so lengths never leak).
export function tokenMatches(expected: string, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(presented).digest();
  return timingSafeEqual(a, b);
}

// The token a request presents: `Authorization: Bearer <token>`, or `?token=` where the route allows it (EventSource).
export function presentedToken(authorization: string | undefined, query: URLSearchParams, allowQuery: boolean): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (match?.[1] !== undefined) return match[1];
  return allowQuery ? (query.get('token') ?? undefined) : undefined;
}
