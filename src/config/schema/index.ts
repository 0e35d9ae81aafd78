// The whole config file's schema, and the rules that span instances (ids and ports unique, server port apart).
import { z } from 'zod';

import { INSTANCE_ID, isRecord } from './common.js';
import { instanceSchema } from './instance.js';
import { serverSchema } from './server.js';
import { watchdogSchema } from './watchdog.js';

// The config file's schema (input side: what a user writes); parseConfig adds resolution and derived fields.
export const wardenConfigSchema = z
  .strictObject({
    $schema: z.string().optional().describe('Path or URL of this JSON Schema, for editors; ignored by Warden.'),
    stateDir: z
      .string()
      .min(1)
      .default('.warden')
      .describe('Folder for the lock, the process registry and diagnostic bundles; relative to the config file\'s folder.'),
    instances: z
      .array(instanceSchema)
      .min(1, { error: 'must list at least one instance' })
      .superRefine((instances, ctx) => checkInstanceList(instances, (issue) => ctx.addIssue({ code: 'custom', ...issue })), {
        when: (payload) => Array.isArray(payload.value),
      })
      .describe('The WebUI instances to supervise (at least one; ids and ports unique).'),
    watchdog: watchdogSchema.prefault({}).describe('Process-count watchdog: sampling and thresholds.'),
    server: serverSchema.prefault({}).describe('Control API and dashboard of `warden run`.'),
  })
  .superRefine((config, ctx) => checkServerPort(config, (issue) => ctx.addIssue({ code: 'custom', ...issue })), {
    when: (payload) => isRecord(payload.value),
  })
  .meta({
    title: 'Warden configuration',
    description: 'warden.config.json: the Stable Diffusion WebUI instances Warden supervises, and how.',
  });

// What a config may look like before parsing (every defaulted field optional).
export type WardenConfigInput = z.input<typeof wardenConfigSchema>;

// ── Cross-field rules that span instances (run even when other fields are broken, so all problems show at once) ──

export type Report = (issue: { path: PropertyKey[]; message: string; input: unknown }) => void;

export interface PortClaim {
  index: number;
  port: number;
  /** Where the port comes from inside the instance: `port`, or `health.url` when derived. */
  from: string;
}

export function checkInstanceList(instances: readonly unknown[], report: Report): void {
  const ids = new Map<string, { index: number; id: string }>();
  const ports = new Map<number, PortClaim>();
  instances.forEach((instance, index) => {
    if (!isRecord(instance)) return;
    const id = instance.id;
    if (typeof id === 'string' && INSTANCE_ID.test(id)) {
      const first = ids.get(id.toLowerCase());
      if (!first) ids.set(id.toLowerCase(), { index, id });
      else {
        const message =
          first.id === id
            ? `duplicate id ${JSON.stringify(id)} (also instances[${first.index}].id)`
            : `differs only in case from instances[${first.index}].id ${JSON.stringify(first.id)} (ids name files, and file systems may ignore case)`;
        report({ path: [index, 'id'], message, input: id });
      }
    }
    const claim = portClaim(instance, index);
    if (!claim) return;
    const first = ports.get(claim.port);
    if (!first) ports.set(claim.port, claim);
    else {
      const derived = claim.from === 'port' ? '' : ', derived from this URL';
      report({
        path: [index, ...claim.from.split('.')],
        message: `duplicate port ${claim.port}${derived} (also instances[${first.index}].${first.from})`,
        input: claim.from === 'port' ? claim.port : (instance.health as Record<string, unknown>).url,
      });
    }
  });
}

export function checkServerPort(config: unknown, report: Report): void {
  if (!isRecord(config) || !isRecord(config.server) || !Array.isArray(config.instances)) return;
  const port = config.server.port;
  if (typeof port !== 'number' || port === 0) return;
  const clash = config.instances.map((instance, index) => portClaim(instance, index)).find((claim) => claim?.port === port);
  if (!clash) return;
  report({ path: ['server', 'port'], message: `conflicts with instances[${clash.index}].${clash.from}`, input: port });
}

// The port an instance claims: explicit, or derived from its health URL.
export function portClaim(instance: unknown, index: number): PortClaim | undefined {
  if (!isRecord(instance)) return undefined;
  const { port, health } = instance;
  if (typeof port === 'number') {
    return Number.isInteger(port) && port >= 1 && port <= 65535 ? { index, port, from: 'port' } : undefined;
  }
  if (typeof port === 'string') return undefined;
  if (port != null || !isRecord(health) || typeof health.url !== 'string') return undefined;
  const derived = portOfUrl(health.url);
  return derived === undefined ? undefined : { index, port: derived, from: 'health.url' };
}

export function portOfUrl(url: string): number | undefined {
  try {
    const parsed = new URL(url);
    if (parsed.port) return Number(parsed.port);
    return parsed.protocol === 'https:' ? 443 : parsed.protocol === 'http:' ? 80 : undefined;
  } catch {
    return undefined;
  }
}
