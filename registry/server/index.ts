/**
 * The osØ registry server (PROTOCOL.md beside this folder): publish, signed metadata, downloads,
 * yank, key rotation and recovery, search, tokens and rate limits, over a Hono app.
 *
 *   const reg = await Registry.open({ dir: './.os0-registry' });
 *   const port = await reg.listen(7080);      // or mount reg.app in another Hono server
 *   ...
 *   await reg.close();
 *
 * A name's first publish sends the signer's public key in `x-os0-public-key` (signature.json
 * names only its id). Signatures are made and checked with node:crypto's Ed25519 (../package/ed25519.ts):
 * the same bytes as tweetnacl, about 100 times faster, which a server that verifies every
 * publish and signs every app's metadata needs.
 *
 * Files by job: store.ts (lowdb + blobs), package.ts (publish checks), names.ts, keychain.ts,
 * keys.ts (the registry's own keys), tokens.ts, ratelimit.ts, search.ts, metadata.ts,
 * routes.ts, body.ts (capped bodies), mutex.ts, registry.ts (the class).
 */
export { Registry, DEFAULT_LIMITS, ADMIN_TOKEN_FILE, type RegistryOptions, type RegistryLimits, type Caller } from './registry.ts';
export { RegistryError } from './errors.ts';
export { skeleton } from './names.ts';
export { METADATA_PREFIX, recordMessage, ROTATION, RECOVERY } from '../signing.ts';
