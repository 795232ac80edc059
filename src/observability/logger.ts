// The process's logger: pino, JSON lines on stderr (stdout stays for the CLI's own output),
// written asynchronously so a slow reader of stderr never stalls the event loop. Secrets are
// kept out twice: callers never pass them, and pino's redaction blanks the usual suspects
// (the access log, whose fields are all chosen by the gateway, redacts its URL itself).
import { pino, type Logger } from 'pino';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

const REDACTED = '[redacted]';
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
// Datanode processes inherit the level through the environment; a bad value is the config's to report.
const initialLevel = LEVELS.includes(process.env.S3G_LOG_LEVEL ?? '') ? process.env.S3G_LOG_LEVEL! : 'info';

const destination = pino.destination({ dest: 2, sync: false });
const format = {
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label: string) => ({ level: label }) },
};

export const logger: Logger = pino(
  {
    ...format,
    level: initialLevel,
    redact: {
      paths: ['authorization', 'secretAccessKey', 'secret', 'password', 'headers.authorization', 'headers["x-amz-security-token"]', '*.secretAccessKey', '*.authorization'],
      censor: REDACTED,
    },
  },
  destination,
);

/**
 * The access log: the same stream and format, without pino's redaction. Its fields are all
 * chosen by requestObserver, which blanks presigned signatures in the URL itself; redaction
 * took a quarter of the log's cost, on every request.
 */
export const accessLogger: Logger = pino({ ...format, level: initialLevel }, destination);

export function setLogLevel(level: LogLevel): void {
  logger.level = level;
  accessLogger.level = level;
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
