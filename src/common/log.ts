// The shorthand most modules use: log(level, msg, fields) on the process's pino logger
// (JSON lines on stderr; see src/observability/logger.ts).
import { logger } from '../observability/logger.js';

export type Level = 'debug' | 'info' | 'warn' | 'error';

export function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
  logger[level](fields, msg);
}
