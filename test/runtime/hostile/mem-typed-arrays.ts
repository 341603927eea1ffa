// Typed arrays: their memory lives outside the V8 heap but counts against the isolate.
export default async () => {
  const keep: Float64Array[] = [];
  for (;;) {
    const a = new Float64Array(1 << 20);
    a[0] = 1;
    keep.push(a);
  }
};
