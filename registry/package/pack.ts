/**
 * Packing an app folder into a signed package, and verifying one. The format — which files, the
 * exact bytes the digest covers, what is signed — is in FORMAT.md beside this file.
 *
 *   const { file, digest } = await pack('samples/hello', { out: 'hello-1.0.0.tgz', key: secretKey });
 *   const { manifest, files, keyId } = verify(file, [trustedPublicKey]);
 *
 * Every failure is an Error with a one-line message.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import nacl from 'tweetnacl';
import { parseManifest, readManifestFile, type CapabilitySpec, type Manifest } from '../../runtime/invoke/manifest.ts';
import { verifyDetached } from './ed25519.ts';
import { keyIdOf, publicKeyOf } from './keys.ts';
import { gzip, readPackage, writeTar, MAX_PACKED_BYTES } from './tar.ts';

export const MANIFEST_FILE = 'os0.json';
export const SIGNATURE_FILE = 'signature.json';
export const README_FILE = 'README.md';
const DIGEST_HEADER = 'os0-package-v1\n';
const SIGNATURE_PREFIX = 'os0-package-signature-v1:';
/** The manifest's groups of programs, and the folder of bundles each compiles into. */
export const PROGRAM_KINDS = ['capabilities', 'filters', 'handlers', 'drivers'] as const;
export type ProgramKind = (typeof PROGRAM_KINDS)[number];
const SINGULAR: Record<ProgramKind, string> = { capabilities: 'capability', filters: 'filter', handlers: 'handler', drivers: 'driver' };
/** The single `update` program (the migration run on upgrade) is bundled here. */
export const UPDATE_BUNDLE = 'bundles/update.js';

/** Every program of a manifest with its bundle path: each group's, then `update` if any. */
export function programsOf(manifest: Manifest): { kind: ProgramKind | 'update'; name: string; spec: CapabilitySpec; bundle: string }[] {
  const out: { kind: ProgramKind | 'update'; name: string; spec: CapabilitySpec; bundle: string }[] = [];
  for (const kind of PROGRAM_KINDS) {
    const group = (manifest[kind] ?? {}) as Record<string, CapabilitySpec>;
    for (const name of Object.keys(group).sort()) out.push({ kind, name, spec: group[name], bundle: bundlePath(kind, name) });
  }
  if (manifest.update) out.push({ kind: 'update', name: 'update', spec: manifest.update, bundle: UPDATE_BUNDLE });
  return out;
}

export interface Signature {
  keyId: string;
  algorithm: 'ed25519';
  digest: string;
  /** base64 of the 64-byte detached ed25519 signature over `os0-package-signature-v1:` + digest. */
  signature: string;
}

export interface PackedFile {
  path: string;
  size: number;
  sha256: string;
}

export interface PackOptions {
  /** The .tgz to write; default NAME-VERSION.tgz in the current directory. */
  out?: string;
  /** A 64-byte ed25519 secret key; without it the package is unsigned (publish signs it). */
  key?: Uint8Array;
  onProgress?: (message: string) => void;
  /** Passed to the sandbox compiler. */
  cacheDir?: string;
}

export interface PackResult {
  file: string;
  digest: string;
  size: number;
  files: PackedFile[];
  keyId: string | null;
}

export interface Inspected {
  manifest: Manifest;
  files: Map<string, Buffer>;
  digest: string;
  signature: Signature | null;
}

export interface Verified {
  manifest: Manifest;
  files: Map<string, Buffer>;
  digest: string;
  keyId: string;
}

/** esbuild loads only when something is compiled: reading and verifying packages never needs it. */
const compiler = async () => (await import('../../runtime/sandbox/compile.ts')).compile;

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** The bundle path of a program: bundles/KIND/NAME.js (its map: the same + .map). */
export const bundlePath = (kind: ProgramKind, name: string): string => `bundles/${kind}/${name}.js`;

const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** The exact bytes the digest hashes (FORMAT.md): every file but signature.json, sorted by path. */
export function digestInput(files: Map<string, Buffer>): Buffer {
  const paths = [...files.keys()].filter((p) => p !== SIGNATURE_FILE).sort(byBytes);
  return Buffer.from(DIGEST_HEADER + paths.map((p) => `${sha256(files.get(p)!)}  ${p}\n`).join(''), 'utf8');
}

