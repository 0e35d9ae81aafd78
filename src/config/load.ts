// Parsing a config object or file into a WardenConfig: JSON errors with line and column, then resolution.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';

import { parsePortRange } from '../port-discovery.js';
import { PROFILE_DEFINITIONS } from '../profiles.js';
import { ConfigError } from './errors.js';
import { errorMap, formatReceived, inInputOrder, toConfigIssues } from './messages.js';
import { PROFILE_HEALTH_TIMING, SERVER_STOP_PATH, SERVER_STOP_TIMEOUT_MS } from './schema/common.js';
import { portOfUrl, wardenConfigSchema } from './schema/index.js';
import type { AutoPort, GracefulStopConfig, InstanceConfig, LaunchProfileConfig, WardenConfig } from './types.js';

/** Options of parseConfig. */
export interface ParseConfigOptions {
  /** Relative `stateDir` and `cwd` resolve against this folder. Default: `process.cwd()`. */
  baseDir?: string;
  /** Where the config came from (a file name), for the error message. */
  source?: string;
}

// Validates a config and returns it fully defaulted and resolved; throws a ConfigError listing every problem.
export function parseConfig(input: unknown, options: ParseConfigOptions = {}): WardenConfig {
  const result = wardenConfigSchema.safeParse(input, { error: errorMap, reportInput: true });
  if (!result.success) {
    const issues = inInputOrder(toConfigIssues(result.error.issues, input));
    const count = `${issues.length} problem${issues.length === 1 ? '' : 's'}`;
    const head = `Invalid Warden config${options.source ? ` in ${options.source}` : ''}: ${count}`;
    const lines = issues.map((issue) => `${issue.path}: ${issue.message} (got ${formatReceived(issue.received)})`);
    throw new ConfigError([head, ...lines].join('\n'), issues, options.source ? { file: options.source } : {});
  }
  return resolveConfig(result.data, resolve(options.baseDir ?? process.cwd()));
}

// Reads and validates a JSON config file; relative paths in it resolve against the file's folder.
export async function loadConfigFile(path: string): Promise<WardenConfig> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`Config file ${file} ${readFailure(error)}`, [], { file, cause: error });
  }
  text = text.replace(/^\uFEFF/, '');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`Config file ${file} is not valid JSON ${describeJsonError(text, error)}`, [], { file, cause: error });
  }
  return parseConfig(json, { baseDir: dirname(file), source: file });
}

export function readFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EISDIR') return 'is a directory, not a file';
  if (code === 'EACCES' || code === 'EPERM') return 'cannot be read (permission denied)';
  return `cannot be read: ${error instanceof Error ? error.message : String(error)}`;
}

// `at line 3, column 12: Unexpected token 'x'`, then the line and a caret under the column.
export function describeJsonError(text: string, error: unknown): string {
  const reason = (error instanceof Error ? error.message : String(error))
    .replace(/ in JSON at position \d+.*$/s, '')
    .replace(/, .*is not valid JSON$/s, '');
  const offset = jsonErrorOffset(text) ?? Number(/at position (\d+)/.exec(String(error))?.[1] ?? text.length);
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const lineStart = before.lastIndexOf('\n') + 1;
  const column = offset - lineStart + 1;
  if (text.trim() === '') return `at line ${line}, column ${column}: the file is empty`;
  const source = (text.slice(lineStart).split('\n')[0] ?? '').replace(/\r$/, '').replace(/\t/g, ' ');
  const gutter = `${line} | `;
  const shown = column > 100 ? `…${source.slice(column - 60, column + 40)}` : source.slice(0, 140);
  const caret = column > 100 ? 61 : column;
  return [
    `at line ${line}, column ${column}: ${reason}`,
    `${gutter}${shown}`,
    `${' '.repeat(gutter.length - 2)}| ${' '.repeat(caret - 1)}^`,
  ].join('\n');
}

