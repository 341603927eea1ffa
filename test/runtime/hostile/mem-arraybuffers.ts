// Large ArrayBuffers.
export default async () => {
  const keep: ArrayBuffer[] = [];
  for (;;) keep.push(new ArrayBuffer(16 << 20));
};
