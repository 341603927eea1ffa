// Pollutes every prototype it can reach (its own context's, and what ctx hands in), makes a host
// call with a __proto__ key, then throws: neither the host nor the next invocation may notice.
import type { Ctx } from '../../../sdk/index.ts';
export default async (_input: unknown, ctx: Ctx) => {
  const protoDoc = JSON.parse('{"type":"x","name":"y","__proto__":{"isAdmin":true}}');
  const P = Object.prototype as Record<string, unknown>;
  P.polluted = 'yes';
  P.toJSON = function () {
    return 'hijacked';
  };
  (Array.prototype as unknown as Record<string, unknown>).polluted = 'yes';
  (globalThis as Record<string, unknown>).leftOver = 'from the last invocation';
  try {
    (Object.getPrototypeOf(ctx.resources) as Record<string, unknown>).get = () => 'hijacked';
  } catch {
    // ctx's parts are frozen, their prototype is this context's Object.prototype
  }
  try {
    (ctx.resources as unknown as Record<string, unknown>).get = () => 'hijacked';
  } catch {
    // frozen
  }
  JSON.parse = () => ({ hijacked: true });
  delete P.toJSON;
  await ctx.commands.apply(protoDoc as never);
  await ctx.commands.apply({ type: 'x', name: 'y', data: Object.assign(Object.create(null), { ['__proto__']: { isAdmin: true } }) } as never);
  throw new Error('polluted everything it could reach');
};
