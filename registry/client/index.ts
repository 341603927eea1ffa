/**
 * The registry client's public entry: the CLI and the store import from here only.
 * See PROTOCOL.md "What the client checks".
 */
export { RegistryClient, RegistryError, pick, type RegistryClientOptions } from './client.ts';
export { unpack, type UnpackResult } from './unpack.ts';
export { FileClientState, MemoryClientState } from './state.ts';
export { signRecovery, signRotation, verifyMetadata } from './verify.ts';
export type * from './types.ts';
