// What a fresh context looks like: the hostile suite runs this after every hostile program.
export default async () => {
  const g = globalThis as Record<string, unknown>;
  return {
    polluted: ({} as Record<string, unknown>).polluted ?? null,
    arrayPolluted: ([] as unknown as Record<string, unknown>).polluted ?? null,
    leftOver: g.leftOver ?? null,
    json: JSON.stringify({ a: [1] }),
    parse: JSON.parse('{"b":2}'),
    then: typeof Promise.prototype.then,
    slice: 'abc'.slice(1),
    globals: ['process', 'require', 'module', 'Buffer', 'setTimeout', 'fetch', 'console', 'WebAssembly'].filter((k) => k in g),
  };
};
