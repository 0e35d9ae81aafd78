// Reads stately.config.json (fields modeled on the Stately CLI's statelyai.json) and finds the machine files it names.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

/** stately.config.json: `include`/`exclude` globs of machine files, plus where the diagrams go. */
export interface StatelyConfig {
  version: string;
  defaultXStateVersion: number;
  include: string[];
  exclude: string[];
  diagrams: { format: 'mermaid'; outDir: string };
  inspector?: { port?: number };
}

/** Where the diagram generator looks when nothing else is said. */
export const CONFIG_FILE = 'stately.config.json';

const SKIPPED_DIRECTORIES = new Set(['node_modules', '.git', 'dist']);

// Reads and checks the config; each problem names the field and the value received.
export function readStatelyConfig(root: string, file = CONFIG_FILE): StatelyConfig {
  const path = join(root, file);
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Partial<StatelyConfig>;
  const problems: string[] = [];
  const isGlobList = (value: unknown): value is string[] => Array.isArray(value) && value.every((v) => typeof v === 'string');
  if (!isGlobList(raw.include) || raw.include.length === 0) {
    problems.push(`include must be a non-empty list of globs, received ${JSON.stringify(raw.include)}`);
  }
  if (raw.exclude !== undefined && !isGlobList(raw.exclude)) {
    problems.push(`exclude must be a list of globs, received ${JSON.stringify(raw.exclude)}`);
  }
  if (raw.defaultXStateVersion !== undefined && raw.defaultXStateVersion !== 5) {
    problems.push(`defaultXStateVersion must be 5, received ${JSON.stringify(raw.defaultXStateVersion)}`);
  }
  if (raw.diagrams?.format !== undefined && raw.diagrams.format !== 'mermaid') {
    problems.push(`diagrams.format must be "mermaid", received ${JSON.stringify(raw.diagrams.format)}`);
  }
  if (problems.length > 0) throw new Error(`Invalid ${file}: ${problems.join('; ')}`);
  return {
    version: raw.version ?? '1.0.0',
    defaultXStateVersion: 5,
    include: raw.include as string[],
    exclude: raw.exclude ?? [],
    diagrams: { format: 'mermaid', outDir: raw.diagrams?.outDir ?? 'docs/machines' },
    ...(raw.inspector ? { inspector: raw.inspector } : {}),
  };
}

// A glob as a regular expression over '/'-separated relative paths: `**` spans folders, `*` and `?` do not.
export function globToRegExp(glob: string): RegExp {
  let pattern = '';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i] as string;
    if (char === '*' && glob[i + 1] === '*') {
      const slash = glob[i + 2] === '/';
      pattern += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (char === '*') {
      pattern += '[^/]*';
    } else if (char === '?') {
      pattern += '[^/]';
    } else {
      pattern += /[\\^$.|+()[\]{}]/.test(char) ? `\\${char}` : char;
    }
  }
  return new RegExp(`^${pattern}$`);
}

// Every file under root (relative, '/'-separated, sorted) that matches an include glob and no exclude glob.
export function findMachineFiles(root: string, config: Pick<StatelyConfig, 'include' | 'exclude'>): string[] {
  const include = config.include.map(globToRegExp);
  const exclude = config.exclude.map(globToRegExp);
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRECTORIES.has(entry.name)) walk(join(dir, entry.name));
        continue;
      }
      const path = relative(root, join(dir, entry.name)).split(sep).join('/');
      if (include.some((re) => re.test(path)) && !exclude.some((re) => re.test(path))) found.push(path);
    }
  };
  walk(root);
  return found.sort();
}
