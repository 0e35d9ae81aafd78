// The published entry points resolve from the build (dist/, made by `npm run build`, which `npm ci` runs).
import { existsSync } from 'node:fs';
import { describe, expect, test } from 'vitest';

const built = existsSync(new URL('../dist/src/index.js', import.meta.url));

describe('package exports', () => {
  test('the build exists (npm ci / npm install run `npm run build` through prepare)', () => {
    expect(built).toBe(true);
  });

  test("import { launch, terminate, snapshot } from 'webui-warden/process' works", async () => {
    const processLayer = await import('webui-warden/process');
    expect(typeof processLayer.launch).toBe('function');
    expect(typeof processLayer.terminate).toBe('function');
    expect(typeof processLayer.snapshot).toBe('function');
    const table = await processLayer.snapshot();
    expect(table.processes.get(process.pid)?.pid).toBe(process.pid);
  });

  test("import { instanceMachine, watchdogMachine, supervisorMachine } from 'webui-warden/machines' works", async () => {
    const machines = await import('webui-warden/machines');
    expect(machines.instanceMachine.id).toBe('instance');
    expect(typeof machines.watchdogMachine.provide).toBe('function');
    expect(typeof machines.supervisorMachine.provide).toBe('function');
  });

  test("import { createSupervisor } from 'webui-warden' works and validates its config", async () => {
    const warden = await import('webui-warden');
    expect(() => warden.createSupervisor({ instances: [] })).toThrow(warden.ConfigError);
  });
});
