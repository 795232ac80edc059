// Writing responses: XML documents, empty answers, and streamed bodies with backpressure.
import type { ServerResponse } from 'node:http';
import { xmlDocument } from './xml.js';

export function sendXml(res: ServerResponse, status: number, root: string, body: Record<string, unknown>): void {
  const payload = Buffer.from(xmlDocument(root, body));
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': payload.length });
  res.end(payload);
}

/** `headers`: the caller's own object, which gets Content-Length (no copy on every PUT's answer). */
export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string | number> = {}): void {
  headers['Content-Length'] = 0;
  res.writeHead(status, headers);
  res.end();
}

/**
 * Writes chunks one at a time, each once the socket has taken the one before (a chunk may reuse
 * the previous one's memory: ObjectReader); stops early (returning false) if the client went away.
 */
export async function pipeBody(res: ServerResponse, chunks: AsyncIterable<Uint8Array>): Promise<boolean> {
  for await (const chunk of chunks) {
    if (!(await writeChunk(res, chunk))) return false;
  }
  return !res.destroyed;
}

/** Writes a chunk and resolves once the socket has taken it (true) or the client went away (false). */
export function writeChunk(res: ServerResponse, chunk: Uint8Array): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('close', done);
      resolve(!res.destroyed);
    };
    res.on('close', done);
    res.write(chunk, done);
  });
}

export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

/** The second formatted last, as "YYYY-MM-DDTHH:MM:SS.": listings print runs of keys written in the same second. */
let lastSecond = NaN;
let lastSecondPrefix = '';

/** new Date(ms).toISOString(), formatting the date only when the second changes (12× faster within one). */
export function isoDate(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== lastSecond) {
    const iso = new Date(second * 1000).toISOString();
    // Years past 9999 (or before 0) take a longer form: no shortcut for them.
    if (iso.length !== 24) return new Date(ms).toISOString();
    lastSecond = second;
    lastSecondPrefix = iso.slice(0, 20);
  }
  const milli = ms - second * 1000;
  return `${lastSecondPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}
