// One log line over the log limit; then it keeps trying, catching the error.
import type { Ctx } from '../../../sdk/index.ts';
export default async (_input: unknown, ctx: Ctx) => {
  for (;;) {
    try {
      ctx.log('y'.repeat(3 * 2 ** 20));
    } catch {
      // ignore and try again
    }
  }
};
