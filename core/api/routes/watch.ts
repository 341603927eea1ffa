/**
 * GET /v1/watch (docs/api.md): a server-sent event stream of changes. Watches owns what watches
 * share: the open watches (capped per actor and in all, ended when their token is revoked or the
 * server closes) and the cache of event texts.
 */
import { Hono, type Context } from 'hono';
import type { ServerResponse } from 'node:http';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Actor } from '../../auth/permission.ts';
import type { Committed } from '../../core.ts';
import { OsError } from '../../errors.ts';
import { matchesChange, type HandlerQuery } from '../../handlers.ts';
import { LIMITS } from '../../resource.ts';
import { redact } from '../../secrets/secrets.ts';
import type { System } from '../../system.ts';
import { selects } from '../../tree/selector.ts';
import type { Query } from '../../tree/tree.ts';
import { intParam, queryOf, type Env } from '../http.ts';

type WatchQuery = HandlerQuery & { select?: Query['select'] };

export class Watches {
  private readonly sys: System;
  private readonly bookmarkMs: number;
  private readonly open = new Set<{ actor: string; tokenId: string; stop: () => void }>();
  private readonly eventCache = new Map<number, string[]>();

  constructor(sys: System, opts: { bookmarkMs: number }) {
    this.sys = sys;
    this.bookmarkMs = opts.bookmarkMs;
    // A revoked token's watches end at once.
    sys.permissions.revoked.add((id) => {
      for (const w of this.open) if (w.tokenId === id) w.stop();
    });
  }

  /** The sub-app serving GET /watch, to mount at /v1. */
  routes(): Hono<Env> {
    const app = new Hono<Env>();
    app.get('/watch', (c) => this.watch(c));
    return app;
  }

  /** Ends every open watch (the server is closing). */
  stopAll(): void {
    for (const w of this.open) w.stop();
  }

  private watch(c: Context<Env>): Response {
    const sys = this.sys;
    const actor = c.get('actor');
    const q = queryOf(c);
    sys.authorize(actor, 'watch', q.type ?? '*', q.namespace ?? '');
    if (this.count(actor.name) >= LIMITS.watchesPerActor) throw new OsError('too_many', `${actor.name} has ${LIMITS.watchesPerActor} open watches, the most one actor may have; close one first`);
    if (this.open.size >= LIMITS.watchesTotal) throw new OsError('too_many', `this server has ${LIMITS.watchesTotal} open watches, the most it serves; retry later`);
    if (q.type !== undefined && !sys.core.get('type', q.type.replace(/\/observed$/, ''))) {
      throw new OsError('not_found', `unknown type "${q.type}"; 'os0 get type' lists the types there are`);
    }
    const since = intParam(c.req.query('since'), 'since');
    if (since !== undefined && since > sys.core.index) {
      throw new OsError('invalid', `since ${since} is beyond the end of the log (${sys.core.index}): this server does not have that history; re-list`);
    }
    const start = since ?? sys.core.index;
    if (start < sys.core.history.firstIndex - 1) {
      throw new OsError('conflict', `index ${start} is older than the retained log (from ${sys.core.history.firstIndex}): re-list, then watch from the list's index`);
    }
    const hq: WatchQuery = { type: q.type, namespace: q.namespace, tags: q.tags, select: q.select };
    const res = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    if (!res) throw new OsError('internal', 'watches need the node HTTP server');
    // Written straight to node's response: one event text per change is shared by every
    // watcher (fan-out to a thousand costs one JSON.stringify), and a slow client is waited for
    // ('drain'), never buffered without bound.
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-os0-index': String(sys.core.index) });
    void this.pump(res, actor, c.get('tokenId'), hq, start);
    return RESPONSE_ALREADY_SENT;
  }

  private eventText(rec: Committed, i: number): string {
    let texts = this.eventCache.get(rec.index);
    if (!texts) {
      texts = new Array(rec.changes.length);
      this.eventCache.set(rec.index, texts);
      if (this.eventCache.size > 256) this.eventCache.delete(this.eventCache.keys().next().value!);
    }
    const ch = rec.changes[i];
    return (texts[i] ??= `event: change\nid: ${rec.index}\ndata: ${JSON.stringify({ action: ch.action, index: rec.index, resource: redact((ch.new ?? ch.old)!) })}\n\n`);
  }

  private count(actor: string): number {
    let n = 0;
    for (const w of this.open) if (w.actor === actor) n++;
    return n;
  }

  private async pump(res: ServerResponse, actor: Actor, tokenId: string, hq: WatchQuery, start: number): Promise<void> {
    const sys = this.sys;
    sys.watchers++;
    let open = true;
    let wake!: () => void;
    const closed = new Promise<void>((r) => (wake = r));
    const stop = () => {
      open = false;
      wake();
    };
    const entry = { actor: actor.name, tokenId, stop };
    this.open.add(entry);
    res.on('close', stop);
    const send = async (text: string): Promise<void> => {
      if (!res.write(text)) await Promise.race([new Promise((r) => res.once('drain', r)), closed]);
    };
    try {
      let cursor = start;
      let lastSent = Date.now();
      await send(`event: bookmark\ndata: {"index":${cursor}}\n\n`);
      while (open) {
        const recs = await sys.core.history.read(cursor + 1, 512);
        if (recs === 'gone') {
          const error = { code: 'conflict', message: `fell behind the retained log at ${cursor}: re-list, then watch again from the list's index` };
          await send(`event: gone\ndata: ${JSON.stringify({ error, relist: true, firstIndex: sys.core.history.firstIndex })}\n\n`);
          break;
        }
        if (!sys.permissions.tokenAlive(tokenId)) break;
        let chunk = '';
        const ok = sys.permissions.filterFor(actor, 'watch');
        for (const rec of recs) {
          for (let i = 0; i < rec.changes.length; i++) {
            const ch = rec.changes[i];
            const r = (ch.new ?? ch.old)!;
            if (!matchesChange(hq, ch) || (hq.select && !selects(hq.select, r.tags)) || !ok(r)) continue;
            chunk += this.eventText(rec, i);
          }
          cursor = rec.index;
        }
        if (chunk) {
          await send(chunk);
          lastSent = Date.now();
        }
        if (recs.length > 0) continue;
        const idle = this.bookmarkMs - (Date.now() - lastSent);
        if (idle <= 0) {
          await send(`event: bookmark\ndata: {"index":${cursor}}\n\n`);
          lastSent = Date.now();
          continue;
        }
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([sys.core.history.waitAfter(cursor), closed, new Promise<void>((r) => (timer = setTimeout(r, idle)))]);
        clearTimeout(timer);
      }
    } catch {
      // The client went away mid-write.
    } finally {
      sys.watchers--;
      this.open.delete(entry);
      res.end();
    }
  }
}
