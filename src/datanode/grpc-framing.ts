// grpc-js frames each message (a 5-byte length prefix) by copying it into a new buffer, on the
// client (CompressionFilter.sendMessage) and on the server (serializeMessage). For chunks and
// read pieces that is a copy of every byte and as much garbage again. EncodedMessages carry
// the prefix in place already (chunk-encoding.ts), so these two patches let them through
// uncopied; everything else is framed by grpc-js as before. Both reach into grpc-js internals
// (build/src, no public hook exists) and check their shape when this module loads.
import { createRequire } from 'node:module';
import { EncodedMessage } from './chunk-encoding.js';

const require = createRequire(import.meta.url);

interface SendMessage {
  message: Buffer;
  flags?: number;
}

const { CompressionFilter } = require('@grpc/grpc-js/build/src/compression-filter.js') as {
  CompressionFilter?: { prototype: { sendMessage?: (message: Promise<SendMessage> | SendMessage) => Promise<SendMessage> } };
};
const { BaseServerInterceptingCall } = require('@grpc/grpc-js/build/src/server-interceptors.js') as {
  BaseServerInterceptingCall?: { prototype: { serializeMessage?: (value: unknown) => Buffer } };
};
const clientSend = CompressionFilter?.prototype.sendMessage;
const serverSerialize = BaseServerInterceptingCall?.prototype.serializeMessage;
if (typeof clientSend !== 'function' || typeof serverSerialize !== 'function') {
  throw new Error('@grpc/grpc-js internals changed (CompressionFilter.sendMessage, BaseServerInterceptingCall.serializeMessage): revisit grpc-framing.ts');
}

/** Serialised client messages that are framed already (one buffer may go to several replicas). */
const framedBuffers = new WeakSet<Buffer>();

CompressionFilter!.prototype.sendMessage = async function (this: unknown, message: Promise<SendMessage> | SendMessage): Promise<SendMessage> {
  const resolved = await message;
  return framedBuffers.has(resolved.message) ? resolved : clientSend.call(this, resolved);
};

BaseServerInterceptingCall!.prototype.serializeMessage = function (this: unknown, value: unknown): Buffer {
  return value instanceof EncodedMessage ? value.framed : serverSerialize.call(this, value);
};

/** A request serializer that sends EncodedMessages framed as they are. */
export function passFramed<T>(protobufSerialize: (message: T) => Buffer): (message: T | EncodedMessage) => Buffer {
  return (message) => {
    if (!(message instanceof EncodedMessage)) return protobufSerialize(message);
    framedBuffers.add(message.framed);
    return message.framed;
  };
}
