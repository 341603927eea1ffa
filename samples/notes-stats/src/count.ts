import { defineCapability } from 'os0/sdk';

/** Notes of one namespace (not below it); words are runs of non-space characters. */
export default defineCapability(async (input: { namespace?: string } | null, ctx) => {
  const namespace = input?.namespace ?? 'system';
  if (typeof namespace !== 'string' || namespace === '') throw new Error('namespace must be a non-empty string, e.g. "acme/prod"');
  const notes = (await ctx.resources.query({ type: 'note', namespace })).filter((r) => r.namespace === namespace);
  let words = 0;
  for (const n of notes) {
    const text = (n.data as { text?: unknown } | undefined)?.text;
    if (typeof text === 'string') words += text.split(/\s+/).filter((w) => w !== '').length;
  }
  return { namespace, count: notes.length, words };
});
