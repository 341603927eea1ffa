/**
 * Request bodies read with a hard cap while they stream in: a body over the cap is refused as
 * soon as it passes it (or at once, by its content-length), never buffered whole.
 */
import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { RegistryError } from './errors.ts';

const tooLarge = (maxBytes: number, what: string): RegistryError =>
  new RegistryError('too_large', `${what} is over ${maxBytes} bytes, this registry's limit; make it smaller`);

function fromNode(incoming: IncomingMessage, maxBytes: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const done = (): void => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer): void => {
      bytes += chunk.length;
      if (bytes > maxBytes) {
        done();
        incoming.pause(); // the rest is never read: the response closes the connection
        reject(tooLarge(maxBytes, what));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      done();
      resolve(Buffer.concat(chunks, bytes));
    };
    const onError = (e: Error): void => {
      done();
      reject(new RegistryError('invalid', `the request body could not be read (${e.message}); send it again`));
    };
    const onAborted = (): void => onError(new Error('the client went away'));
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
    incoming.on('aborted', onAborted);
  });
}

async function fromWeb(body: ReadableStream<Uint8Array> | null, maxBytes: number, what: string): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.length;
    if (bytes > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(maxBytes, what);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, bytes);
}

/** The body, at most `maxBytes`; `what` names it in the error ("the package"). */
export function readBody(c: Context, maxBytes: number, what: string): Promise<Buffer> {
  const declared = Number(c.req.header('content-length') ?? NaN);
  if (declared > maxBytes) return Promise.reject(tooLarge(maxBytes, what));
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming && !incoming.readableEnded && !incoming.readableDidRead) return fromNode(incoming, maxBytes, what);
  return fromWeb(c.req.raw.body, maxBytes, what);
}

/** A small JSON body (≤ maxBytes) as a value; a one-line `invalid` error otherwise. */
export async function readJson(c: Context, maxBytes: number): Promise<unknown> {
  const b = await readBody(c, maxBytes, 'the request body');
  if (b.length === 0) throw new RegistryError('invalid', 'the request body is empty; send a JSON object');
  try {
    return JSON.parse(b.toString('utf8'));
  } catch (e) {
    throw new RegistryError('invalid', `the request body is not JSON (${(e as Error).message.split('\n')[0]}); send a JSON object`);
  }
}
