// Awaited host calls in an endless loop: each is cheap, together they break the call limit.
import type { Ctx } from '../../../sdk/index.ts';
export default async (_input: unknown, ctx: Ctx) => {
  for (let i = 0; ; i++) await ctx.resources.query({ type: 'thing' });
};
