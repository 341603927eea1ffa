// An Error with a 10 MB multi-line message: the caller still gets one short line.
export default async () => {
  throw new Error('line\n'.repeat(2 * 2 ** 20));
};
