// Piscina worker of the "ideal pipeline" baseline: one long task per request keeps that
// request's running SHA-256, MD5 and CRC32C, fed chunk by chunk through a MessagePort. The
// chunks live in SharedArrayBuffers, so nothing is copied between the threads.
import { createHash } from 'node:crypto';
import type { MessagePort } from 'node:worker_threads';
import { crc32c } from '@node-rs/crc32';

export interface SessionTask {
  port: MessagePort;
}

export interface SessionDigests {
  sha256Hex: string;
  md5Hex: string;
  crc32c: number;
}

/** A chunk to hash (acknowledged by posting its seq back), or the end of the body. */
export type SessionMessage = { seq: number; buffer: SharedArrayBuffer; length: number } | { end: true };

export default function hashSession({ port }: SessionTask): Promise<SessionDigests> {
  const sha256 = createHash('sha256');
  const md5 = createHash('md5');
  let crc = 0;
  return new Promise((resolve) => {
    port.on('message', (message: SessionMessage) => {
      if ('end' in message) {
        port.close();
        resolve({ sha256Hex: sha256.digest('hex'), md5Hex: md5.digest('hex'), crc32c: crc });
        return;
      }
      const view = new Uint8Array(message.buffer, 0, message.length);
      sha256.update(view);
      md5.update(view);
      crc = crc32c(view, crc);
      port.postMessage(message.seq);
    });
  });
}
