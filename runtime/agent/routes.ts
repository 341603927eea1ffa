/**
 * What a core serves for node agents, on the API's port: the embedded bus at `/v1/bus` (a node
 * token may consume only its own `cmd.NAME` and publish only to `events`; admins may do
 * anything), `GET /v1/whoami` (the token's actor) and `POST /v1/nodes/:name/token`, where an admin mints a `node:NAME` token (the
 * actor no user token may name; the token resource is written by `system`).
 */
import { ADMIN_GROUP, mintToken, SYSTEM_ACTOR } from '../../core/auth/permission.ts';
import { nodeOf } from '../../core/auth/node.ts';
import { busRoutes, EVENTS, type Bus, type BusOp } from '../../core/bus/index.ts';
import { OsError } from '../../core/errors.ts';
import type { Api } from '../../core/api/server.ts';
import type { System } from '../../core/system.ts';

const NAME_RE = /^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$/;

/** Whether the holder of `token` may do `op` on `stream` of the embedded bus. */
export function busAuthorizer(sys: System): (token: string | undefined, stream: string, op: BusOp) => boolean {
  return (token, stream, op) => {
    const actor = token ? sys.permissions.authenticate(token) : null;
    if (!actor) throw new OsError('unauthorized', 'the bus needs a valid token: a node token (os0 node token NAME) or an admin token');
    if (actor.groups.includes(ADMIN_GROUP)) return true;
    const node = nodeOf(actor.name);
    if (node === null) return false;
    if (stream === EVENTS) return op === 'publish';
    return stream === `cmd.${node}` && (op === 'consume' || op === 'read');
  };
}

export function mountNodeRoutes(api: Api, sys: System, bus: Bus | null): void {
  if (bus) api.app.route('/v1/bus', busRoutes(bus, busAuthorizer(sys)));
  // Who a token stands for: `os0 node join` checks its token is the node's before it starts.
  api.app.get('/v1/whoami', (c) => {
    const a = c.get('actor');
    return c.json({ actor: a.name, groups: a.groups });
  });
  api.app.post('/v1/nodes/:name/token', async (c) => {
    const actor = c.get('actor');
    const name = c.req.param('name');
    if (!actor.groups.includes(ADMIN_GROUP)) throw new OsError('forbidden', `${actor.name} may not make node tokens; an admin may (os0 node token NAME with the admin token)`);
    if (!NAME_RE.test(name)) throw new OsError('invalid', `node name "${name}" must be 1-64 lowercase letters, digits, "-" or "_", starting and ending with a letter or digit`);
    const t = mintToken(`node:${name}`, [], `node agent ${name}`);
    await sys.core.submit({ op: 'create', resource: { type: 'token', name: t.id, data: t.data } }, { actor: SYSTEM_ACTOR });
    return c.json({ id: t.id, actor: `node:${name}`, token: t.token }, 201);
  });
}