// Offset of the first character that makes `text` invalid JSON (V8 does not always say), or undefined if valid.
export function jsonErrorOffset(text: string): number | undefined {
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  let i = 0;
  const fail = (at = i): never => {
    throw new JsonSyntaxAt(at);
  };
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i] ?? '')) i++;
  };
  const string = () => {
    i++;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) return void i++;
      if (c < 0x20) fail();
      if (c === 0x5c) {
        const next = text[i + 1] ?? '';
        if (next === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
        else if (next !== '' && next !== 'u' && '"\\/bfnrt'.includes(next)) i += 2;
        else fail(i + 1);
      } else i++;
    }
    fail();
  };
  const value = (): void => {
    space();
    const c = text[i];
    if (c === '{') {
      i++;
      space();
      if (text[i] === '}') return void i++;
      for (;;) {
        space();
        if (text[i] !== '"') fail();
        string();
        space();
        if (text[i] !== ':') fail();
        i++;
        value();
        space();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return void i++;
        else fail();
      }
    }
    if (c === '[') {
      i++;
      space();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        space();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return void i++;
        else fail();
      }
    }
    if (c === '"') return string();
    for (const word of ['true', 'false', 'null']) {
      if (c === word[0]) return void (text.startsWith(word, i) ? (i += word.length) : fail());
    }
    NUMBER.lastIndex = i;
    const number = NUMBER.exec(text);
    if (!number) fail();
    else i += number[0].length;
  };
  try {
    value();
    space();
    if (i < text.length) fail();
    return undefined;
  } catch (error) {
    if (error instanceof JsonSyntaxAt) return error.offset;
    throw error;
  }
}

export class JsonSyntaxAt {
  constructor(readonly offset: number) {}
}

// ── Resolution: defaults derived from other fields, absolute paths ──────────────────────────────────────────────

export type ParsedConfig = z.output<typeof wardenConfigSchema>;
export type ParsedInstance = ParsedConfig['instances'][number];

export function resolveConfig(parsed: ParsedConfig, baseDir: string): WardenConfig {
  const { watchdog, server } = parsed;
  return {
    stateDir: resolve(baseDir, parsed.stateDir),
    instances: parsed.instances.map((instance) => resolveInstance(instance, baseDir)),
    watchdog: {
      sampleIntervalMs: watchdog.sampleIntervalMs,
      warning: { python: watchdog.warning.python, shell: watchdog.warning.shell },
      critical: { python: watchdog.critical.python, shell: watchdog.critical.shell },
      emergencyWindowMs: watchdog.emergencyWindowMs,
      calmSamples: watchdog.calmSamples,
    },
    server: { host: server.host, port: server.port },
  };
}

export function resolveInstance(instance: ParsedInstance, baseDir: string): InstanceConfig {
  const profile = PROFILE_DEFINITIONS[instance.profile];
  const portRange = typeof instance.port === 'string' ? (parsePortRange(instance.port) ?? null) : null;
  const fixedPort = typeof instance.port === 'number' ? instance.port : null;
  // A profile's health URL is built from the port (a range's first port; each start substitutes its own).
  const profilePort = fixedPort ?? portRange?.from ?? (instance.health ? null : profile.defaultPort);
  let health = instance.health ? { ...instance.health } : null;
  if (instance.health === undefined && profile.healthPath !== null && profilePort !== null) {
    health = { url: `http://127.0.0.1:${profilePort}${profile.healthPath}`, ...PROFILE_HEALTH_TIMING };
  }
  const stop = instance.gracefulStop;
  const origin = health ? new URL(health.url).origin : undefined;
  // Generic keeps the historical default (A1111's server-stop whenever there is a health URL); a profile says it.
  const stopPath = instance.profile === 'generic' ? SERVER_STOP_PATH : profile.gracefulStopPath;
  let gracefulStop: GracefulStopConfig | null = null;
  if (stop === undefined && origin && stopPath !== null) gracefulStop = { url: origin + stopPath, timeoutMs: SERVER_STOP_TIMEOUT_MS };
  else if (stop) gracefulStop = { url: stop.url ?? `${origin ?? ''}${SERVER_STOP_PATH}`, timeoutMs: stop.timeoutMs };
  const launchProfiles: Record<string, LaunchProfileConfig> = {};
  for (const [name, entry] of Object.entries(instance.launchProfiles)) launchProfiles[name] = { args: [...entry.args], env: { ...entry.env } };
  return {
    id: instance.id,
    profile: instance.profile,
    command: instance.command,
    args: [...instance.args],
    cwd: resolve(baseDir, instance.cwd ?? '.'),
    env: { ...instance.env },
    health,
    gracefulStop,
    port: portRange !== null ? (`auto:${portRange.from}-${portRange.to}` as AutoPort) : (fixedPort ?? (health ? (portOfUrl(health.url) ?? null) : profile.defaultPort)),
    launchProfiles,
    logs: { maxBytes: instance.logs.maxBytes, keepFiles: instance.logs.keepFiles },
    startupTimeoutMs: instance.startupTimeoutMs,
    stopGraceMs: instance.stopGraceMs,
    maxStopAttempts: instance.maxStopAttempts,
    restart: { ...instance.restart },
    windowsJob: instance.windowsJob,
    containment: instance.containment,
  };
}
