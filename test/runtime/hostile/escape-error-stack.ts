// Error.prepareStackTrace hands out CallSites; their getThis/getFunction must not reach the host.
export default async () => {
  const E = Error as unknown as { prepareStackTrace?: (e: Error, frames: any[]) => unknown };
  E.prepareStackTrace = (_e, frames) => frames.map((f) => [String(f.getThis?.()), typeof f.getFunction?.()]);
  const stack = new Error('probe').stack as unknown as [string, string][];
  for (const [self] of stack) if (/process|global/i.test(self)) return { escaped: self };
  throw new Error(`no host frames: ${JSON.stringify(stack)}`);
};