export function digestOf(files: Map<string, Buffer>): string {
  return sha256(digestInput(files));
}

/** The bytes a package signature covers (FORMAT.md "signature.json"). */
export const signedMessage = (digest: string): Uint8Array => new Uint8Array(Buffer.from(SIGNATURE_PREFIX + digest, 'ascii'));

export function signDigest(digest: string, secretKey: Uint8Array): Signature {
  if (secretKey.length !== nacl.sign.secretKeyLength) throw new Error(`a secret key is ${nacl.sign.secretKeyLength} bytes, not ${secretKey.length}`);
  const sig = nacl.sign.detached(signedMessage(digest), secretKey);
  return { keyId: keyIdOf(publicKeyOf(secretKey)), algorithm: 'ed25519', digest, signature: Buffer.from(sig).toString('base64') };
}

/** The .tgz of these files: sorted by path, fixed mtime, modes and owners. */
export function encodePackage(files: Map<string, Buffer>): Buffer {
  const paths = [...files.keys()].sort(byBytes);
  return gzip(writeTar(paths.map((p) => ({ path: p, data: files.get(p)! }))));
}

/** Compiles and packs an app folder; see PackOptions. */
export async function pack(dir: string, opts: PackOptions = {}): Promise<PackResult> {
  const progress = opts.onProgress ?? (() => {});
  const root = path.resolve(dir);
  const { file: manifestFile, bytes: manifestBytes } = readManifestFile(dir);
  progress(`checking ${manifestFile}`);
  const manifest = parseManifest(manifestBytes, manifestFile);

  const files = new Map<string, Buffer>([[MANIFEST_FILE, manifestBytes]]);
  for (const { kind, name, spec, bundle } of programsOf(manifest)) {
    const entry = path.join(root, spec.entry);
    const single = kind === 'update' ? 'update' : SINGULAR[kind];
    if (!fs.existsSync(entry)) throw new Error(`${manifestFile}: ${single} "${name}": entry ${spec.entry} does not exist`);
    progress(`compiling ${single} ${name} (${spec.entry})`);
    let program;
    try {
      program = await (await compiler())(entry, { rootDir: root, cacheDir: opts.cacheDir });
    } catch (e) {
      throw new Error(`${manifest.name}.${name} does not compile: ${(e as Error).message}`);
    }
    files.set(bundle, Buffer.from(program.code, 'utf8'));
    if (program.map !== null) files.set(`${bundle}.map`, Buffer.from(program.map, 'utf8'));
  }
  const readme = path.join(root, README_FILE);
  if (fs.existsSync(readme) && fs.statSync(readme).isFile()) files.set(README_FILE, fs.readFileSync(readme));

  const digest = digestOf(files);
  let keyId: string | null = null;
  if (opts.key) {
    progress('signing');
    const sig = signDigest(digest, opts.key);
    keyId = sig.keyId;
    files.set(SIGNATURE_FILE, Buffer.from(JSON.stringify(sig, null, 2) + '\n', 'utf8'));
  }
  const tgz = encodePackage(files);
  if (tgz.length > MAX_PACKED_BYTES) throw new Error(`${manifest.name}@${manifest.version}: the package is ${tgz.length} bytes; the limit is ${MAX_PACKED_BYTES / 1048576} MiB`);
  const out = path.resolve(opts.out ?? `${manifest.name}-${manifest.version}.tgz`);
  progress(`writing ${out}`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, tgz);
  fs.renameSync(tmp, out);
  const listed = [...files.keys()].sort(byBytes).map((p) => ({ path: p, size: files.get(p)!.length, sha256: sha256(files.get(p)!) }));
  return { file: out, digest, size: tgz.length, files: listed, keyId };
}

