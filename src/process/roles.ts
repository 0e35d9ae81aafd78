// What a process is to a WebUI instance. Used to order and report, never to decide what to kill.
import type { ProcessInfo, ProcessRole } from './types.js';

const SHELLS = new Set(['bash', 'sh', 'dash', 'zsh', 'ksh', 'fish', 'cmd', 'cmd.exe', 'powershell', 'powershell.exe', 'pwsh', 'pwsh.exe']);
const PYTHON = /^python(\d+(\.\d+)*)?[dmw]?(\.exe)?$/i;

function basename(path: string): string {
  const slash = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  return slash >= 0 ? path.slice(slash + 1) : path;
}

// Shell wrapper, Python interpreter, or anything else, from the executable name and argv[0].
export function classifyRole(info: Pick<ProcessInfo, 'name' | 'cmdline'>): ProcessRole {
  const names = [info.name, info.cmdline?.[0] === undefined ? '' : basename(info.cmdline[0])];
  if (names.some((name) => SHELLS.has(name.toLowerCase()))) return 'shell';
  if (names.some((name) => PYTHON.test(name))) return 'python';
  return 'other';
}
