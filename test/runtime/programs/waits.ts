// Waits on a host call that the test controls.
import type { Ctx } from '../../../sdk/index.ts';
export default async (_input: unknown, ctx: Ctx) => {
  await ctx.resources.get('gate', 'open');
  return 'opened';
};
