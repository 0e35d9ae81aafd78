// The schema of `server`: the control API listens on loopback only.
import { z } from 'zod';

import { isLoopback } from './common.js';

export const serverSchema = z.strictObject({
  host: z
    .string()
    .refine(isLoopback, {
      error: 'must be a loopback address (127.0.0.0/8, ::1 or localhost): the control API has no authentication',
    })
    .default('127.0.0.1')
    .meta({
      description: 'Address the control API and dashboard listen on; loopback only (127.0.0.0/8, ::1, localhost).',
      examples: ['127.0.0.1', '::1', 'localhost'],
    }),
  port: z.int().min(0).max(65535).default(7870).describe('Port of the control API; 0 picks a free one.'),
});
