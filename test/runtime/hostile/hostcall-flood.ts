// Host calls without awaiting them, far more than the limit.
import type { Ctx } from '../../../sdk/index.ts';
export default async (_input: unknown, ctx: Ctx) => {
  const all: Promise<unknown>[] = [];
  for (let i = 0; i < 1e6; i++) all.push(ctx.resources.get('thing', `n${i}`).catch(() => null));
  await Promise.all(all);
};
