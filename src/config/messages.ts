// How a zod issue becomes `path: message (got <value>)`: type names, unknown-key suggestions, input order.
import { z } from 'zod';

import { isRecord } from './schema/common.js';
import { wardenConfigSchema } from './schema/index.js';
import type { ConfigIssue } from './types.js';

export const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'an integer',
  int: 'an integer',
  boolean: 'true or false',
  array: 'an array',
  object: 'an object',
  record: 'an object',
  null: 'null',
};

// Words for zod's issue kinds, used for every issue whose schema does not say it better itself.
export const errorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? 'required' : `must be ${TYPE_NAMES[issue.expected] ?? issue.expected}`;
    case 'too_small': {
      const min = Number(issue.minimum);
      if (issue.origin === 'string') return min <= 1 ? 'must not be empty' : `must be at least ${min} characters`;
      if (issue.origin === 'array') return `must have at least ${min} item${min === 1 ? '' : 's'}`;
      return `must be ${issue.inclusive === false ? '>' : '≥'} ${min}`;
    }
    case 'too_big': {
      const max = Number(issue.maximum);
      if (issue.origin === 'string') return `must be at most ${max} characters`;
      if (issue.origin === 'array') return `must have at most ${max} items`;
      return `must be ${issue.inclusive === false ? '<' : '≤'} ${max}`;
    }
    case 'invalid_value':
      return `must be ${issue.values.map((value) => JSON.stringify(value)).join(' or ')}`;
    case 'invalid_format':
      return `must be a valid ${issue.format}`;
    case 'unrecognized_keys':
      return 'unknown key';
    case 'invalid_union':
      return 'has the wrong type';
    case 'invalid_key':
      return 'is not a valid name (1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit)';
    default:
      return undefined;
  }
};

// Turns zod's issues into one ConfigIssue per problem: unknown keys one by one (with a hint), unions flattened.
export function toConfigIssues(issues: readonly z.core.$ZodIssue[], input: unknown, prefix: readonly PropertyKey[] = []): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push({ path: formatPath([...path, key]), message: unknownKeyMessage(path, key), received: valueAt(input, [...path, key]) });
      }
      continue;
    }
    if (issue.code === 'invalid_union') {
      // The branch whose type matched holds the useful issues; zod usually flattens this already.
      const matched = issue.errors.filter((branch) => !branch.some((inner) => inner.path.length === 0 && isTypeMismatch(inner)));
      if (matched.length === 1 && matched[0]) {
        out.push(...toConfigIssues(matched[0], input, path));
        continue;
      }
    }
    out.push({ path: formatPath(path), message: issue.message, received: 'input' in issue ? issue.input : valueAt(input, path) });
  }
  return out;
}

// Groups the issues by top-level key (schema order, unknown keys first), then by instance, keeping zod's order inside.
export function inInputOrder(issues: ConfigIssue[]): ConfigIssue[] {
  const topLevel = Object.keys(wardenConfigSchema.shape);
  const rank = (issue: ConfigIssue): [number, number] => {
    const match = /^([^.[]+)(?:\[(\d+)\])?/.exec(issue.path);
    return [topLevel.indexOf(match?.[1] ?? ''), Number(match?.[2] ?? -1)];
  };
  return issues
    .map((issue, index) => ({ issue, index, rank: rank(issue) }))
    .sort((a, b) => a.rank[0] - b.rank[0] || a.rank[1] - b.rank[1] || a.index - b.index)
    .map(({ issue }) => issue);
}

export function isTypeMismatch(issue: z.core.$ZodIssue): boolean {
  return issue.code === 'invalid_type' || issue.code === 'invalid_value' || issue.code === 'invalid_union';
}

export function unknownKeyMessage(path: readonly PropertyKey[], key: string): string {
  const known = keysAt(path);
  const hint = closest(key, known);
  if (hint) return `unknown key (did you mean ${JSON.stringify(hint)}?)`;
  return known.length > 0 ? `unknown key (allowed: ${known.join(', ')})` : 'unknown key';
}

// The keys the schema allows at a path of the input (for "did you mean").
export function keysAt(path: readonly PropertyKey[]): string[] {
  let node: z.ZodType | undefined = wardenConfigSchema;
  for (const segment of path) {
    const current: z.ZodType = unwrap(node);
    if (current instanceof z.ZodObject) node = (current.shape as Record<string, z.ZodType>)[String(segment)];
    else if (current instanceof z.ZodArray) node = current.element as z.ZodType;
    else if (current instanceof z.ZodRecord) node = current.valueType as z.ZodType;
    else node = undefined;
    if (!node) return [];
  }
  const target = unwrap(node);
  return target instanceof z.ZodObject ? Object.keys(target.shape) : [];
}

export function unwrap(node: z.ZodType): z.ZodType {
  let current = node;
  for (;;) {
    if (
      current instanceof z.ZodDefault ||
      current instanceof z.ZodPrefault ||
      current instanceof z.ZodOptional ||
      current instanceof z.ZodNullable
    ) {
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodUnion) {
      const options = current.options as readonly z.ZodType[];
      const object = options.map((option) => unwrap(option)).find((option) => option instanceof z.ZodObject);
      return object ?? current;
    } else {
      return current;
    }
  }
}

// The known key closest to a mistyped one (case slip or a couple of typos), if any is close enough.
export function closest(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const sameLetters = known.find((candidate) => candidate.toLowerCase() === lower);
  if (sameLetters) return sameLetters;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.min(3, Math.floor(best.length / 4))) ? best : undefined;
}

export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      row.push(Math.min((previous[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, substitution));
    }
    previous = row;
  }
  return previous[b.length] ?? 0;
}

// `instances[0].restart.maxDelayMs`; keys that are not identifiers are quoted: `env["MY VAR"]`.
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else {
      const key = String(segment);
      out += /^[A-Za-z_$][\w$]*$/.test(key) ? `${out ? '.' : ''}${key}` : `[${JSON.stringify(key)}]`;
    }
  }
  return out || '(root)';
}

export function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current = input;
  for (const segment of path) {
    if (Array.isArray(current) && typeof segment === 'number') current = current[segment];
    else if (isRecord(current) && typeof segment === 'string' && Object.hasOwn(current, segment)) current = current[segment];
    else return undefined;
  }
  return current;
}

// The received value as JSON, shortened; `undefined` (a missing field) has no JSON and is written as such.
export function formatReceived(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}
