// Throws an Error whose message getter never returns: the sandbox reads it under the CPU limit.
export default async () => {
  const e = new Error('x');
  Object.defineProperty(e, 'message', {
    get() {
      for (;;) {
        // spin
      }
    },
  });
  throw e;
};
