// The config: defaults, path resolution, and errors that name each bad field with the value received.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ConfigError, configJsonSchema, loadConfigFile, parseConfig, wardenConfigSchema } from '../src/config/index.js';
import type { WardenConfig } from '../src/config/index.js';
import { WardenError } from '../src/process/errors.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The example from DESIGN.md ("Config"), verbatim. */
const designExample = {
  stateDir: '.warden',
  instances: [
    {
      id: 'webui',
      command: './webui.sh',
      args: ['--api'],
      cwd: '/opt/stable-diffusion-webui',
      env: {},
      health: { url: 'http://127.0.0.1:7860/internal/ping', intervalMs: 2000, timeoutMs: 1000, failureThreshold: 3 },
      startupTimeoutMs: 180000,
      stopGraceMs: 5000,
      restart: { onCrash: true, baseDelayMs: 1000, maxDelayMs: 60000, maxRestarts: 5, windowMs: 300000, resetAfterMs: 600000 },
    },
  ],
  watchdog: { sampleIntervalMs: 1000, warning: { python: 5, shell: 2 }, critical: { python: 10, shell: 3 }, emergencyWindowMs: 300000 },
  server: { host: '127.0.0.1', port: 7870 },
};

/** A minimal valid instance, to build bad configs from. */
const webui = { id: 'webui', command: './webui.sh', health: { url: 'http://127.0.0.1:7860/internal/ping' } };

