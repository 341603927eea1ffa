// Unbounded recursion: V8's stack limit, a RangeError.
const down = (n: number): number => down(n + 1) + 1;
export default async () => down(0);
