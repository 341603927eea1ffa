/** Shared by the capabilities (esbuild bundles it into each): reading the input safely. */

export const DEFAULT_NAMESPACE = 'system';

export function objectInput(input: unknown): Record<string, unknown> {
  if (input === null || input === undefined) return {};
  if (typeof input !== 'object' || Array.isArray(input)) throw new Error('the input must be a JSON object');
  return input as Record<string, unknown>;
}

export function namespaceOf(input: Record<string, unknown>): string {
  const ns = input.namespace ?? DEFAULT_NAMESPACE;
  if (typeof ns !== 'string' || ns === '') throw new Error('namespace must be a non-empty string, e.g. "acme/prod"');
  return ns;
}
