/**
 * The osØ registry server (PROTOCOL.md beside this folder): publish, signed metadata, downloads,
 * yank, key rotation and recovery, search, tokens and rate limits, over a Hono app.
 *
 *   const reg = await Registry.open({ dir: './.os0-registry' });
 *   const port = await reg.listen(7080);      // or mount reg.app in another Hono server
 *   ...
 *   await reg.close();
 *
 * Files by job: store.ts (lowdb + blobs), package.ts (publish checks), names.ts, keychain.ts,
 * keys.ts (the registry's own keys), tokens.ts, ratelimit.ts, search.ts, metadata.ts,
 * routes.ts, registry.ts (the class).
 */
export { Registry, DEFAULT_LIMITS, ADMIN_TOKEN_FILE, type RegistryOptions, type RegistryLimits, type Caller } from './registry.ts';
export { RegistryError } from './errors.ts';
export { skeleton } from './names.ts';
export { METADATA_PREFIX } from './metadata.ts';
export { recordMessage, ROTATION, RECOVERY } from './keychain.ts';
