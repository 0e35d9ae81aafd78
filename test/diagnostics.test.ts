// Diagnostic bundles on disk: written whole, never carrying an instance's environment values or secret-looking
// fields, and pruned (count and age) so an emergency loop cannot fill the disk; nothing but bundles is touched.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { pruneBundles, redactConfig, writeDiagnosticBundle } from '../src/diagnostics.js';
import type { ProcessTable } from '../src/process/index.js';
import { tempDir } from './support/processes.js';

const table: ProcessTable = { backend: 'proc', takenAt: 0, processes: new Map() };
const config = {
  stateDir: '/x',
  instances: [{ id: 'webui', env: { HF_TOKEN: 'hf_secret', PYTHONUNBUFFERED: '1' }, health: { url: 'http://127.0.0.1:7860/ping' }, apiKey: 'k-123' }],
};
const contents = (reason: string) => ({ reason, table, machines: {}, events: [], config, logTail: [] });
const stamp = (at: Date): string => at.toISOString().replace(/[:.]/g, '-');

describe('diagnostic bundles', () => {
  test('config.json keeps every env key but no value, and no secret-looking field', async () => {
    const stateDir = tempDir();
    const path = await writeDiagnosticBundle(stateDir, contents('test'));
    const written = readFileSync(join(path, 'config.json'), 'utf8');
    expect(written).not.toContain('hf_secret');
    expect(written).not.toContain('k-123');
    expect(JSON.parse(written).instances[0]).toEqual({ id: 'webui', env: { HF_TOKEN: '[redacted]', PYTHONUNBUFFERED: '[redacted]' }, health: { url: 'http://127.0.0.1:7860/ping' }, apiKey: '[redacted]' });
    expect(redactConfig({ nested: [{ password: 'p', name: 'n' }] })).toEqual({ nested: [{ password: '[redacted]', name: 'n' }] });
  });

  test('only the newest 20 are kept, and none older than 30 days; other files and young partials stay', async () => {
    const stateDir = tempDir();
    const bundles = join(stateDir, 'bundles');
    const now = new Date('2026-12-04T12:00:00.000Z');
    // 25 bundles a minute apart today, one from 40 days ago, a stranger's file, and a partial still being written.
    const names = Array.from({ length: 25 }, (_, index) => stamp(new Date(now.getTime() - (index + 1) * 60_000)));
    const ancient = stamp(new Date(now.getTime() - 40 * 24 * 3600 * 1000));
    for (const name of [...names, ancient]) mkdirSync(join(bundles, name), { recursive: true });
    writeFileSync(join(bundles, 'notes.txt'), 'mine\n');
    mkdirSync(join(bundles, `.${stamp(now)}.partial`));
    const removed = await pruneBundles(stateDir, {}, now);
    expect(removed.map((path) => path.slice(bundles.length + 1)).sort()).toEqual([...names.slice(20), ancient].sort());
    const left = readdirSync(bundles).sort();
    expect(left).toEqual([...names.slice(0, 20), `.${stamp(now)}.partial`, 'notes.txt'].sort());
  });

  test('a new bundle prunes as it is written, keeping itself', async () => {
    const stateDir = tempDir();
    const now = new Date();
    for (let index = 1; index <= 3; index += 1) mkdirSync(join(stateDir, 'bundles', stamp(new Date(now.getTime() - index * 1000))), { recursive: true });
    const path = await writeDiagnosticBundle(stateDir, contents('new'), now, { keep: 2 });
    expect(existsSync(path)).toBe(true);
    expect(readdirSync(join(stateDir, 'bundles'))).toHaveLength(2);
  });
});
