import type { Ctx } from 'os0/sdk';
import { namespaceOf, objectInput } from './input.ts';

/** The notes of one namespace (not those below it), by name. */
export default async (raw: { namespace?: string } | null, ctx: Ctx) => {
  const namespace = namespaceOf(objectInput(raw));
  const found = await ctx.resources.query({ type: 'note', namespace });
  const notes = found
    .filter((r) => r.namespace === namespace)
    .map((r) => ({ name: r.name, text: (r.data as { text: string }).text }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { namespace, notes };
};
