// WebAssembly is not there to compile or to allocate shared memory with.
export default async () => {
  const W = (globalThis as Record<string, any>).WebAssembly;
  return new W.Memory({ initial: 1, maximum: 65536, shared: true }).buffer.byteLength;
};
