// An ever-growing array of heap numbers.
export default async () => {
  const keep: number[] = [];
  for (;;) keep.push(Math.random());
};
