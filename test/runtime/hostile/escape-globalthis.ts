// Look through the global object for anything of the host.
export default async () => {
  const g = globalThis as Record<string, any>;
  const host = ['process', 'require', 'module', 'exports', 'Buffer', 'global', 'setTimeout', 'setImmediate', 'fetch', 'console', 'WebAssembly', 'ivm', '_ivm'];
  const found = Object.getOwnPropertyNames(g).filter((k) => host.includes(k) || /^_*(isolated|ivm|os0|host)/i.test(k));
  if (found.length > 0) return { escaped: found };
  return g.process.binding('fs');
};