/** The ConfigError parseConfig throws for `input` (fails the test when it does not throw one). */
function errorOf(input: unknown, options?: { baseDir?: string; source?: string }): ConfigError {
  try {
    parseConfig(input, options);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError, but the config was accepted');
}

/** The problem lines of a ConfigError's message (everything after the heading). */
function problemLines(input: unknown): string[] {
  return errorOf(input).message.split('\n').slice(1);
}

describe('defaults', () => {
  test('a config with only an id and a command gets every documented default', () => {
    const config = parseConfig({ instances: [{ id: 'webui', command: './webui.sh' }] }, { baseDir: '/srv/sd' });
    expect(config).toEqual<WardenConfig>({
      stateDir: '/srv/sd/.warden',
      instances: [
        {
          id: 'webui',
          profile: 'generic',
          command: './webui.sh',
          args: [],
          cwd: '/srv/sd',
          env: {},
          health: null,
          gracefulStop: null,
          port: null,
          launchProfiles: {},
          logs: { maxBytes: 10 * 1024 * 1024, keepFiles: 10 },
          startupTimeoutMs: 180000,
          stopGraceMs: 5000,
          maxStopAttempts: 5,
          restart: { onCrash: true, baseDelayMs: 1000, maxDelayMs: 60000, maxRestarts: 5, windowMs: 300000, resetAfterMs: 600000 },
          windowsJob: true,
          containment: 'auto',
        },
      ],
      watchdog: {
        sampleIntervalMs: 1000,
        warning: { python: 5, shell: 2 },
        critical: { python: 10, shell: 3 },
        emergencyWindowMs: 300000,
        calmSamples: 3,
      },
      server: { host: '127.0.0.1', port: 7870 },
    });
  });

  test('a health URL brings probe defaults, the port and a polite stop on the same origin', () => {
    const [instance] = parseConfig({ instances: [webui] }).instances;
    expect(instance?.health).toEqual({ url: webui.health.url, intervalMs: 2000, timeoutMs: 1000, failureThreshold: 3 });
    expect(instance?.port).toBe(7860);
    expect(instance?.gracefulStop).toEqual({ url: 'http://127.0.0.1:7860/sdapi/v1/server-stop', timeoutMs: 2000 });
  });

  test('a URL without a port derives the scheme default port', () => {
    const config = parseConfig({ instances: [{ id: 'a', command: 'x', health: { url: 'https://localhost/ping' } }] });
    expect(config.instances[0]?.port).toBe(443);
  });

  test('an explicit port wins over the health URL', () => {
    const config = parseConfig({ instances: [{ ...webui, port: 7861 }] });
    expect(config.instances[0]?.port).toBe(7861);
  });

  test('gracefulStop false disables the polite stop; an object without url takes it from health', () => {
    const off = parseConfig({ instances: [{ ...webui, gracefulStop: false }] });
    expect(off.instances[0]?.gracefulStop).toBeNull();
    const slow = parseConfig({ instances: [{ ...webui, gracefulStop: { timeoutMs: 9000 } }] });
    expect(slow.instances[0]?.gracefulStop).toEqual({ url: 'http://127.0.0.1:7860/sdapi/v1/server-stop', timeoutMs: 9000 });
  });

  test('maxStopAttempts is kept as given, from 1 to 100', () => {
    for (const maxStopAttempts of [1, 12, 100]) {
      expect(parseConfig({ instances: [{ ...webui, maxStopAttempts }] }).instances[0]?.maxStopAttempts).toBe(maxStopAttempts);
    }
  });

  test('partial nested objects keep the defaults of the fields they leave out', () => {
    const config = parseConfig({
      instances: [{ ...webui, restart: { maxRestarts: 2 } }],
      watchdog: { warning: { python: 7 }, critical: { python: 12 } },
    });
    expect(config.instances[0]?.restart).toMatchObject({ maxRestarts: 2, baseDelayMs: 1000, maxDelayMs: 60000 });
    expect(config.watchdog.warning).toEqual({ python: 7, shell: 2 });
    expect(config.watchdog.critical).toEqual({ python: 12, shell: 3 });
  });

  test('the example config from DESIGN.md validates', () => {
    const config = parseConfig(designExample);
    expect(config.instances[0]?.cwd).toBe('/opt/stable-diffusion-webui');
    expect(config.instances[0]?.port).toBe(7860);
  });

  test('every full config example in docs/CONFIG.md validates', async () => {
    const doc = await readFile(join(root, 'docs/CONFIG.md'), 'utf8');
    const examples = [...doc.matchAll(/```json\n([\s\S]*?)```/g)]
      .map((match) => match[1] ?? '')
      .filter((block) => block.includes('"instances"'));
    expect(examples.length).toBeGreaterThan(0);
    for (const example of examples) expect(() => parseConfig(JSON.parse(example))).not.toThrow();
  });

  test('a "$schema" key for editors is accepted and not part of the result', () => {
    const config = parseConfig({ $schema: './node_modules/webui-warden/schema/warden.config.schema.json', instances: [webui] });
    expect(config).not.toHaveProperty('$schema');
  });

  test('parsing a parsed config gives the same config (createSupervisor may validate twice)', () => {
    const once = parseConfig(designExample, { baseDir: '/srv' });
    expect(parseConfig(once, { baseDir: '/elsewhere' })).toEqual(once);
    const bare = parseConfig({ instances: [{ id: 'a', command: 'x' }] }, { baseDir: '/srv' });
    expect(parseConfig(bare, { baseDir: '/srv' })).toEqual(bare);
  });
});

describe('paths', () => {
  test('relative cwd and stateDir resolve against the base dir; absolute ones are kept', () => {
    const config = parseConfig(
      { stateDir: 'state', instances: [{ id: 'a', command: 'x', cwd: '../webui' }, { id: 'b', command: 'x', cwd: '/opt/sd' }] },
      { baseDir: '/etc/warden' },
    );
    expect(config.stateDir).toBe('/etc/warden/state');
    expect(config.instances[0]?.cwd).toBe('/etc/webui');
    expect(config.instances[1]?.cwd).toBe('/opt/sd');
  });

  test('without a base dir, paths resolve against the current directory', () => {
    const config = parseConfig({ instances: [{ id: 'a', command: 'x', cwd: 'webui' }] });
    expect(config.stateDir).toBe(resolve(process.cwd(), '.warden'));
    expect(config.instances[0]?.cwd).toBe(resolve(process.cwd(), 'webui'));
  });

  test('the command is kept as written (the launcher resolves it against cwd)', () => {
    const config = parseConfig({ instances: [{ id: 'a', command: './webui.sh', cwd: 'sd' }] }, { baseDir: '/x' });
    expect(config.instances[0]?.command).toBe('./webui.sh');
  });
});

describe('each bad field is named with the value received', () => {
  const cases: Array<[string, unknown, string]> = [
    [
      'maxDelayMs below baseDelayMs',
      { instances: [{ ...webui, restart: { maxDelayMs: 10 } }] },
      'instances[0].restart.maxDelayMs: must be ≥ baseDelayMs (got 10)',
    ],
    ['a negative instance port', { instances: [{ ...webui, port: -1 }] }, 'instances[0].port: must be ≥ 1 (got -1)'],
    ['a port above 65535', { instances: [{ ...webui, port: 70000 }] }, 'instances[0].port: must be ≤ 65535 (got 70000)'],
    ['a negative server port', { instances: [webui], server: { port: -1 } }, 'server.port: must be ≥ 0 (got -1)'],
    [
      'a server host that is not loopback',
      { instances: [webui], server: { host: '0.0.0.0' } },
      'server.host: must be a loopback address (127.0.0.0/8, ::1 or localhost): the control API has no authentication (got "0.0.0.0")',
    ],
    [
      'duplicate instance ids',
      { instances: [webui, { ...webui, port: 7861 }] },
      'instances[1].id: duplicate id "webui" (also instances[0].id) (got "webui")',
    ],
    [
      'ids that differ only in case',
      { instances: [webui, { ...webui, id: 'WebUI', port: 7861 }] },
      'instances[1].id: differs only in case from instances[0].id "webui" (ids name files, and file systems may ignore case) (got "WebUI")',
    ],
    ['a missing command', { instances: [{ id: 'webui' }] }, 'instances[0].command: required (got undefined)'],
    ['an empty command', { instances: [{ id: 'webui', command: '' }] }, 'instances[0].command: must not be empty (got "")'],
    [
      'an unknown key with a near miss',
      { instances: [{ ...webui, stopGraceMS: 5000 }] },
      'instances[0].stopGraceMS: unknown key (did you mean "stopGraceMs"?) (got 5000)',
    ],
    [
      'an unknown key with nothing close',
      { instances: [webui], server: { bind: 'x' } },
      'server.bind: unknown key (allowed: host, port) (got "x")',
    ],
    ['an unknown top-level key', { instances: [webui], statedir: 'x' }, 'statedir: unknown key (did you mean "stateDir"?) (got "x")'],
    [
      'a string where a number belongs',
      { instances: [{ ...webui, health: { url: webui.health.url, intervalMs: '2000' } }] },
      'instances[0].health.intervalMs: must be an integer (got "2000")',
    ],
    ['a fraction where an integer belongs', { instances: [{ ...webui, stopGraceMs: 1.5 }] }, 'instances[0].stopGraceMs: must be an integer (got 1.5)'],
    [
      'a health timeout longer than its interval',
      { instances: [{ ...webui, health: { url: webui.health.url, timeoutMs: 5000 } }] },
      'instances[0].health.timeoutMs: must be ≤ intervalMs (got 5000)',
    ],
    ['a health probe without a URL', { instances: [{ ...webui, health: {} }] }, 'instances[0].health.url: required (got undefined)'],
    [
      'a health URL that is not http',
      { instances: [{ ...webui, health: { url: 'ftp://127.0.0.1/ping' } }] },
      'instances[0].health.url: must be an http:// or https:// URL (got "ftp://127.0.0.1/ping")',
    ],
    ['a health interval below the minimum', { instances: [{ ...webui, health: { url: webui.health.url, intervalMs: 10 } }] }, 'instances[0].health.intervalMs: must be ≥ 50 (got 10)'],
    ['no instances', { instances: [] }, 'instances: must list at least one instance (got [])'],
    ['no instances key at all', {}, 'instances: required (got undefined)'],
    ['a config that is not an object', [], '(root): must be an object (got [])'],
    ['an invalid id', { instances: [{ ...webui, id: '-x y' }] }, 'instances[0].id: must be 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit (got "-x y")'],
    [
      'critical below warning',
      { instances: [webui], watchdog: { warning: { shell: 4 } } },
      'watchdog.critical.shell: must be ≥ warning.shell (got 3)',
    ],
    [
      'an emergency window shorter than a sample',
      { instances: [webui], watchdog: { sampleIntervalMs: 5000, emergencyWindowMs: 1000 } },
      'watchdog.emergencyWindowMs: must be ≥ sampleIntervalMs (got 1000)',
    ],
    [
      'two instances on the same port',
      { instances: [{ ...webui, port: 7860 }, { id: 'b', command: 'x', port: 7860 }] },
      'instances[1].port: duplicate port 7860 (also instances[0].port) (got 7860)',
    ],
    [
      'two instances whose health URLs share a port',
      { instances: [webui, { ...webui, id: 'b' }] },
      'instances[1].health.url: duplicate port 7860, derived from this URL (also instances[0].health.url) (got "http://127.0.0.1:7860/internal/ping")',
    ],
    [
      'the server on an instance port',
      { instances: [webui], server: { port: 7860 } },
      'server.port: conflicts with instances[0].health.url (got 7860)',
    ],
    [
      'a polite stop with no URL to derive',
      { instances: [{ id: 'a', command: 'x', gracefulStop: { timeoutMs: 100 } }] },
      'instances[0].gracefulStop.url: required when there is no health.url to derive it from (got undefined)',
    ],
    [
      'gracefulStop true',
      { instances: [{ ...webui, gracefulStop: true }] },
      'instances[0].gracefulStop: must be an object { url, timeoutMs }, false (disabled) or null (got true)',
    ],
    [
      'a typo inside gracefulStop',
      { instances: [{ ...webui, gracefulStop: { timeoutMS: 100 } }] },
      'instances[0].gracefulStop.timeoutMS: unknown key (did you mean "timeoutMs"?) (got 100)',
    ],
    [
      'the reserved marker variable in env',
      { instances: [{ ...webui, env: { WARDEN_INSTANCE: 'x:y' } }] },
      'instances[0].env.WARDEN_INSTANCE: is reserved: Warden sets it to prove which processes are ours (got "x:y")',
    ],
    ['a non-string env value', { instances: [{ ...webui, env: { CUDA_VISIBLE_DEVICES: 0 } }] }, 'instances[0].env.CUDA_VISIBLE_DEVICES: must be a string (got 0)'],
    ['windowsJob as a string', { instances: [{ ...webui, windowsJob: 'yes' }] }, 'instances[0].windowsJob: must be true or false (got "yes")'],
    ['maxStopAttempts 0', { instances: [{ ...webui, maxStopAttempts: 0 }] }, 'instances[0].maxStopAttempts: must be ≥ 1 (got 0)'],
    ['maxStopAttempts above 100', { instances: [{ ...webui, maxStopAttempts: 101 }] }, 'instances[0].maxStopAttempts: must be ≤ 100 (got 101)'],
    ['maxStopAttempts as a fraction', { instances: [{ ...webui, maxStopAttempts: 2.5 }] }, 'instances[0].maxStopAttempts: must be an integer (got 2.5)'],
    ['a delay beyond what timers can wait', { instances: [{ ...webui, stopGraceMs: 2 ** 31 }] }, 'instances[0].stopGraceMs: must be ≤ 2147483647 (got 2147483648)'],
  ];

  test.each(cases)('%s', (_name, input, line) => {
    expect(problemLines(input)).toEqual([line]);
  });

  test('loopback hosts are accepted in every spelling', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::1%lo']) {
      expect(parseConfig({ instances: [webui], server: { host } }).server.host).toBe(host);
    }
    for (const host of ['0.0.0.0', '192.168.1.20', '::', 'example.com', '128.0.0.1', 'localhost.example.com', 'fe80::1%eth0', '']) {
      expect(problemLines({ instances: [webui], server: { host } })[0]).toMatch(/^server\.host: must be a loopback address/);
    }
  });

  test('the server port 0 (pick a free one) never conflicts', () => {
    expect(parseConfig({ instances: [webui], server: { port: 0 } }).server.port).toBe(0);
  });

  test('the error is a WardenError with code CONFIG_INVALID and structured issues', () => {
    const error = errorOf({ instances: [{ ...webui, restart: { baseDelayMs: 1000, maxDelayMs: 10 } }] });
    expect(error).toBeInstanceOf(WardenError);
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.name).toBe('ConfigError');
    expect(error.issues).toEqual([{ path: 'instances[0].restart.maxDelayMs', message: 'must be ≥ baseDelayMs', received: 10 }]);
    expect(error.message.split('\n')[0]).toBe('Invalid Warden config: 1 problem');
  });

  test('the heading names the source when it is known', () => {
    const error = errorOf({ instances: [] }, { source: '/etc/warden/warden.config.json' });
    expect(error.message.split('\n')[0]).toBe('Invalid Warden config in /etc/warden/warden.config.json: 1 problem');
    expect(error.file).toBe('/etc/warden/warden.config.json');
  });

  test('long values are shortened in the message but kept whole in the issue', () => {
    const long = 'x'.repeat(200);
    const error = errorOf({ instances: [{ ...webui, id: long }] });
    expect(error.message.split('\n')[1]?.length).toBeLessThan(200);
    expect(error.issues[0]?.received).toBe(long);
  });
});

