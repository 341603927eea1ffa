// Catastrophic regular-expression backtracking: CPU time inside one built-in call.
export default async () => /^(a+)+$/.test('a'.repeat(40) + 'b');
