// Allocates `mb` MiB of touched ArrayBuffers, slowly enough for the parent's RSS check to see it.
export default async (input: { mb: number }) => {
  const keep: Uint8Array[] = [];
  for (let i = 0; i < input.mb; i++) {
    const a = new Uint8Array(1 << 20);
    for (let j = 0; j < a.length; j += 4096) a[j] = 1;
    keep.push(a);
  }
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    // hold it
  }
  return keep.length;
};