describe('every problem is reported at once', () => {
  test('problems in different places come in one error, grouped by section and instance', () => {
    const error = errorOf({
      stateDIR: 'x',
      instances: [
        { id: 'webui', stopGraceMs: 'soon', health: { url: webui.health.url, timeoutMs: 5000 }, restart: { maxDelayMs: 10 } },
        { id: 'webui', command: 'x', port: -1 },
      ],
      watchdog: { critical: { python: 1 } },
      server: { host: '10.0.0.1' },
    });
    expect(error.message.split('\n')).toEqual([
      'Invalid Warden config: 9 problems',
      'stateDIR: unknown key (did you mean "stateDir"?) (got "x")',
      'instances[0].command: required (got undefined)',
      'instances[0].health.timeoutMs: must be ≤ intervalMs (got 5000)',
      'instances[0].stopGraceMs: must be an integer (got "soon")',
      'instances[0].restart.maxDelayMs: must be ≥ baseDelayMs (got 10)',
      'instances[1].port: must be ≥ 1 (got -1)',
      'instances[1].id: duplicate id "webui" (also instances[0].id) (got "webui")',
      'watchdog.critical.python: must be ≥ warning.python (got 1)',
      'server.host: must be a loopback address (127.0.0.0/8, ::1 or localhost): the control API has no authentication (got "10.0.0.1")',
    ]);
    expect(error.issues).toHaveLength(9);
  });
});

