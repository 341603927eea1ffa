// A Map that grows without bound: V8 runs out of heap in a way isolated-vm cannot catch and
// aborts the whole process (this is why isolates run in child processes).
export default async () => {
  const m = new Map<number, number>();
  for (let i = 0; ; i++) m.set(i, i);
};
