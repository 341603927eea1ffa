// Returns its input: the benchmark's program.
export default async (input: unknown) => input;
