// Exports no function.
export const notAFunction = 42;
