// The process's logger: pino, JSON lines on stderr (stdout stays for the CLI's own output),
// buffered and written without blocking (LogWriter), so a slow reader of stderr never stalls the event loop.
// Secrets are kept out twice: callers never pass them, and pino's redaction blanks the usual
// suspects (the access log, whose fields are all chosen by the gateway, redacts its URL itself).
import { pino, type Logger } from 'pino';
import { LogWriter } from './log-writer.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

const REDACTED = '[redacted]';
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
// Datanode processes inherit the level through the environment; a bad value is the config's to report.
const initialLevel = LEVELS.includes(process.env.S3G_LOG_LEVEL ?? '') ? process.env.S3G_LOG_LEVEL! : 'info';

const destination = new LogWriter(2);

export const logger: Logger = pino(
  {
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    level: initialLevel,
    redact: {
      paths: ['authorization', 'secretAccessKey', 'secret', 'password', 'headers.authorization', 'headers["x-amz-security-token"]', '*.secretAccessKey', '*.authorization'],
      censor: REDACTED,
    },
  },
  destination,
);

/** The access log: a line per request in pino's format, its fields chosen by requestObserver. */
export interface AccessLog {
  enabled(level: 'info' | 'warn'): boolean;
  write(level: 'info' | 'warn', fields: Record<string, string | number | boolean | undefined>): void;
}

/**
 * One JSON.stringify per line on the shared destination rather than pino's serializer, which
 * cost about 3% of a small GET's CPU. requestObserver blanks presigned signatures in the URL
 * itself, so pino's redaction is not needed either.
 */
export const accessLog: AccessLog = {
  enabled: (level) => logger.isLevelEnabled(level),
  write: (level, fields) => destination.writeBatched(JSON.stringify({ level, time: new Date().toISOString(), pid: process.pid, ...fields, msg: 'request' }) + '\n'),
};

export function setLogLevel(level: LogLevel): void {
  logger.level = level;
}

/** Writes what is buffered; call before a deliberate exit. */
export function flushLogs(): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}

// Query parameters of presigned URLs that carry a signature or a session token.
const SECRET_QUERY = /([?&](?:X-Amz-Signature|X-Amz-Security-Token|Signature)=)[^&]*/gi;

/** A request URL fit for a log line: presigned signatures and tokens blanked. */
export function redactUrl(url: string): string {
  return url.includes('?') ? url.replace(SECRET_QUERY, `$1${REDACTED}`) : url;
}
