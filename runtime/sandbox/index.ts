/**
 * The sandbox runtime: capability programs compiled by esbuild and run in isolated-vm, in
 * supervised child processes, with no ambient authority. See README.md beside this file.
 *
 *   const program = await compile('apps/hello/src/greet.ts', { cacheDir });
 *   const sandbox = new Sandbox();
 *   const { output, logs } = await sandbox.run(program, { name: 'world' }, host);
 *
 * run() rejects with a SandboxError whose `.code` is 'timeout' | 'memory' | 'output' | 'log' |
 * 'calls' | 'crashed' | 'threw' | 'invalid' | 'busy' | 'closed' and whose `.message` is one line;
 * compile() rejects with code 'compile' and `file:line:col message`.
 */
export { compile, type CompileOptions, type Program } from './compile.ts';
export { Sandbox, type HostCalls, type RunResult, type SandboxOptions } from './pool.ts';
export { SandboxError, type SandboxErrorCode } from './errors.ts';
export { DEFAULT_LIMITS, MAX_LIMITS, HOST_METHODS, type HostMethod, type Limits } from './protocol.ts';
