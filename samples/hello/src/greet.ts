export default async (input: { name: string }, ctx: { log: (...args: unknown[]) => void }) => {
  ctx.log('greeting', input.name);
  return { greeting: `hello, ${input.name}` };
};
