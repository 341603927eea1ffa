import { defineCapability } from 'os0/sdk';

/** 1.x keeps the count as the configuration's data {count: N}. */
export default defineCapability(async (input: { namespace?: string; by?: number } | null, ctx) => {
  const namespace = input?.namespace ?? 'system';
  const by = input?.by ?? 1;
  if (typeof namespace !== 'string' || namespace === '') throw new Error('namespace must be a non-empty string, e.g. "acme/prod"');
  if (!Number.isSafeInteger(by)) throw new Error(`"by" must be an integer, not ${JSON.stringify(by)}`);
  const current = await ctx.resources.get('configuration', 'counter', namespace);
  const before = (current?.data as { count?: unknown } | undefined)?.count;
  const count = (typeof before === 'number' ? before : 0) + by;
  await ctx.commands.apply({ type: 'configuration', namespace, name: 'counter', data: { count } });
  return { count };
});
