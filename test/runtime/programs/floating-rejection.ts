// Leaves a rejected promise with no handler. With { wait: true } it then waits on the host
// (the rejection ends it); otherwise it returns at once (its result stands).
import type { Ctx } from '../../../sdk/index.ts';
export default async (input: { wait: boolean }, ctx: Ctx) => {
  void Promise.reject(new TypeError('nobody handles this'));
  if (input.wait) await ctx.resources.get('gate', 'never');
  return 'returned';
};
