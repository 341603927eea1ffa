// A result that cannot become JSON (a BigInt).
export default async () => ({ n: 10n });
