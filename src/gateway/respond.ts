// Writing responses: XML documents, empty answers, and streamed bodies with backpressure.
import type { ServerResponse } from 'node:http';
import { xmlDocument } from './xml.js';

export function sendXml(res: ServerResponse, status: number, root: string, body: Record<string, unknown>): void {
  const payload = Buffer.from(xmlDocument(root, body));
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': payload.length });
  res.end(payload);
}

export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string | number> = {}): void {
  res.writeHead(status, { ...headers, 'Content-Length': 0 });
  res.end();
}

/** Writes chunks as the socket drains; stops early (returning false) if the client went away. */
export async function pipeBody(res: ServerResponse, chunks: AsyncIterable<Uint8Array>): Promise<boolean> {
  for await (const chunk of chunks) {
    if (res.destroyed) return false;
    if (!res.write(chunk)) await drainOrClose(res);
  }
  return !res.destroyed;
}

export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

export function isoDate(ms: number): string {
  return new Date(ms).toISOString();
}

function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
