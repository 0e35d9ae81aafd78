// `npm run machines:diagrams`: writes docs/machines/<id>.md for every machine stately.config.json includes.
// `--check` writes nothing and exits 1 when a page is missing or out of date.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateDiagrams } from './machine-diagrams/generate.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');
const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

const stale: string[] = [];
for (const page of await generateDiagrams(root)) {
  const target = join(root, page.path);
  const current = read(target);
  if (current === page.content) {
    console.log(`unchanged ${page.path} (${page.machineId} from ${page.sourceFile})`);
    continue;
  }
  if (check) {
    stale.push(page.path);
    continue;
  }
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, page.content);
  console.log(`wrote     ${page.path} (${page.machineId} from ${page.sourceFile})`);
}
if (stale.length > 0) {
  console.error(`Out of date: ${stale.join(', ')}. Run npm run machines:diagrams.`);
  process.exit(1);
}
