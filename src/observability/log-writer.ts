// Where the log lines go: a file descriptor (stderr), written without ever stalling the event
// loop. A busy gateway logs an access line per request: those wait until enough have gathered,
// as with nginx's `access_log … buffer= flush=` (each event-loop turn's lines are joined at the
// turn's end, and what has gathered is encoded once and written together).
// Any other line (a start, a warning, an error) goes out at the end of its turn. Gateway
// workers and datanodes share the parent's stderr: into a pipe or socket, each write is whole
// lines of at most PIPE_BUF bytes, which a pipe never interleaves with another process's
// writes (16 KiB writes mixed lines when the reader lagged); a file takes any write whole.
//
// stderr as a pipe or socket is opened the way Node opens it (non-blocking) and written in this
// thread: a piece goes whole or the pipe answers EAGAIN. Each write through the thread pool
// cost about 40 µs of CPU in thread hand-offs against 2 µs for the write itself, and pieces of
// 4 KiB made that several µs per small GET. Files and other descriptors, which may block, still
// go through the thread pool.
import { fstatSync, write, writeSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

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
/** Linux's PIPE_BUF: a pipe writes this much or less at once, never mixed with other writers'. */
const ATOMIC_WRITE_BYTES = 4096;
const NEWLINE = 0x0a;

/** Where the write starting at `offset` ends: whole lines, at most `limit` bytes unless one line is longer. */
function pieceEnd(buffer: Buffer, offset: number, limit: number): number {
  if (buffer.length - offset <= limit) return buffer.length;
  const lastNewline = buffer.lastIndexOf(NEWLINE, offset + limit - 1);
  if (lastNewline >= offset) return lastNewline + 1;
  const next = buffer.indexOf(NEWLINE, offset);
  return next < 0 ? buffer.length : next + 1;
}

export class LogWriter {
  private turnLines: string[] = [];
  /** A line of this turn that should not wait for a full buffer. */
  private turnIsUrgent = false;
  /** Each turn's lines, joined; measured in UTF-16 units, close enough to bytes for thresholds. */
  private pending: string[] = [];
  private pendingLength = 0;
  private writing = false;
  private broken = false;
  private dropped = 0;
  private waiters: (() => void)[] = [];
  /** What is left of a write that met EAGAIN and waits to be tried again. */
  private retrying: Buffer | undefined;
  private readonly options: LogWriterOptions;
  /** The most one write may carry and stay unmixed with other processes' writes. */
  private readonly wholeWriteBytes: number;
  /** Written in this thread: the descriptor never blocks (a pipe or socket opened non-blocking). */
  private readonly writesInThread: boolean;

  constructor(
    private readonly fd: number,
    options: Partial<LogWriterOptions> = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
    const kind = descriptorKind(fd);
    this.wholeWriteBytes = kind === 'file' ? Infinity : ATOMIC_WRITE_BYTES;
    this.writesInThread = kind === 'stream' && openedWithoutBlocking(fd);
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
    if (this.broken || (!this.writing && this.pendingLength === 0)) {
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
    const buffer = Buffer.concat([this.retrying ?? Buffer.alloc(0), this.take()]);
    this.retrying = undefined;
    const deadline = Date.now() + EXIT_WRITE_DEADLINE_MS;
    let offset = 0;
    while (offset < buffer.length && Date.now() < deadline) {
      try {
        offset += writeSync(this.fd, buffer, offset, pieceEnd(buffer, offset, this.wholeWriteBytes) - offset);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      }
    }
  }

  private readonly endTurn = (): void => {
    if (this.turnLines.length === 0) return;
    const joined = this.turnLines.join('');
    const lines = this.turnLines.length;
    const urgent = this.turnIsUrgent;
    this.turnLines = [];
    this.turnIsUrgent = false;
    if (this.pendingLength + joined.length > this.options.maxPendingBytes) {
      this.dropped += lines;
      return;
    }
    this.pending.push(joined);
    this.pendingLength += joined.length;
    if (urgent || this.pendingLength >= this.options.bufferBytes) this.startWrite();
  };

  /** What has gathered, encoded once (with a note of dropped lines first, if any). */
  private take(): Buffer {
    const texts = this.pending;
    if (this.dropped > 0) {
      const note = { level: 'warn', time: new Date().toISOString(), pid: process.pid, dropped: this.dropped, msg: 'log lines dropped: the log reader did not keep up' };
      texts.unshift(JSON.stringify(note) + '\n');
      this.dropped = 0;
    }
    this.pending = [];
    this.pendingLength = 0;
    return Buffer.from(texts.join(''));
  }

  private startWrite(): void {
    if (this.writing) return;
    if (this.broken || (this.pendingLength === 0 && this.dropped === 0)) {
      this.settle();
      return;
    }
    this.writing = true;
    this.writeOut(this.take());
  }

  /** Writes `buffer` piece by piece (pieceEnd), each once the one before has gone. */
  private writeOut(buffer: Buffer): void {
    if (this.writesInThread) {
      let offset = 0;
      try {
        while (offset < buffer.length) offset += writeSync(this.fd, buffer, offset, pieceEnd(buffer, offset, this.wholeWriteBytes) - offset);
      } catch (error) {
        this.failed(error as NodeJS.ErrnoException, buffer.subarray(offset));
        return;
      }
      this.wrote();
      return;
    }
    write(this.fd, buffer, 0, pieceEnd(buffer, 0, this.wholeWriteBytes), null, (error, written) => {
      if (error) this.failed(error, buffer);
      else if (written < buffer.length) this.writeOut(buffer.subarray(written));
      else this.wrote();
    });
  }

  private wrote(): void {
    this.writing = false;
    if (this.pendingLength >= this.options.bufferBytes || this.waiters.length > 0) this.startWrite();
  }

  /** A write of `rest` failed: tried again later if the descriptor is full, else logging stops. */
  private failed(error: NodeJS.ErrnoException, rest: Buffer): void {
    if (error.code === 'EAGAIN') {
      this.retrying = rest;
      setTimeout(() => {
        // An exit's flushSync may have written it meanwhile.
        if (this.retrying !== rest) return;
        this.retrying = undefined;
        this.writeOut(rest);
      }, EAGAIN_RETRY_MS).unref();
      return;
    }
    // The reader is gone (EPIPE) or the descriptor is unusable: logging stops, serving does not.
    this.broken = true;
    this.pending = [];
    this.pendingLength = 0;
    this.writing = false;
    this.settle();
  }

  private settle(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }
}

/** A regular file, a pipe or socket (a stream), or anything else (a terminal, /dev/null). */
function descriptorKind(fd: number): 'file' | 'stream' | 'other' {
  try {
    const stat = fstatSync(fd);
    if (stat.isFile()) return 'file';
    return stat.isFIFO() || stat.isSocket() ? 'stream' : 'other';
  } catch {
    return 'other';
  }
}

/**
 * Node's main thread opens stdout and stderr, when they are a pipe or socket, non-blocking
 * (libuv's uv_pipe_open), as their streams need; touching the stream here makes sure of it. A
 * worker thread's are relayed to the main thread instead, and any other descriptor may block.
 */
function openedWithoutBlocking(fd: number): boolean {
  if (!isMainThread) return false;
  const stream = fd === 1 ? process.stdout : fd === 2 ? process.stderr : undefined;
  return stream !== undefined;
}
