import { defineCapability, type Ctx } from '../../../sdk/index.ts';
import { shout } from './lib/shout.ts';
import type { Greeting } from './lib/types.ts';

interface Input {
  name: string;
}

export default defineCapability(async (input: Input, ctx: Ctx): Promise<Greeting> => {
  ctx.log('greeting', input.name, { at: 'start' });
  const record = await ctx.resources.get('dns-record', input.name, 'zone');
  const all = await ctx.resources.query({ type: 'dns-record', namespace: 'zone', tags: { env: 'prod' } });
  const applied = await ctx.commands.apply({ type: 'note', namespace: 'zone', name: input.name, data: { text: shout(input.name) } });
  await ctx.commands.delete('note', 'old', 'zone');
  return { greeting: `hello ${input.name}`, record, count: all.length, applied };
});
