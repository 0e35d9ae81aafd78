// The config fields of issue 12: profile defaults, port ranges, launch profiles and log limits, with their errors.
import { describe, expect, test } from 'vitest';
import { ConfigError, parseConfig, portRangeOf } from '../src/config/index.js';

const base = { id: 'webui', command: './webui.sh' };

function problems(instance: Record<string, unknown>): string[] {
  try {
    parseConfig({ instances: [{ ...base, ...instance }] });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message.split('\n').slice(1);
  }
  throw new Error('expected a ConfigError');
}

describe('profile defaults', () => {
  test('a1111 without port or health gets 7860, /internal/ping and server-stop; generic stays as before', () => {
    const [a1111] = parseConfig({ instances: [{ ...base, profile: 'a1111' }] }).instances;
    expect(a1111).toMatchObject({
      profile: 'a1111',
      port: 7860,
      health: { url: 'http://127.0.0.1:7860/internal/ping', intervalMs: 2000, timeoutMs: 1000, failureThreshold: 3 },
      gracefulStop: { url: 'http://127.0.0.1:7860/sdapi/v1/server-stop', timeoutMs: 2000 },
      logs: { maxBytes: 10 * 1024 * 1024, keepFiles: 10 },
      launchProfiles: {},
    });
    const [generic] = parseConfig({ instances: [base] }).instances;
    expect(generic).toMatchObject({ profile: 'generic', port: null, health: null, gracefulStop: null });
  });

  test('comfyui uses 8188 and /system_stats and has no polite stop; an explicit health or null wins', () => {
    const [comfy] = parseConfig({ instances: [{ ...base, profile: 'comfyui', port: 8190 }] }).instances;
    expect(comfy).toMatchObject({ port: 8190, health: { url: 'http://127.0.0.1:8190/system_stats' }, gracefulStop: null });
    const [off] = parseConfig({ instances: [{ ...base, profile: 'forge', health: null }] }).instances;
    expect(off).toMatchObject({ health: null, gracefulStop: null, port: 7860 });
    const [own] = parseConfig({ instances: [{ ...base, profile: 'forge', health: { url: 'http://127.0.0.1:7999/healthz' } }] }).instances;
    expect(own).toMatchObject({ port: 7999, health: { url: 'http://127.0.0.1:7999/healthz' }, gracefulStop: { url: 'http://127.0.0.1:7999/sdapi/v1/server-stop' } });
  });

  test('a port range is kept as written; its profile URLs start at LO, and parsing the result again gives the same', () => {
    const config = parseConfig({ instances: [{ ...base, profile: 'a1111', port: 'auto:7860-7870' }] });
    const [instance] = config.instances;
    expect(instance?.port).toBe('auto:7860-7870');
    expect(portRangeOf(instance as never)).toEqual({ from: 7860, to: 7870 });
    expect(instance?.health?.url).toBe('http://127.0.0.1:7860/internal/ping');
    expect(parseConfig(config)).toEqual(config);
    // Two instances may share a range (each start picks a free port).
    expect(parseConfig({ instances: [{ ...base, port: 'auto:7860-7870' }, { ...base, id: 'two', port: 'auto:7860-7870' }] }).instances).toHaveLength(2);
  });
});

describe('errors name the field and the value', () => {
  test('bad profile, port, launch profile and logs', () => {
    expect(problems({ profile: 'invokeai' })).toEqual(['instances[0].profile: must be "a1111" or "forge" or "comfyui" or "generic" (got "invokeai")']);
    expect(problems({ port: 'auto:7870-7860' })).toEqual(['instances[0].port: must be "auto:LO-HI" with 1 ≤ LO ≤ HI ≤ 65535 (got "auto:7870-7860")']);
    expect(problems({ port: 'auto' })).toEqual(['instances[0].port: must be a port 1-65535, "auto:LO-HI" (e.g. "auto:7860-7870") or null (got "auto")']);
    expect(problems({ port: 'auto:0-10' })[0]).toContain('instances[0].port: must be "auto:LO-HI" with 1 ≤ LO ≤ HI ≤ 65535');
    expect(problems({ launchProfiles: { lowvram: { argz: [] } } })).toContain('instances[0].launchProfiles.lowvram.argz: unknown key (did you mean "args"?) (got [])');
    expect(problems({ launchProfiles: { 'low vram': { args: [] } } })).toEqual([
      'instances[0].launchProfiles["low vram"]: is not a valid name (1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit) (got "low vram")',
    ]);
    expect(problems({ logs: { maxBytes: 10 } })).toEqual(['instances[0].logs.maxBytes: must be ≥ 1024 (got 10)']);
    expect(problems({ logs: { keepFiles: 0 } })).toEqual(['instances[0].logs.keepFiles: must be ≥ 1 (got 0)']);
  });
});
