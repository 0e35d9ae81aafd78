// machines/ stays pure: it imports nothing but xstate (and itself), and reads no clock, randomness or environment.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import * as machines from '../../machines/index.js';

const dir = resolve(dirname(fileURLToPath(import.meta.url)), '../../machines');
const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'));
const source = (file: string): string => readFileSync(join(dir, file), 'utf8');

describe('machines/ purity', () => {
  test.each(files)('%s imports only xstate and sibling modules', (file) => {
    const specifiers = [...source(file).matchAll(/(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]/g)].map(
      (match) => match[1] ?? match[2],
    );
    for (const specifier of specifiers) {
      expect(specifier === 'xstate' || /^\.\/[\w.-]+\.js$/.test(specifier ?? ''), `${file}: ${specifier}`).toBe(true);
    }
    expect(source(file)).not.toMatch(/\brequire\(/);
  });

  test.each(files)('%s reads no clock, randomness or environment', (file) => {
    expect(source(file)).not.toMatch(/Date\.now|new Date|Math\.random|performance\.now|process\.|globalThis/);
  });

  test('the package entry exports the three machines, the policy functions and the placeholders', () => {
    for (const name of [
      'instanceMachine', 'watchdogMachine', 'supervisorMachine',
      'backoffDelay', 'budgetExceeded', 'restartsInWindow', 'classifySample', 'nextLevel', 'isDoubling',
      'launchTree', 'monitorTree', 'terminateTree', 'reapOrphans', 'writeDiagnosticBundle',
    ]) {
      expect(machines, name).toHaveProperty(name);
    }
  });
});
