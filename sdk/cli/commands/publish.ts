/**
 * os0 publish, os0 search and the publisher's registry commands (yank, rotate-key, recover,
 * token create/ls/revoke). Which registry: --registry, else $OS0_REGISTRY_URL, else the embedded
 * registry of the instance at --url/$OS0_URL (same host, port + 1). Which token: --registry-token,
 * else $OS0_REGISTRY_TOKEN, else the instance's (--token, $OS0_TOKEN, ./.os0/admin.token), which
 * the embedded registry accepts as its admin.
 *
 * `publish` of a signed .tgz sends it as is; with an explicit --key naming another key than the
 * one that signed it, it is re-signed with that key first (the flag says who should vouch for it).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CliError } from '../client.ts';
import { os0Home } from '../home.ts';
import { format, print } from '../output.ts';
import { keyIdOf, publicKeyOf, readPublicKey, readSecretKey, PUBLIC_KEY_FILE, SECRET_KEY_FILE } from '../../../registry/package/keys.ts';
import { inspect, pack, signPackage } from '../../../registry/package/pack.ts';
import { RegistryClient, type PublishResult, type TrustPolicy } from '../../../registry/client/index.ts';

export interface RegistryOpts {
  registry?: string;
  registryToken?: string;
  url?: string;
  token?: string;
  output?: string;
}

const DEFAULT_INSTANCE = 'http://127.0.0.1:7070';

/** The registry URL the flags and environment name (see the file comment). */
export function registryUrl(o: RegistryOpts): string {
  const explicit = o.registry ?? process.env.OS0_REGISTRY_URL;
  if (explicit) return explicit.replace(/\/+$/, '');
  const instance = o.url ?? process.env.OS0_URL ?? DEFAULT_INSTANCE;
  let u: URL;
  try {
    u = new URL(instance);
  } catch {
    throw new CliError(`--url ${JSON.stringify(instance)} is not a URL; give the instance as http://HOST:PORT or the registry with --registry`, 2);
  }
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  u.port = String(port + 1);
  return `${u.protocol}//${u.host}`;
}

/**
 * The registry token: --registry-token or $OS0_REGISTRY_TOKEN; else, only when the registry is
 * the embedded one of the instance (no --registry or $OS0_REGISTRY_URL), the instance's token.
 * An instance token is never sent to a registry named explicitly: it is not theirs to see.
 */
export function registryToken(o: RegistryOpts): string | undefined {
  const t = o.registryToken ?? process.env.OS0_REGISTRY_TOKEN;
  if (t) return t;
  if (o.registry ?? process.env.OS0_REGISTRY_URL) return undefined;
  const instance = o.token ?? process.env.OS0_TOKEN;
  if (instance) return instance;
  const file = './.os0/admin.token';
  return existsSync(file) ? readFileSync(file, 'utf8').trim() || undefined : undefined;
}

/**
 * The client of the publisher's commands. They download no package; to read an app's key chain
 * (rotate-key, recover) they accept recoveries signed by the root key the registry itself names,
 * since what they send is checked by the registry and signed by the caller's own key anyway.
 */
function clientFor(o: RegistryOpts): RegistryClient {
  const url = registryUrl(o);
  let c: RegistryClient;
  const trust = async (): Promise<TrustPolicy> => {
    const info = await c.info();
    return { publisherKeys: [], rootKeys: [new Uint8Array(Buffer.from(info.keys.root.publicKey, 'base64'))] };
  };
  try {
    c = new RegistryClient({ url, token: registryToken(o), trust });
  } catch (e) {
    throw new CliError((e as Error).message, 2);
  }
  return c;
}

/** Runs F; any failure becomes a one-line CliError (exit 1). */
async function run<T>(f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(String((e as Error)?.message ?? e).split('\n')[0]);
  }
}

