/**
 * The web console's server side: mounted on the API's Hono app by the composition root, it serves
 * the static app in ./app at `/` and `/console/*`, the typed HTTP client (core/api/client) to the
 * browser as JavaScript (type annotations stripped by esbuild once, in memory; no bundle, no build
 * step), and one read-only route, GET /v1/console/apps, with the apps loaded in this process.
 *
 * Every answer carries a strict Content-Security-Policy: scripts and styles only from this origin,
 * no inline script, no eval, no frames; the pages are UTF-8. The console signs in with a token it
 * keeps in the page's memory and sends as a bearer header: no cookie (so no CSRF), never in a URL.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { transform } from 'esbuild';
import type { Context } from 'hono';
import type { Api } from '../../core/api/server.ts';
import type { Actor } from '../../core/auth/permission.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const APP_DIR = path.join(HERE, 'app');
const CLIENT_DIR = path.join(HERE, '..', '..', 'core', 'api', 'client');
const CLIENT_FILES = ['index', 'client', 'watch', 'sse'];

export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml; charset=utf-8',
};

export interface ConsoleOptions {
  /** The manifests of the apps loaded in this process (the invoker's). */
  apps?: () => { name: string; version: string; description?: string; capabilities: Record<string, { description?: string }> }[];
  /** Whether an actor may invoke app.capability (hides what it may not). */
  mayInvoke?: (actor: Actor, app: string, capability: string) => boolean;
}

/** Adds the console's routes to the API. */
export function mountConsole(api: Api, opts: ConsoleOptions = {}): void {
  // The app's files, read once: a request can name only one of these.
  const files = new Map<string, { body: string; type: string }>();
  for (const f of fs.readdirSync(APP_DIR)) {
    const type = TYPES[path.extname(f)];
    if (type) files.set(f, { body: fs.readFileSync(path.join(APP_DIR, f), 'utf8'), type });
  }
  const client = new Map<string, Promise<string>>();
  const clientJs = (name: string): Promise<string> => {
    let p = client.get(name);
    if (!p) {
      p = transform(fs.readFileSync(path.join(CLIENT_DIR, `${name}.ts`), 'utf8'), { loader: 'ts', format: 'esm', target: 'es2022' }).then((r) =>
        // Relative imports of the client's own files become their served names.
        r.code.replace(/from "\.\/([a-z]+)\.ts"/g, 'from "./$1.js"'),
      );
      client.set(name, p);
    }
    return p;
  };
  const send = (c: Context, body: string, type: string, status = 200): Response =>
    c.body(body, status as 200, {
      'content-type': type,
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-store',
      'x-frame-options': 'DENY',
    });
  const app = api.app;
  app.get('/', (c) => send(c, files.get('index.html')!.body, TYPES['.html']));
  app.get('/console/client/:file{[a-z]+\\.js}', async (c) => {
    const name = c.req.param('file').replace(/\.js$/, '');
    if (!CLIENT_FILES.includes(name)) return send(c, 'not found\n', 'text/plain; charset=utf-8', 404);
    return send(c, await clientJs(name), TYPES['.js']);
  });
  app.get('/console/:file{[a-z0-9-]+\\.[a-z]+}', (c) => {
    const f = files.get(c.req.param('file'));
    return f ? send(c, f.body, f.type) : send(c, 'not found\n', 'text/plain; charset=utf-8', 404);
  });
  app.get('/v1/console/apps', (c) => {
    const actor = (c as unknown as Context<{ Variables: { actor: Actor } }>).get('actor');
    const out = [];
    for (const m of opts.apps?.() ?? []) {
      const caps = Object.entries(m.capabilities)
        .filter(([name]) => !opts.mayInvoke || opts.mayInvoke(actor, m.name, name))
        .map(([name, spec]) => ({ name, description: spec.description ?? '' }));
      if (caps.length > 0) out.push({ name: m.name, version: m.version, description: m.description ?? '', capabilities: caps });
    }
    return c.json(out);
  });
}
