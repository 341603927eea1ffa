/**
 * The embedded registry takes osØ tokens (os0 up wires it so): a registry token made with an
 * osØ token dies when that osØ token is revoked (issue 10), and so does one made with it.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_GROUP, type Actor } from '../../core/auth/permission.ts';
import { System } from '../../core/system.ts';
import { startRegistry, type Running } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';

const root = tempDir('embedded-tokens-');
const admin: Actor = { name: 'admin', groups: [ADMIN_GROUP] };
let sys: System;
let reg: Running;

const call = async (token: string, method: string, p: string, body?: unknown) => {
  const res = await fetch(reg.url + p, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
};

beforeAll(async () => {
  sys = await System.open({ dir: path.join(root, 'os0') });
  reg = await startRegistry(path.join(root, 'registry'), {
    authenticate: (token) => {
      const a = sys.permissions.authenticate(token);
      return a ? { actor: a.name, admin: a.groups.includes(ADMIN_GROUP), parent: a.tokenId } : null;
    },
    parentAlive: (id) => sys.permissions.tokenAlive(id),
  });
});
afterAll(async () => {
  await sys.close();
});

describe('registry tokens made with an osØ token', () => {
  it('stop working once that osØ token is revoked', async () => {
    const os0 = await sys.createToken(admin, 'pub', []);
    const made = await call(os0.token, 'POST', '/v1/tokens', { actor: 'pub' });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const child = await call(made.body.token, 'POST', '/v1/tokens', { actor: 'pub' });
    expect(child.status).toBe(201);
    expect((await call(made.body.token, 'GET', '/v1/tokens')).status).toBe(200);
    await sys.submit({ op: 'delete', resource: { type: 'token', name: os0.id } }, admin);
    for (const t of [os0.token, made.body.token, child.body.token]) {
      const r = await call(t, 'GET', '/v1/tokens');
      expect(r.status).toBe(401);
    }
    // A registry token made with the registry's own admin token is not tied to any osØ token.
    const own = await call(reg.admin, 'POST', '/v1/tokens', { actor: 'other' });
    expect((await call(own.body.token, 'GET', '/v1/tokens')).status).toBe(200);
  });
});
