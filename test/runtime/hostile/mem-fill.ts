// Arrays of doubles from new Array(n).fill(x), in a loop.
export default async () => {
  const keep: number[][] = [];
  for (;;) keep.push(new Array(1024).fill(1.5));
};
