/**
 * A reader of server-sent events (the `text/event-stream` of GET /v1/watch): `event:`, `data:`
 * (joined by newlines when repeated) and `id:` lines, one event per blank line; comments and
 * unknown fields are skipped. Bounded: an event over `maxEventBytes` ends the stream with an error.
 */

export interface SseEvent {
  /** `message` when the server named none. */
  event: string;
  data: string;
  id?: string;
}

/** An event larger than any the API sends (a resource is at most ~1 MiB) means a broken stream. */
export const MAX_EVENT_BYTES = 8 * 1024 * 1024;

export async function* readSse(body: ReadableStream<Uint8Array>, opts: { maxEventBytes?: number } = {}): AsyncGenerator<SseEvent> {
  const max = opts.maxEventBytes ?? MAX_EVENT_BYTES;
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let event = 'message';
  let data: string[] = [];
  let size = 0;
  let id: string | undefined;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.charCodeAt(nl - 1) === 13 ? buf.slice(0, nl - 1) : buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === '') {
          if (data.length) yield { event, data: data.join('\n'), id };
          event = 'message';
          data = [];
          size = 0;
          id = undefined;
          continue;
        }
        const colon = line.indexOf(':');
        if (colon === 0) continue; // a comment
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') {
          size += value.length;
          if (size > max) throw new Error(`an event of the stream is over ${max} bytes`);
          data.push(value);
        } else if (field === 'id') id = value;
      }
      if (buf.length > max) throw new Error(`a line of the stream is over ${max} bytes`);
    }
  } finally {
    // Ends the response too when the consumer stops early (a break out of for-await).
    await reader.cancel().catch(() => {});
  }
}
