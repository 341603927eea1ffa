/**
 * Parked events where a person sees them: GET /v1/handlers, /metrics, and the admin-only routes
 * that retry or drop them. A real System and Api on 127.0.0.1.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Api } from '../../../core/api/server.ts';
import { System } from '../../../core/system.ts';
import { tempDir } from '../../helpers/tmp.ts';

describe('parked handler events over HTTP', () => {
  it('show in the handler status and /metrics; only an admin retries or drops them', async () => {
    const sys = await System.open({ dir: path.join(tempDir(), 'data') });
    const api = new Api(sys);
    const url = `http://127.0.0.1:${await api.listen(0)}`;
    const call = async (token: string, method: string, p: string, body?: unknown) => {
      const res = await fetch(url + p, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
    };
    const admin = sys.adminToken!;
    try {
      let healthy = false;
      const handled: string[] = [];
      sys.handlers.register({
        name: 'kernel.picky',
        query: { type: 'configuration' },
        attempts: 1,
        handle: (e) => {
          if (!healthy) throw new Error('backend down');
          handled.push(e.new!.name);
        },
      });
      await call(admin, 'POST', '/v1/commands', { op: 'create', resource: { type: 'namespace', name: 'p' } });
      const made = await call(admin, 'POST', '/v1/commands', { op: 'create', resource: { type: 'configuration', namespace: 'p', name: 'c1', data: {} } });
      const status = async () => ((await call(admin, 'GET', '/v1/handlers')).body as { name: string; parked: { index: number; error: string }[] }[]).find((h) => h.name === 'kernel.picky')!;
      for (let i = 0; i < 200 && (await status()).parked.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect((await status()).parked).toMatchObject([{ index: made.body.index, name: 'c1', error: 'backend down' }]);
      expect((await call(admin, 'GET', '/metrics')).body).toContain('os0_handler_parked_events{handler="kernel.picky"} 1');

      const user = (await call(admin, 'POST', '/v1/tokens', { actor: 'dora' })).body.token as string;
      const refused = await call(user, 'DELETE', '/v1/handlers/kernel.picky/parked');
      expect(refused.status).toBe(403);
      expect(refused.body.error.message).toMatch(/only an admin may retry or drop/);

      healthy = true;
      expect((await call(admin, 'POST', '/v1/handlers/kernel.picky/parked/retry')).status).toBe(200);
      for (let i = 0; i < 200 && (await status()).parked.length > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(handled).toEqual(['c1']);
      expect((await call(admin, 'GET', '/metrics')).body).toContain('os0_handler_parked_events{handler="kernel.picky"} 0');
      expect((await call(admin, 'DELETE', '/v1/handlers/kernel.picky/parked')).body).toEqual({ dropped: 0 });
    } finally {
      await api.close();
      await sys.close();
    }
  });
});