function load(tgz: string | Buffer): Buffer {
  if (Buffer.isBuffer(tgz)) return tgz;
  let st: fs.Stats;
  try {
    st = fs.statSync(tgz);
  } catch (e) {
    throw new Error(`${tgz}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!st.isFile()) throw new Error(`${tgz}: not a file`);
  if (st.size > MAX_PACKED_BYTES) throw new Error(`${tgz}: ${st.size} bytes; packages are limited to ${MAX_PACKED_BYTES / 1048576} MiB`);
  return fs.readFileSync(tgz);
}

function parseSignature(b: Buffer): Signature {
  let s: Record<string, unknown>;
  try {
    s = JSON.parse(b.toString('utf8'));
  } catch {
    throw new Error('package: signature.json is not JSON');
  }
  if (!s || typeof s !== 'object' || Array.isArray(s)) throw new Error('package: signature.json must be an object');
  if (s.algorithm !== 'ed25519') throw new Error(`package: signature algorithm ${JSON.stringify(s.algorithm)} is not supported; use ed25519`);
  if (typeof s.keyId !== 'string' || !/^[0-9a-f]{16}$/.test(s.keyId)) throw new Error('package: signature.json keyId must be 16 hex digits');
  if (typeof s.digest !== 'string' || !/^[0-9a-f]{64}$/.test(s.digest)) throw new Error('package: signature.json digest must be 64 hex digits');
  if (typeof s.signature !== 'string' || Buffer.from(s.signature, 'base64').length !== nacl.sign.signatureLength) throw new Error('package: signature.json signature must be 64 bytes of base64');
  return s as unknown as Signature;
}

/**
 * Safely unpacks to memory and checks the structure (manifest, a bundle per program, the digest
 * in signature.json if any) — but trusts no key. Use verify() to check who signed it.
 */
export function inspect(tgz: string | Buffer): Inspected {
  const files = readPackage(load(tgz));
  const mbytes = files.get(MANIFEST_FILE);
  if (!mbytes) throw new Error('package: no os0.json');
  const manifest = parseManifest(mbytes, 'package os0.json');
  for (const { bundle } of programsOf(manifest)) {
    if (!files.has(bundle)) throw new Error(`package ${manifest.name}@${manifest.version}: missing ${bundle}`);
  }
  const digest = digestOf(files);
  const sbytes = files.get(SIGNATURE_FILE);
  const signature = sbytes ? parseSignature(sbytes) : null;
  if (signature && signature.digest !== digest) {
    throw new Error(`package ${manifest.name}@${manifest.version}: digest mismatch: signature.json says ${signature.digest}, the files hash to ${digest} (modified after signing)`);
  }
  return { manifest, files, digest, signature };
}

/** inspect(), then checks the signature against the trusted public keys. */
export function verify(tgz: string | Buffer, trustedKeys: Uint8Array[]): Verified {
  return verifyInspected(inspect(tgz), trustedKeys);
}

/** verify() for a package inspect() has read already (one unpack, one manifest check). */
export function verifyInspected(inspected: Inspected, trustedKeys: Uint8Array[]): Verified {
  const { manifest, files, digest, signature } = inspected;
  const what = `package ${manifest.name}@${manifest.version}`;
  if (!signature) throw new Error(`${what} is not signed`);
  const key = trustedKeys.find((k) => keyIdOf(k) === signature.keyId);
  if (!key) throw new Error(`${what} is signed by key ${signature.keyId}, which is not trusted (add its .pub with os0 trust add)`);
  const ok = verifyDetached(signedMessage(digest), Buffer.from(signature.signature, 'base64'), key);
  if (!ok) throw new Error(`${what}: the signature by key ${signature.keyId} does not verify`);
  return { manifest, files, digest, keyId: signature.keyId };
}

/** Signs an unsigned (or re-signs a signed) package: the same files plus a new signature.json. */
export function signPackage(tgz: string | Buffer, secretKey: Uint8Array): { tgz: Buffer; digest: string; keyId: string } {
  const { files, digest } = inspect(tgz);
  const sig = signDigest(digest, secretKey);
  const out = new Map(files);
  out.set(SIGNATURE_FILE, Buffer.from(JSON.stringify(sig, null, 2) + '\n', 'utf8'));
  return { tgz: encodePackage(out), digest, keyId: sig.keyId };
}
