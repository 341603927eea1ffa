// Throws from a helper two calls deep, on a known line.
function check(n: number): number {
  if (n > 2) {
    throw new RangeError(`n is ${n}; at most 2`);
  }
  return n;
}

export default async (input: { n: number }) => ({ n: check(input.n) });
