// The state directory is trusted input (its registry decides what gets signalled, its token guards the API):
// refuse one another user owns or anyone may write, and never follow a symlink for the files in it.
import { constants, lstatSync, mkdirSync, openSync, statSync } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { WardenError } from '../errors.js';

/** The state directory (or a file in it) cannot be trusted; nothing was read from it or written through it. */
export class StateDirError extends WardenError {}

/** O_NOFOLLOW where the platform has it (0 on Windows, where symlinks need privileges to create). */
export const O_NOFOLLOW: number = constants.O_NOFOLLOW ?? 0;

const currentUid = (): number | undefined => (typeof process.getuid === 'function' ? process.getuid() : undefined);

// Why a directory's owner and mode make it untrusted, or undefined when it is fine.
function untrustedBecause(dir: string, uid: number, mode: number, isDirectory: boolean): string | undefined {
  if (!isDirectory) return `${dir} is not a directory`;
  const me = currentUid();
  if (me === undefined) return undefined;
  if (uid !== me) return `${dir} belongs to uid ${uid}, not to the current user (uid ${me}): another user could replace its registry or token`;
  if ((mode & 0o002) !== 0) return `${dir} is world-writable (mode ${(mode & 0o7777).toString(8)}): anyone could plant a registry or a token there; chmod 700 it`;
  return undefined;
}

// Creates the state directory (mode 0700) if missing and refuses one owned by another user or world-writable.
export async function ensureStateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await stat(dir);
  const problem = untrustedBecause(dir, info.uid, info.mode, info.isDirectory());
  if (problem !== undefined) throw new StateDirError('STATE_DIR_UNTRUSTED', `Refusing the Warden state directory: ${problem}.`);
}

// The synchronous twin of ensureStateDir, for the few callers that cannot await (spawning the sentinel).
export function ensureStateDirSync(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const info = statSync(dir);
  const problem = untrustedBecause(dir, info.uid, info.mode, info.isDirectory());
  if (problem !== undefined) throw new StateDirError('STATE_DIR_UNTRUSTED', `Refusing the Warden state directory: ${problem}.`);
}

function symlinkRefusal(path: string, cause: unknown): StateDirError {
  return new StateDirError('STATE_FILE_SYMLINK', `Refusing ${path}: it is a symbolic link, and Warden never follows one in its state directory; remove it.`, { cause });
}

// Opens a file of the state directory without following a symlink; ELOOP becomes a StateDirError naming the path.
export async function openNoFollow(path: string, flags: number, mode?: number): Promise<FileHandle> {
  try {
    return await open(path, flags | O_NOFOLLOW, mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw symlinkRefusal(path, error);
    throw error;
  }
}

// The synchronous twin of openNoFollow (returns a file descriptor).
export function openNoFollowSync(path: string, flags: number, mode?: number): number {
  try {
    return openSync(path, flags | O_NOFOLLOW, mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw symlinkRefusal(path, error);
    throw error;
  }
}

// Throws when `path` exists as a symlink (for paths used by calls that have no O_NOFOLLOW, like rename targets).
export function refuseSymlink(path: string): void {
  let isLink = false;
  try {
    isLink = lstatSync(path).isSymbolicLink();
  } catch {
    return;
  }
  if (isLink) throw symlinkRefusal(path, undefined);
}