function readKey(file: string): Uint8Array {
  try {
    return readSecretKey(file);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

function readPub(file: string): Uint8Array {
  try {
    return readPublicKey(file);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

export async function publish(target: string | undefined, o: RegistryOpts & { key?: string }): Promise<void> {
  const f = format(o.output);
  const t = target ?? '.';
  const tty = process.stderr.isTTY === true;
  const say = tty ? (m: string) => process.stderr.write(`${m}\n`) : () => {};
  let st;
  try {
    st = statSync(t);
  } catch {
    throw new CliError(`${t}: no such app folder or package file (give a folder with an os0.json or a NAME-VERSION.tgz)`);
  }
  const keyFile = o.key ?? defaultKeyFile();
  const client = clientFor(o);
  let tgz: Buffer;
  let publicKey: Uint8Array | undefined;
  if (st.isDirectory()) {
    const key = readKey(keyFile);
    publicKey = publicKeyOf(key);
    const tmp = mkdtempSync(path.join(tmpdir(), 'os0-publish-'));
    try {
      say(`packing ${t}`);
      const r = await run(() => pack(t, { out: path.join(tmp, 'package.tgz'), key, onProgress: say }));
      tgz = readFileSync(r.file);
      say(`signed by ${r.keyId}: ${r.files.length} files, ${r.size} bytes, digest ${r.digest}`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  } else if (st.isFile()) {
    const bytes = await run(() => readFileSync(t));
    const found = await run(() => inspect(bytes));
    if (!found.signature) {
      if (o.key === undefined && !existsSync(keyFile)) throw new CliError(`${t} is not signed and there is no ${keyFile}; give the publisher.key with --key FILE (os0 keygen makes one)`);
      const key = readKey(keyFile);
      publicKey = publicKeyOf(key);
      say(`signing ${t} with key ${keyIdOf(publicKey)}`);
      tgz = await run(() => signPackage(bytes, key).tgz);
    } else if (o.key !== undefined && keyIdOf(publicKeyOf(readKey(o.key))) !== found.signature.keyId) {
      const key = readKey(o.key);
      publicKey = publicKeyOf(key);
      say(`${t} is signed by ${found.signature.keyId}; re-signing it with ${keyIdOf(publicKeyOf(key))} (--key)`);
      tgz = await run(() => signPackage(bytes, key).tgz);
    } else {
      tgz = bytes;
      publicKey = findPublicKey(found.signature.keyId, keyFile);
    }
  } else {
    throw new CliError(`${t}: not a folder or a file`);
  }
  const r: PublishResult = await run(() => client.publish(tgz, { publicKey, onProgress: say }));
  if (f === 'table') process.stdout.write(`published ${r.name}@${r.version} (${r.digest}, key ${r.keyId})\n`);
  else print(f, r, () => []);
}

/** The publisher.key os0 keygen wrote ($OS0_HOME or ~/.config/os0), else ./publisher.key. */
function defaultKeyFile(): string {
  const home = path.join(os0Home(), SECRET_KEY_FILE);
  return existsSync(home) || !existsSync(SECRET_KEY_FILE) ? home : `./${SECRET_KEY_FILE}`;
}

/**
 * The public key of KEYID for an already-signed package (a new app's first publish needs it):
 * from the --key / ./publisher.key, else ./publisher.pub, when one of them is that key.
 */
function findPublicKey(keyId: string, keyFile: string): Uint8Array | undefined {
  const candidates: (() => Uint8Array)[] = [() => publicKeyOf(readSecretKey(keyFile)), () => readPublicKey(path.join(os0Home(), PUBLIC_KEY_FILE)), () => readPublicKey(`./${PUBLIC_KEY_FILE}`)];
  for (const c of candidates) {
    try {
      const pk = c();
      if (keyIdOf(pk) === keyId) return pk;
    } catch {}
  }
  return undefined;
}

function splitTarget(target: string): { name: string; version: string } {
  const at = target.lastIndexOf('@');
  if (at <= 0 || at === target.length - 1) throw new CliError(`${JSON.stringify(target)}: give the version to yank as APP@VERSION, e.g. hello@1.0.0`, 2);
  return { name: target.slice(0, at), version: target.slice(at + 1) };
}

export async function yank(target: string, o: RegistryOpts & { reason?: string; undo?: boolean }): Promise<void> {
  const f = format(o.output);
  const { name, version } = splitTarget(target);
  const e = await run(() => clientFor(o).yank(name, version, !o.undo, o.reason));
  if (f === 'table') process.stdout.write(`${o.undo ? 'un-yanked' : 'yanked'} ${name}@${e.version ?? version}${!o.undo && o.reason ? ` (${o.reason})` : ''}\n`);
  else print(f, e, () => []);
}

export async function rotateKey(app: string, o: RegistryOpts & { key: string; newKey: string }): Promise<void> {
  const f = format(o.output);
  const sk = readKey(o.key);
  const pk = readPub(o.newKey);
  const client = clientFor(o);
  const chain = await run(() => client.rotateKey(app, sk, pk));
  const keep = chain[chain.length - 1]?.record?.keep ?? [];
  if (f === 'table') {
    // Name what the old key keeps vouching for, so that its author can see it is all theirs.
    const versions = Object.values((await run(() => client.metadata(app))).versions).filter((v) => keep.includes(v.digest)).map((v) => v.version);
    const what = versions.length === 0 ? 'no published version' : `${versions.length} published version${versions.length === 1 ? '' : 's'}: ${versions.join(', ')}`;
    process.stdout.write(`the key of ${app} is now ${keyIdOf(pk)} (was ${keyIdOf(publicKeyOf(sk))}; it keeps vouching for ${what})\n`);
  } else print(f, chain, () => []);
}

export async function recover(app: string, o: RegistryOpts & { rootKey: string; newKey: string }): Promise<void> {
  const f = format(o.output);
  const sk = readKey(o.rootKey);
  const pk = readPub(o.newKey);
  const chain = await run(() => clientFor(o).recover(app, sk, pk));
  const last = chain[chain.length - 1];
  if (f === 'table') {
    process.stdout.write(`the key of ${app} is now ${keyIdOf(pk)}, by root key ${keyIdOf(publicKeyOf(sk))} (was ${last?.record?.from ?? '?'}; ${last?.record?.keep.length ?? 0} published versions kept)\n`);
  } else print(f, chain, () => []);
}

export async function tokenCreate(actor: string, o: RegistryOpts & { description?: string }): Promise<void> {
  const f = format(o.output);
  const t = await run(() => clientFor(o).createToken(actor, o.description));
  if (f === 'table') {
    process.stdout.write(`${t.token}\n`);
    process.stderr.write(`registry token ${t.id} for ${t.actor}: shown once, keep it safe\n`);
  } else print(f, t, () => []);
}

export async function tokenLs(o: RegistryOpts): Promise<void> {
  const f = format(o.output);
  const list = await run(() => clientFor(o).listTokens());
  print(f, list, () => [['ID', 'ACTOR', 'CREATED', 'DESCRIPTION'], ...list.map((t) => [t.id, t.actor, t.created, t.description ?? ''])]);
}

export async function tokenRevoke(id: string, o: RegistryOpts): Promise<void> {
  const f = format(o.output);
  const r = await run(() => clientFor(o).revokeToken(id));
  if (f === 'table') process.stdout.write(`registry token ${id} revoked\n`);
  else print(f, r, () => []);
}
