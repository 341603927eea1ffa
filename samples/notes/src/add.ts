import { defineCapability } from 'os0/sdk';
import { namespaceOf, objectInput } from './input.ts';

interface AddInput {
  namespace?: string;
  name: string;
  text: string;
  author?: string;
}

/** Applies a `note`: creates it, or replaces the text of the one of that name. */
export default defineCapability(async (raw: AddInput, ctx) => {
  const input = objectInput(raw);
  const namespace = namespaceOf(input);
  if (typeof input.name !== 'string' || input.name === '') throw new Error('give the note a "name" (lowercase letters, digits, -, .)');
  if (typeof input.text !== 'string') throw new Error('give the note a "text" string');
  const data: { text: string; author?: string } = { text: input.text };
  if (input.author !== undefined) {
    if (typeof input.author !== 'string') throw new Error('"author" must be a string');
    data.author = input.author;
  }
  const existed = (await ctx.resources.get('note', input.name, namespace)) !== null;
  const note = await ctx.commands.apply({ type: 'note', namespace, name: input.name, data });
  ctx.log(existed ? 'replaced' : 'added', `${namespace}/${input.name}`);
  return { namespace, name: note.name, created: !existed };
});
