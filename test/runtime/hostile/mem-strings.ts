// Distinct strings, each a few KiB.
export default async () => {
  const keep: string[] = [];
  for (let i = 0; ; i++) keep.push('x'.repeat(4096) + i);
};
