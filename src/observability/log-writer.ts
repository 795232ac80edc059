// Where the log lines go: a file descriptor (stderr), written off the event loop. A busy
// gateway logs an access line per request: those are written in large pieces, as nginx's
// `access_log … buffer= flush=` does (each event-loop turn's lines become one buffer at the
// turn's end, and the buffers go out together, in one writev, once there are enough of them).
// Any other line (a start, a warning, an error) goes out at the end of its turn.
import { writeSync, writev } from 'node:fs';

export interface LogWriterOptions {
  /** Bytes gathered before a write is started. */
  bufferBytes: number;
  /** Longest a line waits for a quiet gateway's buffer to fill. */
  flushMs: number;
  /** Bytes held while the reader does not keep up; lines past it are dropped and counted. */
  maxPendingBytes: number;
}

const DEFAULTS: LogWriterOptions = { bufferBytes: 16 * 1024, flushMs: 100, maxPendingBytes: 64 * 1024 * 1024 };
const EAGAIN_RETRY_MS = 10;
/** How long an exit keeps trying a descriptor that takes nothing (a full, non-blocking pipe). */
const EXIT_WRITE_DEADLINE_MS = 1000;

export class LogWriter {
  private turnLines: string[] = [];
  /** A line of this turn that should not wait for a full buffer. */
  private turnIsUrgent = false;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private writing = false;
  private broken = false;
  private dropped = 0;
  private waiters: (() => void)[] = [];
  /** Taken for a write that met EAGAIN and waits to be tried again. */
  private retrying: Buffer[] | undefined;
  private readonly options: LogWriterOptions;

  constructor(
    private readonly fd: number,
    options: Partial<LogWriterOptions> = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
    setInterval(() => this.startWrite(), this.options.flushMs).unref();
    process.once('exit', () => this.flushSync());
  }

  /** pino's destination interface: one whole line, written at the end of this turn. */
  write(line: string): void {
    this.turnIsUrgent = true;
    this.writeBatched(line);
  }

  /** One whole line that may wait up to flushMs for a full buffer (access lines). */
  writeBatched(line: string): void {
    if (this.broken) return;
    if (this.turnLines.length === 0) setImmediate(this.endTurn);
    this.turnLines.push(line);
  }

  /** Calls back once everything written so far has reached the descriptor. */
  flush(callback?: (error?: Error) => void): void {
    this.endTurn();
    if (this.broken || (!this.writing && this.pendingBytes === 0)) {
      callback?.();
      return;
    }
    if (callback) this.waiters.push(() => callback());
    this.startWrite();
  }

  /** For exits, when no callback will run: writes what is pending in this thread. */
  flushSync(): void {
    this.endTurn();
    if (this.broken) return;
    let buffer = Buffer.concat([...(this.retrying ?? []), ...this.take()]);
    this.retrying = undefined;
    const deadline = Date.now() + EXIT_WRITE_DEADLINE_MS;
    while (buffer.length > 0 && Date.now() < deadline) {
      try {
        buffer = buffer.subarray(writeSync(this.fd, buffer));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      }
    }
  }

  private readonly endTurn = (): void => {
    if (this.turnLines.length === 0) return;
    const buffer = Buffer.from(this.turnLines.join(''));
    const lines = this.turnLines.length;
    const urgent = this.turnIsUrgent;
    this.turnLines = [];
    this.turnIsUrgent = false;
    if (this.pendingBytes + buffer.length > this.options.maxPendingBytes) {
      this.dropped += lines;
      return;
    }
    this.pending.push(buffer);
    this.pendingBytes += buffer.length;
    if (urgent || this.pendingBytes >= this.options.bufferBytes) this.startWrite();
  };

  private take(): Buffer[] {
    const buffers = this.pending;
    if (this.dropped > 0) {
      const note = { level: 'warn', time: new Date().toISOString(), pid: process.pid, dropped: this.dropped, msg: 'log lines dropped: the log reader did not keep up' };
      buffers.unshift(Buffer.from(JSON.stringify(note) + '\n'));
      this.dropped = 0;
    }
    this.pending = [];
    this.pendingBytes = 0;
    return buffers;
  }

  private startWrite(): void {
    if (this.writing) return;
    if (this.broken || (this.pendingBytes === 0 && this.dropped === 0)) {
      this.settle();
      return;
    }
    this.writing = true;
    this.writeOut(this.take());
  }

  private writeOut(buffers: Buffer[]): void {
    writev(this.fd, buffers, (error, written) => {
      if (error) {
        if (error.code === 'EAGAIN') {
          this.retrying = buffers;
          setTimeout(() => {
            // An exit's flushSync may have written them meanwhile.
            if (this.retrying !== buffers) return;
            this.retrying = undefined;
            this.writeOut(buffers);
          }, EAGAIN_RETRY_MS).unref();
          return;
        }
        // The reader is gone (EPIPE) or the descriptor is unusable: logging stops, serving does not.
        this.broken = true;
        this.pending = [];
        this.pendingBytes = 0;
        this.writing = false;
        this.settle();
        return;
      }
      const total = buffers.reduce((sum, b) => sum + b.length, 0);
      if (written < total) {
        this.writeOut([Buffer.concat(buffers).subarray(written)]);
        return;
      }
      this.writing = false;
      if (this.pendingBytes >= this.options.bufferBytes || this.waiters.length > 0) this.startWrite();
    });
  }

  private settle(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }
}
