/**
 * What the registry's signatures cover (PROTOCOL.md), defined once for the server that signs
 * and checks them and for the client that checks them again.
 */
import { canonicalJson } from './canonical.ts';
import type { KeyRecord } from './client/types.ts';

export const METADATA_PREFIX = 'os0-registry-metadata-v1:';
export const ROTATION = 'os0-key-rotation-v1';
export const RECOVERY = 'os0-key-recovery-v1';

/** The bytes a metadata envelope's signature covers: the prefix and the canonical JSON of `signed`. */
export function metadataMessage(signed: unknown): Buffer {
  return Buffer.from(METADATA_PREFIX + canonicalJson(signed), 'utf8');
}

/** The bytes a key record's signature covers: `TYPE:` + canonical JSON of the record without `signature`. */
export function recordMessage(record: Omit<KeyRecord, 'signature'> & { signature?: string }): Buffer {
  const { signature: _omit, ...unsigned } = record;
  return Buffer.from(`${unsigned.type}:${canonicalJson(unsigned)}`, 'utf8');
}
