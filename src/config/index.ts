// Warden's configuration: one zod schema is the source of truth for validation, defaults, the TypeScript types and
// the JSON Schema shipped for editors. Every problem is reported as `path: message (got <value>)`, all at once.
// One module per concern: types, section schemas (schema/), messages, errors, loading, JSON Schema.
export * from './types.js';
export { wardenConfigSchema } from './schema/index.js';
export type { WardenConfigInput } from './schema/index.js';
export { formatReceived } from './messages.js';
export { ConfigError } from './errors.js';
export { loadConfigFile, parseConfig } from './load.js';
export type { ParseConfigOptions } from './load.js';
export { configJsonSchema } from './json-schema.js';
