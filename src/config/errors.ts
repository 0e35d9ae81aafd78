// The error parseConfig throws: every problem at once, each naming its field and value.

import { WardenError } from '../process/errors.js';
import type { ConfigIssue } from './types.js';

// A config that cannot be used: `issues` lists every bad field (empty when the file itself is missing or not JSON).
export class ConfigError extends WardenError {
  readonly issues: ConfigIssue[];
  /** The config file, when the config came from one. */
  readonly file: string | undefined;
  constructor(message: string, issues: ConfigIssue[] = [], options: { file?: string; cause?: unknown } = {}) {
    super('CONFIG_INVALID', message, options.cause === undefined ? undefined : { cause: options.cause });
    this.issues = issues;
    this.file = options.file;
  }
}
