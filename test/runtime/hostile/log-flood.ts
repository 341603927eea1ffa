// Many log lines: over the log limit.
import type { Ctx } from '../../../sdk/index.ts';
export default async (_input: unknown, ctx: Ctx) => {
  for (let i = 0; ; i++) ctx.log('line', i, 'x'.repeat(100));
};