describe('loadConfigFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warden-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('reads a file and resolves its relative paths against the file\'s folder', async () => {
    const file = join(dir, 'warden.config.json');
    await writeFile(file, JSON.stringify({ stateDir: 'state', instances: [{ id: 'a', command: './webui.sh', cwd: 'sd' }] }));
    const config = await loadConfigFile(file);
    expect(config.stateDir).toBe(join(dir, 'state'));
    expect(config.instances[0]?.cwd).toBe(join(dir, 'sd'));
  });

  test('a byte-order mark (Windows editors) does not break the file', async () => {
    const file = join(dir, 'bom.json');
    await writeFile(file, `\uFEFF${JSON.stringify({ instances: [webui] })}`);
    await expect(loadConfigFile(file)).resolves.toMatchObject({ instances: [{ id: 'webui' }] });
  });

  test('a missing file is a ConfigError naming the file', async () => {
    const file = join(dir, 'nope.json');
    const error = await loadConfigFile(file).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('CONFIG_INVALID');
    expect((error as ConfigError).message).toBe(`Config file ${file} does not exist`);
    expect((error as ConfigError).file).toBe(file);
    expect((error as ConfigError).issues).toEqual([]);
  });

  test('broken JSON is a ConfigError naming the file, the line and the column', async () => {
    const file = join(dir, 'broken.json');
    await writeFile(file, '{\n  "instances": [\n    { "id": "a", "command": x }\n  ]\n}\n');
    const error = (await loadConfigFile(file).catch((caught: unknown) => caught)) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message.split('\n')).toEqual([
      `Config file ${file} is not valid JSON at line 3, column 29: Unexpected token 'x'`,
      '3 |     { "id": "a", "command": x }',
      '  |                             ^',
    ]);
  });

  test('JSON errors that V8 reports with a position get the same line and column', async () => {
    const file = join(dir, 'trailing-comma.json');
    await writeFile(file, '{\n  "instances": [],\n}\n');
    const error = (await loadConfigFile(file).catch((caught: unknown) => caught)) as ConfigError;
    expect(error.message.split('\n')[0]).toBe(`Config file ${file} is not valid JSON at line 3, column 1: Expected double-quoted property name`);
  });

  test('an empty file says so', async () => {
    const file = join(dir, 'empty.json');
    await writeFile(file, '');
    const error = (await loadConfigFile(file).catch((caught: unknown) => caught)) as ConfigError;
    expect(error.message).toBe(`Config file ${file} is not valid JSON at line 1, column 1: the file is empty`);
  });

  test('an invalid config in a file names the file in the heading', async () => {
    const file = join(dir, 'invalid.json');
    await writeFile(file, JSON.stringify({ instances: [{ id: 'a' }] }));
    const error = (await loadConfigFile(file).catch((caught: unknown) => caught)) as ConfigError;
    expect(error.message).toBe(`Invalid Warden config in ${file}: 1 problem\ninstances[0].command: required (got undefined)`);
    expect(error.file).toBe(file);
  });
});

describe('JSON Schema for editors', () => {
  test('the committed schema file is exactly what the zod schema generates (run npm run config:schema)', async () => {
    const committed = await readFile(join(root, 'schema/warden.config.schema.json'), 'utf8');
    expect(committed).toBe(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  });

  test('the schema carries a title, descriptions, defaults and the strictness of the parser', () => {
    const schema = configJsonSchema() as {
      $schema: string;
      title: string;
      additionalProperties: boolean;
      properties: { instances: { items: { properties: Record<string, { default?: unknown; description?: string }>; additionalProperties: boolean } } };
    };
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.title).toBe('Warden configuration');
    expect(schema.additionalProperties).toBe(false);
    const instance = schema.properties.instances.items;
    expect(instance.additionalProperties).toBe(false);
    expect(instance.properties.stopGraceMs?.default).toBe(5000);
    for (const [key, field] of Object.entries(instance.properties)) expect(field.description, key).toEqual(expect.any(String));
  });

  test('the zod schema itself is exported for composition', () => {
    expect(wardenConfigSchema.safeParse(designExample).success).toBe(true);
  });
});
