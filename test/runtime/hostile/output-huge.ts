// A result whose JSON is over the output limit.
export default async () => ({ blob: 'x'.repeat(2.1 * 2 ** 20) });
