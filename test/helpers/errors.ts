/** The message of an error a call must throw, checked to be one line (every error a user sees is). */
import { expect } from 'vitest';

function message(e: unknown): string {
  const m = (e as Error).message;
  expect(m).not.toContain('\n');
  return m;
}

export function oneLine(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return message(e);
  }
  throw new Error('expected an error');
}

export async function refused(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return message(e);
  }
  throw new Error('expected a refusal');
}
