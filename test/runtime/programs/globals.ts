// Sets a global and reports what the previous invocation left behind.
export default async (input: { mark: string }) => {
  const g = globalThis as Record<string, unknown>;
  const before = g.mark ?? null;
  g.mark = input.mark;
  let counter = 0;
  counter++;
  return { before, counter };
};
