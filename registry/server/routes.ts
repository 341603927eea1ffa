/** The HTTP routes of PROTOCOL.md on a Hono app (mountable: it knows nothing of the server under it). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { Hono, type Context } from 'hono';
import { readBody, readJson } from './body.ts';
import { asRegistryError, RegistryError } from './errors.ts';
import type { Registry } from './registry.ts';

const JSON_BODY_BYTES = 64 * 1024;
const JSON_TYPE = { 'content-type': 'application/json; charset=UTF-8' };

function bearer(c: Context): string | null {
  const h = c.req.header('authorization');
  if (!h) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1] : '';
}

function clientAddress(c: Context): string {
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket?.remoteAddress ?? 'unknown';
}

export function routes(r: Registry): Hono {
  const app = new Hono();

  app.onError((e, c) => {
    const err = asRegistryError(e);
    const headers: Record<string, string> = { ...JSON_TYPE };
    if (err.retryAfterS !== undefined) headers['retry-after'] = String(err.retryAfterS);
    // A body refused part way is never read to its end: close rather than drain it.
    if (err.code === 'too_large') headers.connection = 'close';
    return c.body(JSON.stringify({ error: err.toJSON() }), err.status as 413, headers);
  });
  app.notFound((c) => c.json({ error: { code: 'not_found', message: `no route ${c.req.method} ${c.req.path}; see registry/PROTOCOL.md for the routes` } }, 404));

  if (r.limits.requestsPerSecond > 0) {
    app.use('*', async (_c, next) => {
      const c = _c;
      const wait = r.requestLimiter.take(clientAddress(c));
      if (wait > 0) throw new RegistryError('rate_limited', `more than ${r.limits.requestsPerSecond} requests a second from ${clientAddress(c)}; retry in ${wait} s`, wait);
      await next();
    });
  }

  /** The caller, with one of its writes taken from the rate limit. */
  const writer = (c: Context) => {
    const caller = r.authenticate(bearer(c));
    r.limitWrite(caller);
    return caller;
  };

  app.get('/healthz', (c) => c.json({ ok: true }));
  app.get('/v1/registry', (c) => c.json(r.info()));

  app.post('/v1/apps', async (c) => {
    const caller = writer(c);
    const tgz = await readBody(c, r.limits.maxPackageBytes, 'the package');
    return c.json(await r.publish(tgz, caller, c.req.header('x-os0-public-key') ?? undefined), 201);
  });

  // The hot read: served from the cache; under node, written straight to the response (no
  // Response object, no header copies), which roughly doubles the GETs a core answers.
  app.get('/v1/apps/:name', (c) => {
    const m = r.metadataOf(c.req.param('name'));
    const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    const fresh = c.req.header('if-none-match') === m.etag;
    if (outgoing && !outgoing.headersSent) {
      if (fresh) outgoing.writeHead(304, { etag: m.etag }).end();
      else outgoing.writeHead(200, { 'content-type': JSON_TYPE['content-type'], 'content-length': m.bytes.length, etag: m.etag, 'cache-control': 'no-cache' }).end(m.bytes);
      return RESPONSE_ALREADY_SENT;
    }
    if (fresh) return c.body(null, 304, { etag: m.etag });
    return c.body(m.body, 200, { ...JSON_TYPE, etag: m.etag, 'cache-control': 'no-cache' });
  });

  app.get('/v1/apps/:name/versions/:version/package', async (c) => {
    const { entry, bytes } = await r.download(c.req.param('name'), c.req.param('version'));
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      'content-type': 'application/gzip',
      'x-os0-digest': entry.digest,
      'x-os0-integrity': entry.integrity,
      etag: `"${entry.digest}"`,
      'cache-control': 'public, max-age=31536000, immutable',
    });
  });

  app.post('/v1/apps/:name/versions/:version/yank', async (c) => {
    const caller = writer(c);
    return c.json(await r.yank(c.req.param('name'), c.req.param('version'), await readJson(c, JSON_BODY_BYTES), caller));
  });

  app.post('/v1/apps/:name/keys', async (c) => {
    const caller = writer(c);
    return c.json(await r.changeKey(c.req.param('name'), await readJson(c, JSON_BODY_BYTES), caller, false));
  });

  app.post('/v1/apps/:name/recover', async (c) => {
    const caller = writer(c);
    return c.json(await r.changeKey(c.req.param('name'), await readJson(c, JSON_BODY_BYTES), caller, true));
  });

  app.get('/v1/search', (c) => {
    const q = c.req.query('q') ?? '';
    if (q.trim() === '') throw new RegistryError('invalid', 'search needs a term: GET /v1/search?q=TERM');
    if (q.length > 200) throw new RegistryError('invalid', 'the search term is over 200 characters; shorten it');
    const raw = c.req.query('limit');
    const limit = raw === undefined ? 20 : Number(raw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new RegistryError('invalid', `limit must be an integer from 1 to 100, not ${raw}`);
    return c.json({ results: r.search(q, limit) });
  });

  app.post('/v1/tokens', async (c) => {
    const caller = writer(c);
    return c.json(await r.createToken(await readJson(c, JSON_BODY_BYTES), caller), 201);
  });
  app.get('/v1/tokens', (c) => c.json(r.listTokens(r.authenticate(bearer(c)))));
  app.delete('/v1/tokens/:id', async (c) => {
    const caller = writer(c);
    return c.json(await r.revokeToken(c.req.param('id'), caller));
  });

  return app;
}
