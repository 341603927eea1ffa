import { defineCapability } from 'os0/sdk';

interface Counter2 {
  value?: unknown;
  bumps?: unknown;
  /** Left by 1.x if the update did not run. */
  count?: unknown;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** 2.x keeps {value: N, bumps: K}: the sum, and how many bumps made it. */
export default defineCapability(async (input: { namespace?: string; by?: number } | null, ctx) => {
  const namespace = input?.namespace ?? 'system';
  const by = input?.by ?? 1;
  if (typeof namespace !== 'string' || namespace === '') throw new Error('namespace must be a non-empty string, e.g. "acme/prod"');
  if (!Number.isSafeInteger(by)) throw new Error(`"by" must be an integer, not ${JSON.stringify(by)}`);
  const current = await ctx.resources.get('configuration', 'counter', namespace);
  const d = (current?.data ?? {}) as Counter2;
  const value = (d.value === undefined ? num(d.count) : num(d.value)) + by;
  const bumps = num(d.bumps) + 1;
  await ctx.commands.apply({ type: 'configuration', namespace, name: 'counter', data: { value, bumps } });
  return { value, bumps };
});
