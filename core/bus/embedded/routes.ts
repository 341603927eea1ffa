/**
 * busØ over the core's HTTP port: a Hono sub-app that whoever composes the API mounts, e.g.
 * `api.app.route('/v1/bus', busRoutes(bus, authorize))`. Node agents use it through remote.ts.
 *
 *   GET  /streams/:stream                                   stream info            (read)
 *   POST /streams/:stream/messages         {data, id?}      publish                (publish)
 *   PUT  /streams/:stream/consumers/:durable  {start?, ackWaitMs?, deliveriesMax?, ackPendingMax?}
 *                                                           open a durable consumer (consume)
 *   GET  /streams/:stream/consumers/:durable                consumer info          (consume)
 *   POST /streams/:stream/consumers/:durable/fetch {max?, waitMs?}   long-poll     (consume)
 *   POST /streams/:stream/consumers/:durable/ack   {seq} or {seqs: [...]}          (consume)
 *   POST /streams/:stream/consumers/:durable/nak   {seq, delayMs?}                 (consume)
 *   GET  /streams/:stream/consumers/:durable/parked?max=N                          (consume)
 *
 * Every call carries `Authorization: Bearer TOKEN`; `authorize(token, stream, op)` decides (a
 * node's token may consume its own command stream and publish events, nothing else).
 */
import { Hono, type Context } from 'hono';
import { HTTP_STATUS, OsError, type ErrorCode } from '../../errors.ts';
import { checkDurable, checkStream, type Bus, type Consumer, type ConsumerOptions } from '../bus.ts';

export type BusOp = 'publish' | 'consume' | 'read';

/** True when the token may do `op` on `stream`; may throw an OsError ('unauthorized') itself. */
export type BusAuthorize = (token: string | undefined, stream: string, op: BusOp) => boolean | Promise<boolean>;

const STATUS = HTTP_STATUS;

const CONSUMERS_MAX = 10_000;

export function busRoutes(bus: Bus, authorize: BusAuthorize, opts: { bodyBytesMax?: number } = {}): Hono {
  const app = new Hono();
  const bodyBytesMax = opts.bodyBytesMax ?? 2 * 1024 * 1024;
  // The Bus interface hands out a Consumer per open; the routes keep one per durable so acks
  // reach the consumer that delivered.
  const consumers = new Map<string, Promise<Consumer>>();

  app.onError((e, c) => {
    const err = e instanceof OsError ? e : new OsError('internal', `bus: ${(e as Error)?.message ?? String(e)}`);
    return c.json({ error: err.toJSON() }, STATUS[err.code] as 400);
  });

  const guard = async (c: Context, op: BusOp): Promise<string> => {
    const stream = c.req.param('stream')!;
    checkStream(stream);
    const h = c.req.header('authorization');
    const token = h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
    if (!(await authorize(token, stream, op))) {
      if (!token) throw new OsError('unauthorized', 'the bus needs a token: send Authorization: Bearer TOKEN');
      throw new OsError('forbidden', `this token may not ${op} ${stream}`);
    }
    return stream;
  };

  const body = async (c: Context): Promise<Record<string, unknown>> => {
    const len = Number(c.req.header('content-length') ?? 0);
    if (len > bodyBytesMax) throw new OsError('too_large', `a bus request body is at most ${bodyBytesMax} bytes`);
    const text = await c.req.text();
    if (Buffer.byteLength(text) > bodyBytesMax) throw new OsError('too_large', `a bus request body is at most ${bodyBytesMax} bytes`);
    if (text === '') return {};
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new OsError('invalid', 'a bus request body must be JSON');
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new OsError('invalid', 'a bus request body must be a JSON object');
    return v as Record<string, unknown>;
  };

  const consumer = (stream: string, durable: string, o?: ConsumerOptions): Promise<Consumer> => {
    checkDurable(durable);
    const key = `${stream}/${durable}`;
    let p = consumers.get(key);
    if (!p) {
      if (consumers.size >= CONSUMERS_MAX) throw new OsError('too_large', `the bus serves ${CONSUMERS_MAX} consumers already`);
      p = bus.consumer(stream, durable, o);
      p.catch(() => consumers.delete(key));
      consumers.set(key, p);
    }
    return p;
  };

  const seqOf = (v: unknown): number => {
    if (!Number.isSafeInteger(v) || (v as number) < 1) throw new OsError('invalid', 'seq must be a message sequence (an integer from 1)');
    return v as number;
  };

  app.get('/streams/:stream', async (c) => c.json(await bus.info(await guard(c, 'read'))));

  app.post('/streams/:stream/messages', async (c) => {
    const stream = await guard(c, 'publish');
    const b = await body(c);
    if (b.id !== undefined && typeof b.id !== 'string') throw new OsError('invalid', 'a message id is a string');
    return c.json(await bus.publish(stream, b.data, { id: b.id as string | undefined }));
  });

  app.put('/streams/:stream/consumers/:durable', async (c) => {
    const stream = await guard(c, 'consume');
    const b = await body(c);
    const o: ConsumerOptions = {
      start: b.start as ConsumerOptions['start'],
      ackWaitMs: b.ackWaitMs as number | undefined,
      deliveriesMax: b.deliveriesMax as number | undefined,
      ackPendingMax: b.ackPendingMax as number | undefined,
    };
    return c.json(await (await consumer(stream, c.req.param('durable'), o)).info());
  });

  app.get('/streams/:stream/consumers/:durable', async (c) => {
    const stream = await guard(c, 'consume');
    return c.json(await (await consumer(stream, c.req.param('durable'))).info());
  });

  app.post('/streams/:stream/consumers/:durable/fetch', async (c) => {
    const stream = await guard(c, 'consume');
    const b = await body(c);
    const messages = await (await consumer(stream, c.req.param('durable'))).fetch({ max: b.max as number | undefined, waitMs: b.waitMs as number | undefined, signal: c.req.raw.signal });
    return c.json({ messages });
  });

  app.post('/streams/:stream/consumers/:durable/ack', async (c) => {
    const stream = await guard(c, 'consume');
    const b = await body(c);
    // One seq, or many at once (a remote client sends the acks of one turn together).
    const seqs = Array.isArray(b.seqs) ? b.seqs : [b.seq];
    if (seqs.length === 0 || seqs.length > 1000) throw new OsError('invalid', 'ack 1 to 1,000 sequences at once: {"seq": N} or {"seqs": [N, ...]}');
    const cons = await consumer(stream, c.req.param('durable'));
    await Promise.all(seqs.map((v) => cons.ack(seqOf(v))));
    return c.json({ ok: true });
  });

  app.post('/streams/:stream/consumers/:durable/nak', async (c) => {
    const stream = await guard(c, 'consume');
    const b = await body(c);
    const delay = b.delayMs === undefined ? 0 : Number(b.delayMs);
    if (!Number.isFinite(delay) || delay < 0 || delay > 3600_000) throw new OsError('invalid', 'delayMs is 0 to 3,600,000');
    await (await consumer(stream, c.req.param('durable'))).nak(seqOf(b.seq), delay);
    return c.json({ ok: true });
  });

  app.get('/streams/:stream/consumers/:durable/parked', async (c) => {
    const stream = await guard(c, 'consume');
    const max = Number(c.req.query('max') ?? 100);
    return c.json({ messages: await (await consumer(stream, c.req.param('durable'))).parked(Number.isFinite(max) ? max : 100) });
  });

  return app;
}
