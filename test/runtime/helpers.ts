/** Shared by the sandbox tests: compiling fixtures, a recording HostCalls, awaiting a rejection. */
import * as path from 'node:path';
import { compile, type HostCalls, type Program, type SandboxError } from '../../runtime/sandbox/index.ts';

export const here = import.meta.dirname;

export function program(name: string): Promise<Program> {
  const file = name.includes('/') ? name : `programs/${name}`;
  return compile(path.join(here, file.endsWith('.ts') ? file : `${file}.ts`), { rootDir: path.join(here, path.dirname(file)) });
}

/** A fake host: records every call; `answer` decides the result (default: echo the call). */
export class RecordingHost implements HostCalls {
  readonly calls: [method: string, args: unknown[]][] = [];
  active = 0;
  maxActive = 0;
  private readonly answer: (method: string, args: unknown[]) => unknown;
  constructor(answer: (method: string, args: unknown[]) => unknown = (method, args) => ({ method, args })) {
    this.answer = answer;
  }
  async call(method: string, args: unknown[]): Promise<unknown> {
    this.calls.push([method, args]);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      return await this.answer(method, args);
    } finally {
      this.active--;
    }
  }
}

export async function rejection(p: Promise<unknown>): Promise<SandboxError> {
  try {
    await p;
  } catch (e) {
    return e as SandboxError;
  }
  throw new Error('expected the invocation to fail, and it succeeded');
}
