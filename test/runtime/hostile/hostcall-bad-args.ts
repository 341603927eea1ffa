// Host calls with wrong arguments: each is refused inside, before it crosses; then it throws.
import type { Ctx } from '../../../sdk/index.ts';
export default async (_input: unknown, ctx: Ctx) => {
  const errors: string[] = [];
  const attempts: (() => Promise<unknown>)[] = [
    () => ctx.resources.get(42 as never, 'x'),
    () => ctx.resources.get('', 'x'),
    () => ctx.resources.query({ type: 'x', evil: 1 } as never),
    () => ctx.resources.query({ tags: { a: 1 } } as never),
    () => ctx.commands.apply(null as never),
    () => ctx.commands.apply([] as never),
    () => ctx.commands.delete('x', { toString: () => 'y' } as never),
    () => ctx.commands.apply({ type: 'x', name: 'y', data: { f: () => 1, n: 1n } } as never),
  ];
  for (const a of attempts) await a().then(() => errors.push('accepted'), (e: Error) => errors.push(e.name));
  throw new Error(`refused: ${errors.join(',')}`);
};
