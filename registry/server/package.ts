/**
 * Publishing, steps 1 and 2 (PROTOCOL.md "Publishing"): the package unpacked in memory within
 * the package reader's bounds and then the registry's own, the manifest checked, the package
 * signed and its digest matching. Pure CPU, no state: it runs before any lock is taken.
 */
import { createHash } from 'node:crypto';
import semver from 'semver';
import type { Manifest } from '../../runtime/invoke/manifest.ts';
import { inspect, MANIFEST_FILE, type Signature } from '../package/pack.ts';
import { RegistryError } from './errors.ts';

export interface RegistryLimits {
  /** A package's compressed size (the request body). */
  maxPackageBytes: number;
  /** Files in a package. */
  maxFiles: number;
  /** The sum of a package's file sizes. */
  maxUnpackedBytes: number;
  /** Writes (publish, yank, keys, tokens) per actor per minute. */
  publishesPerMinute: number;
  /** Requests per client address per second; 0 = off. */
  requestsPerSecond: number;
}

/** os0.json is read whole into every client's memory: a manifest has no business being larger. */
export const MAX_MANIFEST_BYTES = 256 * 1024;

/** Strict semver (no leading `v`, no spaces): what semver.valid accepts, written as it normalises it. */
const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

export interface CheckedPackage {
  manifest: Manifest;
  digest: string;
  signature: Signature;
  /** Hex and base64 of the SHA-256 of the .tgz bytes. */
  sha256Hex: string;
  integrity: string;
  size: number;
}

/** Steps 1-2 on the bytes of a .tgz; a RegistryError (400 or 413) naming what is wrong otherwise. */
export function checkPackage(tgz: Buffer, limits: RegistryLimits): CheckedPackage {
  if (tgz.length > limits.maxPackageBytes) throw new RegistryError('too_large', `the package is ${tgz.length} bytes, over this registry's limit of ${limits.maxPackageBytes}; make it smaller`);
  if (tgz.length === 0) throw new RegistryError('invalid', 'the request body is empty; send the .tgz made by os0 pack');
  let ins;
  try {
    ins = inspect(tgz);
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    // The reader's own bounds (entries, unpacked bytes, gzip bombs, the manifest's size) say "the limit is …" / "limited to".
    throw new RegistryError(/the limit is|limited to/.test(msg) ? 'too_large' : 'invalid', msg);
  }
  const { manifest, files, digest, signature } = ins;
  const what = `${manifest.name}@${manifest.version}`;
  if (files.size > limits.maxFiles) throw new RegistryError('too_large', `${what} has ${files.size} files, over this registry's limit of ${limits.maxFiles}`);
  let unpacked = 0;
  for (const b of files.values()) unpacked += b.length;
  if (unpacked > limits.maxUnpackedBytes) throw new RegistryError('too_large', `${what} unpacks to ${unpacked} bytes, over this registry's limit of ${limits.maxUnpackedBytes}`);
  const mbytes = files.get(MANIFEST_FILE)!.length;
  if (mbytes > MAX_MANIFEST_BYTES) throw new RegistryError('too_large', `${what}: os0.json is ${mbytes} bytes, over the limit of ${MAX_MANIFEST_BYTES}; shorten it`);
  if (semver.valid(manifest.version) === null || !SEMVER.test(manifest.version)) {
    throw new RegistryError('invalid', `${what}: "${manifest.version}" is not a semantic version such as 1.2.3; fix "version" in os0.json`);
  }
  if (!signature) throw new RegistryError('invalid', `${what} is not signed; publish it with os0 publish --key publisher.key`);
  const hash = createHash('sha256').update(tgz).digest();
  return { manifest, digest, signature, sha256Hex: hash.toString('hex'), integrity: `sha256-${hash.toString('base64')}`, size: tgz.length };
}
