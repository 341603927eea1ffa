/**
 * The one error the sandbox gives its callers: a stable code and a one-line message that says
 * what was wrong (the shape of core's OsError, with the sandbox's own codes).
 */
export type SandboxErrorCode =
  | 'compile' // esbuild could not bundle the program: `file:line:col message`
  | 'threw' // the program threw or rejected; `programStack` holds its mapped stack
  | 'timeout' // CPU time or wall time over its limit
  | 'memory' // the isolate's heap, an ArrayBuffer allocation, or the process's RSS cap
  | 'output' // the result's JSON is over outputBytes, or is not JSON
  | 'log' // ctx.log wrote more than logBytes
  | 'calls' // more host calls than the limit allows
  | 'crashed' // the sandbox process died or was killed while running the program
  | 'invalid' // a bad argument to the runtime itself (limits, program)
  | 'busy' // the queue of waiting invocations is full; retry later
  | 'closed'; // the sandbox was closed

export class SandboxError extends Error {
  readonly code: SandboxErrorCode;
  /** For 'threw': the program's stack, mapped to its TypeScript sources. */
  readonly programStack: string | undefined;
  /** CPU the program used before it failed, when the sandbox measured it. */
  cpuMs: number | undefined;
  constructor(code: SandboxErrorCode, message: string, programStack?: string) {
    super(oneLine(message));
    this.name = 'SandboxError';
    this.code = code;
    this.programStack = programStack;
  }
  toJSON(): { code: SandboxErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

const MESSAGE_CHARS_MAX = 500;

/** Collapses whitespace runs (newlines included) and bounds the length: errors are one line. */
export function oneLine(s: string): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > MESSAGE_CHARS_MAX ? flat.slice(0, MESSAGE_CHARS_MAX - 1) + '…' : flat;
}

/** `1 MiB`, `2.1 MiB`, `512 KiB`, `300 bytes`: sizes in messages. */
export function formatBytes(n: number): string {
  if (n >= 2 ** 20) return `${trim(n / 2 ** 20)} MiB`;
  if (n >= 2 ** 10) return `${trim(n / 2 ** 10)} KiB`;
  return `${n} bytes`;
}

const trim = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(1).replace(/\.0$/, ''));
