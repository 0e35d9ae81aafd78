// The JSON Schema shipped for editors, generated from the zod schema.
import { z } from 'zod';

import { wardenConfigSchema } from './schema/index.js';

// The config file's JSON Schema (draft 2020-12), generated from wardenConfigSchema; shipped for editors.
export function configJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(wardenConfigSchema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' });
  const { $schema, title, description, ...rest } = generated as Record<string, unknown>;
  return { $schema, title, description, ...rest };
}
