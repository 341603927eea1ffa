/**
 * The HTTP API (docs/api.md): Hono over node's HTTP server. The routes live in routes/, one
 * sub-app per concern, mounted at /v1 behind the auth middleware. Other layers add their routes
 * with `api.app.route(...)`; nothing here knows about them.
 */
import { Hono, type Context } from 'hono';
import { serve, type ServerType } from '@hono/node-server';
import { Permissions } from '../auth/permission.ts';
import { OsError } from '../errors.ts';
import type { Resource } from '../resource.ts';
import type { System } from '../system.ts';
import { redact } from '../secrets/secrets.ts';
import { errorBody, type Env } from './http.ts';
import { handlerRoutes } from './routes/handlers.ts';
import { resourceRoutes } from './routes/resources.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { Watches } from './routes/watch.ts';

// Other layers import these from here.
export { errorBody, readJson, type Env } from './http.ts';

export interface ApiOptions {
  /** Seconds between bookmarks on an idle watch (15). */
  bookmarkSeconds?: number;
}

export class Api {
  readonly app = new Hono<Env>();
  readonly sys: System;
  private server: ServerType | null = null;
  private readonly watches: Watches;

  constructor(sys: System, opts: ApiOptions = {}) {
    this.sys = sys;
    const app = this.app;
    app.onError((e, c) => {
      const { status, body } = errorBody(e);
      return c.json(body, status as 400);
    });
    app.notFound((c) => c.json({ error: { code: 'not_found', message: `no route ${c.req.method} ${c.req.path}; the routes are listed in docs/api.md` } }, 404));
    app.get('/healthz', (c) => c.json({ ok: true, index: sys.core.index }));
    const auth = async (c: Context<Env>, next: () => Promise<void>): Promise<void> => {
      const h = c.req.header('authorization');
      const token = h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
      const a = token ? sys.permissions.authenticate(token) : null;
      if (!a) throw Permissions.unauthorized();
      c.set('actor', { name: a.name, groups: a.groups });
      c.set('tokenId', a.tokenId);
      await next();
    };
    // Prometheus scrapes with a bearer token, like any client.
    app.use('/metrics', auth);
    app.get('/metrics', (c) => c.text(sys.metrics(), 200, { 'content-type': 'text/plain; version=0.0.4' }));
    // Registered before any /v1 route, so it runs first for every one, the sub-apps' below and
    // those other layers mount later. (Hono runs matching handlers in the order they were added;
    // app.route copies a sub-app's routes in at the time it is called.)
    app.use('/v1/*', auth);

    const present = (r: Resource) => this.present(r);
    this.watches = new Watches(sys, { bookmarkMs: (opts.bookmarkSeconds ?? 15) * 1000 });
    // Sub-apps set no onError of their own: their errors reach the one above.
    app.route('/v1', resourceRoutes(sys, present));
    app.route('/v1', this.watches.routes());
    app.route('/v1', tokenRoutes(sys));
    app.route('/v1', handlerRoutes(sys, present));
  }

  /** Namespaces are shown with their rolled-up cost and usage; secrets with their values redacted. */
  present(r: Resource): Resource | (Resource & { status: unknown }) {
    if (r.type === 'secret') return redact(r);
    if (r.type !== 'namespace') return r;
    return { ...r, status: this.sys.namespaceStatus(r.name) };
  }

  /** Starts listening; resolves with the port. */
  listen(port: number, hostname = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      const server = serve({ fetch: this.app.fetch, port, hostname }, (info) => resolve(info.port));
      server.once('error', (e: NodeJS.ErrnoException) => {
        reject(new OsError('unavailable', e.code === 'EADDRINUSE' ? `port ${port} is in use; pass --port with a free one` : `cannot listen on ${hostname}:${port}: ${e.message}`));
      });
      this.server = server;
    });
  }

  async close(): Promise<void> {
    this.watches.stopAll();
    const s = this.server as (ServerType & { closeAllConnections?: () => void }) | null;
    if (!s) return;
    await new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections?.();
    });
    this.server = null;
  }
}
