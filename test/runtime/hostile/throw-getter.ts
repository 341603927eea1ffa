// Throws an object whose every property read throws.
export default async () => {
  throw new Proxy(
    {},
    {
      get() {
        throw new Error('gotcha');
      },
      ownKeys() {
        throw new Error('gotcha');
      },
    },
  );
};
