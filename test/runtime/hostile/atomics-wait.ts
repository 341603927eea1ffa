// Blocks the isolate's thread in Atomics.wait on a SharedArrayBuffer nobody will notify.
export default async () => {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(cell, 0, 0);
  return 'woke up';
};
