/**
 * The registry server (registry/server, PROTOCOL.md) on 127.0.0.1, over fetch: publishing and
 * each refusal of the protocol, signed metadata, yank, key rotation and recovery, search,
 * tokens, rate limits, and `os0 registry serve` as a child process.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import nacl from 'tweetnacl';
import { canonicalJson } from '../../registry/canonical.ts';
import type { KeyEntry, KeyRecord, MetadataEnvelope, VersionEntry } from '../../registry/client/types.ts';
import { generateKeyPair, keyIdOf, readSecretKey, type KeyPair } from '../../registry/package/keys.ts';
import { encodePackage, inspect, pack, signDigest, digestOf, verify } from '../../registry/package/pack.ts';
import { gzip, writeTar, type TarEntry } from '../../registry/package/tar.ts';
import { skeleton, type RegistryOptions } from '../../registry/server/index.ts';
import { BIN, NODE, cleanEnv, freePort } from '../helpers/os0.ts';
import { tempDir } from '../helpers/tmp.ts';
import { makePackage, startRegistry, type Running } from '../helpers/registry.ts';

const HELLO = path.join(import.meta.dirname, '..', '..', 'samples', 'hello');
const root = tempDir('registry-server-');

let seq = 0;
const start = (opts: Omit<RegistryOptions, 'dir'> = {}): Promise<Running> => startRegistry(path.join(root, `r${seq++}`), { ...opts, limits: { publishesPerMinute: 10_000, ...opts.limits } });

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');


interface Answer<T = any> {
  status: number;
  body: T;
  headers: Headers;
}
async function call<T = any>(R: Running, method: string, p: string, opts: { token?: string | null; json?: unknown; body?: Buffer; headers?: Record<string, string> } = {}): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  const token = opts.token === undefined ? R.admin : opts.token;
  if (token) headers.authorization = `Bearer ${token}`;
  let body: string | Uint8Array<ArrayBuffer> | undefined;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.body) {
    headers['content-type'] = 'application/gzip';
    body = new Uint8Array(opts.body);
  }
  const res = await fetch(R.url + p, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed as T, headers: res.headers };
}
const publish = (R: Running, tgz: Buffer, key?: KeyPair, token?: string) =>
  call(R, 'POST', '/v1/apps', { body: tgz, token, headers: key ? { 'x-os0-public-key': b64(key.publicKey) } : {} });

/** A refusal: the status, and a one-line message. */
function refused(a: Answer, status: number): string {
  expect(a.status, JSON.stringify(a.body)).toBe(status);
  const msg = (a.body as { error: { message: string } }).error.message;
  expect(msg).not.toContain('\n');
  return msg;
}

async function tokenFor(R: Running, actor: string): Promise<string> {
  const a = await call(R, 'POST', '/v1/tokens', { json: { actor } });
  expect(a.status).toBe(201);
  return a.body.token;
}

function signRecord(r: Omit<KeyRecord, 'signature'>, secretKey: Uint8Array): KeyRecord {
  const sig = nacl.sign.detached(new Uint8Array(Buffer.from(`${r.type}:${canonicalJson(r)}`, 'utf8')), secretKey);
  return { ...r, signature: b64(sig) };
}
const rotation = (app: string, from: KeyPair, to: KeyPair, keep: string[], signer = from): KeyRecord =>
  signRecord({ type: 'os0-key-rotation-v1', app, from: keyIdOf(from.publicKey), to: keyIdOf(to.publicKey), publicKey: b64(to.publicKey), keep, time: new Date().toISOString() }, signer.secretKey);

describe('registry server: publishing', () => {
  let R: Running;
  const alice = generateKeyPair();
  let aliceToken: string;
  let bobToken: string;

  beforeAll(async () => {
    R = await start();
    aliceToken = await tokenFor(R, 'alice');
    bobToken = await tokenFor(R, 'bob');
  });

  it('publishes samples/hello packed by pack(); metadata and download verify end to end', async () => {
    const out = path.join(root, 'hello-1.0.0.tgz');
    const packed = await pack(HELLO, { out, key: alice.secretKey, cacheDir: path.join(root, 'cache') });
    const tgz = fs.readFileSync(out);
    const a = await publish(R, tgz, alice, aliceToken);
    expect(a.status, JSON.stringify(a.body)).toBe(201);
    const integrity = `sha256-${createHash('sha256').update(tgz).digest('base64')}`;
    expect(a.body).toEqual({ name: 'hello', version: '1.0.0', digest: packed.digest, integrity, size: tgz.length, keyId: keyIdOf(alice.publicKey) });

    const m = await call<MetadataEnvelope>(R, 'GET', '/v1/apps/hello', { token: null });
    expect(m.status).toBe(200);
    expect(m.body.signed.owner).toBe('alice');
    expect(m.body.signed.distTags).toEqual({ latest: '1.0.0' });
    expect(m.body.signed.keys).toEqual([{ keyId: keyIdOf(alice.publicKey), publicKey: b64(alice.publicKey), since: expect.any(String) }]);
    expect(m.body.signed.versions['1.0.0']).toMatchObject({ version: '1.0.0', digest: packed.digest, integrity, size: tgz.length, yanked: false, description: 'Says hello', dependencies: {} });

    const d = await fetch(`${R.url}/v1/apps/hello/versions/1.0.0/package`);
    expect(d.status).toBe(200);
    const bytes = Buffer.from(await d.arrayBuffer());
    expect(d.headers.get('x-os0-integrity')).toBe(integrity);
    expect(d.headers.get('x-os0-digest')).toBe(packed.digest);
    expect(d.headers.get('etag')).toBe(`"${packed.digest}"`);
    expect(d.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(`sha256-${createHash('sha256').update(bytes).digest('base64')}`).toBe(integrity);
    expect(verify(bytes, [alice.publicKey]).digest).toBe(packed.digest);

    // content-addressed, durable blob under blobs/sha256/<2>/<64>
    const hex = createHash('sha256').update(tgz).digest('hex');
    expect(fs.readFileSync(path.join(R.dir, 'blobs', 'sha256', hex.slice(0, 2), hex)).equals(tgz)).toBe(true);
    expect(refused(await call(R, 'GET', '/v1/apps/hello/versions/9.9.9/package'), 404)).toMatch(/hello has no version 9\.9\.9/);
    expect(refused(await call(R, 'GET', '/v1/apps/nope'), 404)).toMatch(/no app "nope"/);
  });

  it('a byte flipped in the stored blob shows: the body no longer matches the integrity header', async () => {
    const key = generateKeyPair();
    const tgz = makePackage('flipme', '1.0.0', key);
    expect((await publish(R, tgz, key)).status).toBe(201);
    const hex = createHash('sha256').update(tgz).digest('hex');
    const file = path.join(R.dir, 'blobs', 'sha256', hex.slice(0, 2), hex);
    const stored = fs.readFileSync(file);
    stored[stored.length - 5] ^= 0xff;
    fs.writeFileSync(file, stored);
    const d = await fetch(`${R.url}/v1/apps/flipme/versions/1.0.0/package`);
    const body = Buffer.from(await d.arrayBuffer());
    expect(d.headers.get('x-os0-integrity')).toBe(`sha256-${createHash('sha256').update(tgz).digest('base64')}`);
    expect(`sha256-${createHash('sha256').update(body).digest('base64')}`).not.toBe(d.headers.get('x-os0-integrity'));
  });

  it('refuses a package changed after signing, an unsigned one, and a signature that does not verify', async () => {
    const key = generateKeyPair();
    const files = new Map(inspect(makePackage('tampered', '1.0.0', key)).files);
    files.set('README.md', Buffer.from('added after signing\n'));
    expect(refused(await publish(R, encodePackage(files), key), 400)).toMatch(/digest mismatch/);
    files.delete('signature.json');
    expect(refused(await publish(R, encodePackage(files), key), 400)).toMatch(/is not signed; publish it with os0 publish --key/);
    // signature.json names the key but was made by another one
    const forged = new Map(files);
    const sig = signDigest(digestOf(forged), generateKeyPair().secretKey);
    forged.set('signature.json', Buffer.from(JSON.stringify({ ...sig, keyId: keyIdOf(key.publicKey) })));
    expect(refused(await publish(R, encodePackage(forged), key), 403)).toMatch(/signature by key [0-9a-f]{16} does not verify/);
    // the first publish must bring the signing key's public key, and the right one
    expect(refused(await publish(R, makePackage('tampered', '1.0.0', key)), 400)).toMatch(/x-os0-public-key/);
    expect(refused(await publish(R, makePackage('tampered', '1.0.0', key), generateKeyPair()), 400)).toMatch(/signed by key/);
    expect((await call(R, 'GET', '/v1/apps/tampered')).status).toBe(404);
  });

  it('refuses a key that is not the app\'s, naming it', async () => {
    const key = generateKeyPair();
    const other = generateKeyPair();
    expect((await publish(R, makePackage('keyed', '1.0.0', key), key)).status).toBe(201);
    const msg = refused(await publish(R, makePackage('keyed', '1.1.0', other), other), 403);
    expect(msg).toContain(`signed by key ${keyIdOf(other.publicKey)}, which is not a key of keyed`);
    expect(msg).toContain(keyIdOf(key.publicKey));
  });

  it('refuses a version published before, also after a yank', async () => {
    const key = generateKeyPair();
    expect((await publish(R, makePackage('immutable', '1.0.0', key), key)).status).toBe(201);
    expect(refused(await publish(R, makePackage('immutable', '1.0.0', key, { description: 'other bytes' })), 409)).toMatch(/immutable@1\.0\.0 is already published; versions are immutable/);
    expect((await call(R, 'POST', '/v1/apps/immutable/versions/1.0.0/yank', { json: { yanked: true } })).status).toBe(200);
    expect(refused(await publish(R, makePackage('immutable', '1.0.0', key, { description: 'again' })), 409)).toMatch(/already published \(and yanked\)/);
  });

  it('refuses a name owned by another publisher', async () => {
    const key = generateKeyPair();
    expect((await publish(R, makePackage('alices', '1.0.0', key), key, aliceToken)).status).toBe(201);
    expect(refused(await publish(R, makePackage('alices', '1.1.0', key), key, bobToken), 403)).toMatch(/alices belongs to alice/);
    expect(refused(await call(R, 'POST', '/v1/apps/alices/versions/1.0.0/yank', { token: bobToken, json: { yanked: true } }), 403)).toMatch(/belongs to alice/);
    // the admin may publish for the owner (still with the app's key)
    expect((await publish(R, makePackage('alices', '1.1.0', key))).status).toBe(201);
  });

  it('refuses uppercase names and names confusable with an existing app', async () => {
    const key = generateKeyPair();
    expect(refused(await publish(R, makePackage('Hello', '1.0.0', key), key), 400)).toMatch(/lowercase/);
    expect(refused(await publish(R, makePackage('he_llo', '1.0.0', key), key), 400)).toMatch(/lowercase letters, digits/);
    expect(skeleton('he11o')).toBe(skeleton('hello'));
    expect(refused(await publish(R, makePackage('he11o', '1.0.0', key), key), 409)).toBe('app name "he11o" is confusable with the existing app "hello"; choose a clearly different name');
    expect(refused(await publish(R, makePackage('hel-lo', '1.0.0', key), key), 409)).toMatch(/"hello"/);
    expect((await publish(R, makePackage('m', '1.0.0', key), key)).status).toBe(201);
    expect(refused(await publish(R, makePackage('rn', '1.0.0', key), key), 409)).toMatch(/confusable with the existing app "m"/);
    expect((await publish(R, makePackage('vvv', '1.0.0', key), key)).status).toBe(201);
    expect(refused(await publish(R, makePackage('wv', '1.0.0', key), key), 409)).toMatch(/"vvv"/);
  });

  it('refuses bad semver', async () => {
    const key = generateKeyPair();
    for (const v of ['1.0', 'v1.0.0', '01.0.0']) {
      const a = await publish(R, makePackage('semverish', v, key), key);
      expect(refused(a, 400)).toMatch(/version/);
    }
  });

  it('refuses `..` and absolute entries, symlinks, hard links and devices', async () => {
    const key = generateKeyPair();
    const manifest = Buffer.from(JSON.stringify({ name: 'evil', version: '1.0.0', capabilities: {}, permissions: { resources: [] } }));
    const bad = (e: TarEntry) => gzip(writeTar([{ path: 'os0.json', data: manifest }, e]));
    expect(refused(await publish(R, bad({ path: '../escape', data: Buffer.from('x') }), key), 400)).toMatch(/'\.\.' in its path/);
    expect(refused(await publish(R, bad({ path: 'a/../../escape', data: Buffer.from('x') }), key), 400)).toMatch(/'\.\.'/);
    expect(refused(await publish(R, bad({ path: '/etc/passwd', data: Buffer.from('x') }), key), 400)).toMatch(/absolute path/);
    expect(refused(await publish(R, bad({ path: 'link', type: '2', linkpath: '/etc/passwd' }), key), 400)).toMatch(/symbolic link/);
    expect(refused(await publish(R, bad({ path: 'hard', type: '1', linkpath: 'os0.json' }), key), 400)).toMatch(/hard link/);
    expect(refused(await publish(R, bad({ path: 'dev', type: '3' }), key), 400)).toMatch(/character device/);
    expect((await call(R, 'GET', '/v1/apps/evil')).status).toBe(404);
  });

  it('refuses a gzip bomb and a tar of 100,000 files, quickly', async () => {
    const key = generateKeyPair();
    const manifest = Buffer.from(JSON.stringify({ name: 'bomb', version: '1.0.0', capabilities: {}, permissions: { resources: [] } }));
    const bomb = gzip(writeTar([{ path: 'os0.json', data: manifest }, { path: 'zeros', data: Buffer.alloc(64 * 1024 * 1024) }]));
    expect(bomb.length).toBeLessThan(200_000);
    let t = performance.now();
    expect(refused(await publish(R, bomb, key), 413)).toMatch(/unpacks to more than 32 MiB/);
    expect(performance.now() - t).toBeLessThan(3000);

    // 100,000 distinct empty files: one header from writeTar, copied with its name and checksum changed.
    const template = writeTar([{ path: 'f000000' }]).subarray(0, 512);
    const n = 100_000;
    const tar = Buffer.alloc((n + 2) * 512);
    for (let i = 0; i < n; i++) {
      const h = tar.subarray(i * 512, (i + 1) * 512);
      template.copy(h);
      h.write(`f${String(i).padStart(6, '0')}`, 0, 'ascii');
      h.write('        ', 148, 'ascii');
      let sum = 0;
      for (let j = 0; j < 512; j++) sum += h[j];
      h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
    }
    const many = zlib.gzipSync(tar, { level: 1 });
    t = performance.now();
    expect(refused(await publish(R, many, key), 413)).toMatch(/the limit is/);
    expect(performance.now() - t).toBeLessThan(3000);
    // within the package reader's bounds but over the registry's own: 1,001 entries unpack fine, 5 is the limit here
    const S = await start({ limits: { maxFiles: 5 } });
    const files = new Map(inspect(makePackage('files', '1.0.0', key)).files);
    for (let i = 0; i < 5; i++) files.set(`doc/${i}.txt`, Buffer.from(String(i)));
    files.delete('signature.json');
    files.set('signature.json', Buffer.from(JSON.stringify(signDigest(digestOf(files), key.secretKey))));
    expect(refused(await publish(S, encodePackage(files), key), 413)).toMatch(/files@1\.0\.0 has 7 files, over this registry's limit of 5/);
  });

  it('refuses an oversized package (by content-length and while streaming) and an oversized manifest with 413', async () => {
    const key = generateKeyPair();
    const S = await start({ limits: { maxPackageBytes: 4096 } });
    const big = makePackage('big', '1.0.0', key, { description: Buffer.from(nacl.randomBytes(6000)).toString('base64') });
    expect(big.length).toBeGreaterThan(4096);
    expect(refused(await publish(S, big, key), 413)).toMatch(/over 4096 bytes/);
    // no content-length: a stream, refused once it passes the cap
    const res = await fetch(`${S.url}/v1/apps`, {
      method: 'POST',
      headers: { authorization: `Bearer ${S.admin}`, 'content-type': 'application/gzip' },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < 8; i++) c.enqueue(new Uint8Array(big.subarray(i * 1024, (i + 1) * 1024)));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('too_large');
    expect((await call(S, 'GET', '/v1/apps/big')).status).toBe(404);

    const huge = makePackage('hugemanifest', '1.0.0', key, { description: 'x'.repeat(300 * 1024) });
    expect(refused(await publish(R, huge, key), 413)).toMatch(/os0\.json.*\d+ bytes.*limit/);
  });

  it('two concurrent publishes of one version: exactly one 201, one 409', async () => {
    const key = generateKeyPair();
    for (const name of ['race-new', 'race-old']) {
      if (name === 'race-old') expect((await publish(R, makePackage(name, '0.1.0', key), key)).status).toBe(201);
      const [a, b] = await Promise.all([publish(R, makePackage(name, '1.0.0', key, { description: 'one' }), key), publish(R, makePackage(name, '1.0.0', key, { description: 'two' }), key)]);
      expect([a.status, b.status].sort()).toEqual([201, 409]);
      const m = await call<MetadataEnvelope>(R, 'GET', `/v1/apps/${name}`);
      const winner = a.status === 201 ? a : b;
      expect(m.body.signed.versions['1.0.0'].digest).toBe(winner.body.digest);
    }
  });

  it('yank flips latest, and only to versions that are not prereleases', async () => {
    const key = generateKeyPair();
    for (const v of ['1.0.0', '1.1.0', '2.0.0-beta.1']) expect((await publish(R, makePackage('yanky', v, key), key)).status).toBe(201);
    const latest = async () => (await call<MetadataEnvelope>(R, 'GET', '/v1/apps/yanky')).body.signed.distTags.latest;
    expect(await latest()).toBe('1.1.0');
    const y = await call<VersionEntry>(R, 'POST', '/v1/apps/yanky/versions/1.1.0/yank', { json: { yanked: true, reason: 'broken' } });
    expect(y.status).toBe(200);
    expect(y.body).toMatchObject({ version: '1.1.0', yanked: true, yankReason: 'broken' });
    expect(await latest()).toBe('1.0.0');
    expect((await call(R, 'POST', '/v1/apps/yanky/versions/1.0.0/yank', { json: { yanked: true } })).status).toBe(200);
    expect(await latest()).toBeUndefined();
    const u = await call<VersionEntry>(R, 'POST', '/v1/apps/yanky/versions/1.1.0/yank', { json: { yanked: false } });
    expect(u.body.yanked).toBe(false);
    expect(u.body.yankReason).toBeUndefined();
    expect(await latest()).toBe('1.1.0');
    expect(refused(await call(R, 'POST', '/v1/apps/yanky/versions/1.1.0/yank', { json: { yanked: 'yes' } }), 400)).toMatch(/"yanked": true\|false/);
    expect(refused(await call(R, 'POST', '/v1/apps/yanky/versions/1.1.0/yank', { token: null, json: { yanked: true } }), 401)).toMatch(/needs a registry token/);
  });
});

describe('registry server: metadata', () => {
  it('is signed by the key of GET /v1/registry, expires = issued + ttl, re-signed past half its life', async () => {
    let now = Date.parse('2026-12-01T21:00:00.000Z');
    const R = await start({ now: () => now, metadataTtlSeconds: 3600 });
    const key = generateKeyPair();
    expect((await publish(R, makePackage('meta', '1.0.0', key), key)).status).toBe(201);
    const info = (await call(R, 'GET', '/v1/registry', { token: null })).body;
    expect(info.keys.root.keyId).toBe(keyIdOf(new Uint8Array(Buffer.from(info.keys.root.publicKey, 'base64'))));
    expect(info.limits.maxPackageBytes).toBeGreaterThan(0);
    const pub = new Uint8Array(Buffer.from(info.keys.metadata.publicKey, 'base64'));
    expect(info.keys.metadata.keyId).toBe(keyIdOf(pub));
    expect(fs.readFileSync(path.join(R.dir, 'registry.pub'), 'utf8').trim()).toBe(info.keys.metadata.publicKey);

    const get = async () => (await call<MetadataEnvelope>(R, 'GET', '/v1/apps/meta', { token: null })).body;
    const checks = (env: MetadataEnvelope): boolean =>
      nacl.sign.detached.verify(new Uint8Array(Buffer.from(`os0-registry-metadata-v1:${canonicalJson(env.signed)}`, 'utf8')), new Uint8Array(Buffer.from(env.signatures[0].signature, 'base64')), pub);
    const e1 = await get();
    expect(e1.signatures[0].keyId).toBe(info.keys.metadata.keyId);
    expect(checks(e1)).toBe(true);
    expect(e1.signed.type).toBe('os0-app-metadata-v1');
    expect(e1.signed.name).toBe('meta');
    expect(e1.signed.issued).toBe('2026-12-01T21:00:00.000Z');
    expect(Date.parse(e1.signed.expires) - Date.parse(e1.signed.issued)).toBe(3600 * 1000);
    // a changed document does not verify
    expect(checks({ ...e1, signed: { ...e1.signed, owner: 'mallory' } })).toBe(false);

    // GETs within half the lifetime are served from the cache: no signing
    const signed = R.reg.metadata.signed;
    now += 1700 * 1000;
    for (let i = 0; i < 20; i++) expect((await get()).signed.issued).toBe(e1.signed.issued);
    expect(R.reg.metadata.signed).toBe(signed);
    now += 200 * 1000; // past half: re-signed, a new lifetime
    const e2 = await get();
    expect(e2.signed.issued).toBe(new Date(now).toISOString());
    expect(checks(e2)).toBe(true);
    expect(R.reg.metadata.signed).toBe(signed + 1);
    // a change re-signs at once
    expect((await publish(R, makePackage('meta', '1.1.0', key))).status).toBe(201);
    expect((await get()).signed.distTags.latest).toBe('1.1.0');
  });

  it('keeps apps, keys and tokens across a restart; the admin token is made at first start only', async () => {
    const R = await start();
    const key = generateKeyPair();
    expect((await publish(R, makePackage('durable', '1.0.0', key), key)).status).toBe(201);
    const t = await tokenFor(R, 'carol');
    expect(fs.statSync(path.join(R.dir, 'admin.token')).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(path.join(R.dir, 'admin.token'), 'utf8').trim()).toBe(R.admin);
    const before = R.reg.info();
    await R.reg.close();
    const S = await startRegistry(R.dir);
    expect(S.reg.adminToken).toBeNull();
    expect(S.admin).toBe(R.admin);
    expect(S.reg.info().keys).toEqual(before.keys);
    expect((await call<MetadataEnvelope>(S, 'GET', '/v1/apps/durable')).body.signed.versions['1.0.0'].keyId).toBe(keyIdOf(key.publicKey));
    expect((await call(S, 'GET', '/v1/tokens', { token: t })).status).toBe(200);
    expect(refused(await publish(S, makePackage('durab1e', '1.0.0', key), key), 409)).toMatch(/"durable"/);
  });
});

describe('registry server: keys', () => {
  let R: Running;
  let owner: string;
  const k1 = generateKeyPair();
  const k2 = generateKeyPair();
  const k3 = generateKeyPair();

  beforeAll(async () => {
    R = await start();
    owner = await tokenFor(R, 'dave');
    expect((await publish(R, makePackage('rotor', '1.0.0', k1), k1, owner)).status).toBe(201);
  });

  it('accepts a rotation signed by the current key, refuses others, and then only the new key publishes', async () => {
    const digest = (await call<MetadataEnvelope>(R, 'GET', '/v1/apps/rotor')).body.signed.versions['1.0.0'].digest;
    // signed by the key it rotates to, not the current one
    expect(refused(await call(R, 'POST', '/v1/apps/rotor/keys', { token: owner, json: rotation('rotor', k1, k2, [digest], k2) }), 403)).toMatch(/not signed by its current key/);
    // for another app
    expect(refused(await call(R, 'POST', '/v1/apps/rotor/keys', { token: owner, json: rotation('other', k1, k2, [digest]) }), 400)).toMatch(/for app "other"/);
    // from a key that is not the current one
    expect(refused(await call(R, 'POST', '/v1/apps/rotor/keys', { token: owner, json: rotation('rotor', k3, k2, [digest]) }), 403)).toMatch(/current key is/);
    // by someone else's token
    const eve = await tokenFor(R, 'eve');
    expect(refused(await call(R, 'POST', '/v1/apps/rotor/keys', { token: eve, json: rotation('rotor', k1, k2, [digest]) }), 403)).toMatch(/belongs to dave/);

    const ok = await call<KeyEntry[]>(R, 'POST', '/v1/apps/rotor/keys', { token: owner, json: rotation('rotor', k1, k2, [digest]) });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.map((k) => k.keyId)).toEqual([keyIdOf(k1.publicKey), keyIdOf(k2.publicKey)]);
    expect(ok.body[1].record?.keep).toEqual([digest]);
    // replaying the same rotation: k1 is no longer current
    expect(refused(await call(R, 'POST', '/v1/apps/rotor/keys', { token: owner, json: rotation('rotor', k1, k3, []) }), 403)).toMatch(/was rotated out/);

    const old = refused(await publish(R, makePackage('rotor', '1.1.0', k1), undefined, owner), 403);
    expect(old).toContain(`signed by key ${keyIdOf(k1.publicKey)}, which was rotated out of rotor`);
    expect((await publish(R, makePackage('rotor', '1.1.0', k2), undefined, owner)).status).toBe(201);
    const m = (await call<MetadataEnvelope>(R, 'GET', '/v1/apps/rotor')).body.signed;
    expect(m.keys.length).toBe(2);
    expect(m.versions['1.1.0'].keyId).toBe(keyIdOf(k2.publicKey));
  });

  it('accepts a recovery only from the admin, signed by the root key', async () => {
    const rootKey = readSecretKey(path.join(R.dir, 'root.key'));
    const rootId = keyIdOf(nacl.sign.keyPair.fromSecretKey(rootKey).publicKey);
    const m = (await call<MetadataEnvelope>(R, 'GET', '/v1/apps/rotor')).body.signed;
    const current = m.keys[m.keys.length - 1].keyId;
    const record = (signer: Uint8Array, rootKeyId = rootId) =>
      signRecord({ type: 'os0-key-recovery-v1', app: 'rotor', from: current, to: keyIdOf(k3.publicKey), publicKey: b64(k3.publicKey), keep: [], time: new Date().toISOString(), rootKeyId }, signer);
    expect(refused(await call(R, 'POST', '/v1/apps/rotor/recover', { token: owner, json: record(rootKey) }), 403)).toMatch(/only the registry admin/);
    expect(refused(await call(R, 'POST', '/v1/apps/rotor/recover', { json: record(k2.secretKey) }), 403)).toMatch(/not signed by this registry's root key/);
    expect(refused(await call(R, 'POST', '/v1/apps/rotor/recover', { json: record(k2.secretKey, keyIdOf(k2.publicKey)) }), 403)).toMatch(/not this registry's root key/);
    // a rotation record is not a recovery
    expect(refused(await call(R, 'POST', '/v1/apps/rotor/recover', { json: rotation('rotor', k2, k3, []) }), 400)).toMatch(/must be "os0-key-recovery-v1"/);
    const ok = await call<KeyEntry[]>(R, 'POST', '/v1/apps/rotor/recover', { json: record(rootKey) });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body[2].record?.type).toBe('os0-key-recovery-v1');
    expect(ok.body[2].keyId).toBe(keyIdOf(k3.publicKey));
    expect((await publish(R, makePackage('rotor', '1.2.0', k3), undefined, owner)).status).toBe(201);
  });
});

describe('registry server: search, tokens, limits', () => {
  it('ranks exact name > name prefix > keyword > description word, and honours limit', async () => {
    const R = await start();
    const key = generateKeyPair();
    const apps: [string, string, string[]][] = [
      ['misc', 'a small db helper', []],
      ['tagged', 'nothing to see', ['db', 'storage']],
      ['dbtools', 'tools', []],
      ['db', 'the database', []],
      ['unrelated', 'nothing', ['web']],
    ];
    for (const [name, description, keywords] of apps) expect((await publish(R, makePackage(name, '1.0.0', key, { description, keywords }), key)).status).toBe(201);
    const s = await call(R, 'GET', '/v1/search?q=db', { token: null });
    expect(s.status).toBe(200);
    expect(s.body.results.map((r: { name: string }) => r.name)).toEqual(['db', 'dbtools', 'tagged', 'misc']);
    expect(s.body.results[0]).toEqual({ name: 'db', version: '1.0.0', description: 'the database', keywords: [], score: 100 });
    expect(s.body.results.map((r: { score: number }) => r.score)).toEqual([100, 50, 20, 10]);
    expect((await call(R, 'GET', '/v1/search?q=storage')).body.results.map((r: { name: string }) => r.name)).toEqual(['tagged']);
    expect((await call(R, 'GET', '/v1/search?q=DB&limit=2')).body.results.map((r: { name: string }) => r.name)).toEqual(['db', 'dbtools']);
    expect((await call(R, 'GET', '/v1/search?q=zzz')).body.results).toEqual([]);
    refused(await call(R, 'GET', '/v1/search?q=db&limit=500'), 400);
    refused(await call(R, 'GET', '/v1/search'), 400);
    // a new version's keywords replace the old ones
    expect((await publish(R, makePackage('tagged', '1.1.0', key, { description: 'nothing', keywords: ['web'] }))).status).toBe(201);
    expect((await call(R, 'GET', '/v1/search?q=storage')).body.results).toEqual([]);
    expect((await call(R, 'GET', '/v1/search?q=web')).body.results.map((r: { name: string }) => r.name)).toEqual(['tagged', 'unrelated']);
  });

  it('tokens: created by the admin or for oneself, listed without secrets, revoked → 401', async () => {
    const R = await start();
    const t = await call(R, 'POST', '/v1/tokens', { json: { actor: 'frank', description: 'ci' } });
    expect(t.status).toBe(201);
    expect(t.body.token).toMatch(/^os0r_[0-9a-f]{16}_[0-9a-f]{64}$/);
    expect(t.body.actor).toBe('frank');
    expect(JSON.stringify(JSON.parse(fs.readFileSync(path.join(R.dir, 'registry.json'), 'utf8')))).not.toContain(t.body.token.split('_')[2]);
    const frank = t.body.token as string;
    expect(refused(await call(R, 'POST', '/v1/tokens', { token: frank, json: { actor: 'grace' } }), 403)).toMatch(/tokens for yourself only/);
    const own = await call(R, 'POST', '/v1/tokens', { token: frank, json: { actor: 'frank' } });
    expect(own.status).toBe(201);
    const list = await call(R, 'GET', '/v1/tokens', { token: frank });
    expect(list.body.map((x: { id: string }) => x.id).sort()).toEqual([t.body.id, own.body.id].sort());
    expect(JSON.stringify(list.body)).not.toMatch(/sha256|os0r_/);
    expect((await call(R, 'GET', '/v1/tokens')).body.length).toBe(3); // the admin sees all
    expect(refused(await call(R, 'GET', '/v1/tokens', { token: 'os0r_0000000000000000_' + '0'.repeat(64) }), 401)).toMatch(/not valid/);
    const grace = await tokenFor(R, 'grace');
    expect(refused(await call(R, 'DELETE', `/v1/tokens/${t.body.id}`, { token: grace }), 404)).toMatch(/no token/);
    expect((await call(R, 'DELETE', `/v1/tokens/${t.body.id}`, { token: frank })).body).toEqual({ id: t.body.id, revoked: true });
    expect(refused(await call(R, 'GET', '/v1/tokens', { token: frank }), 401)).toMatch(/revoked or mistyped/);
    expect(refused(await publish(R, makePackage('x', '1.0.0', generateKeyPair()), undefined, frank), 401)).toMatch(/not valid/);
    expect((await call(R, 'GET', '/v1/tokens', { token: own.body.token })).status).toBe(200);
  });

  it('rate limits writes per actor and requests per address with 429 and retry-after', async () => {
    const R = await start({ limits: { publishesPerMinute: 2 } });
    const key = generateKeyPair();
    expect((await publish(R, makePackage('limited', '1.0.0', key), key)).status).toBe(201);
    expect((await publish(R, makePackage('limited', '1.1.0', key))).status).toBe(201);
    const a = await publish(R, makePackage('limited', '1.2.0', key));
    expect(refused(a, 429)).toMatch(/more than 2 writes in a minute; retry in \d+ s/);
    expect(Number(a.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(a.headers.get('retry-after'))).toBeLessThanOrEqual(30);
    expect((await call(R, 'GET', '/v1/apps/limited')).status).toBe(200); // reads are not writes

    const S = await start({ limits: { requestsPerSecond: 5 } });
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await call(S, 'GET', '/healthz', { token: null })).status);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(5);
    expect(statuses.filter((s) => s === 200).length).toBeLessThan(10);
    const r = await call(S, 'GET', '/healthz', { token: null });
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('1');
  });

  it('coalesces the metadata writes of concurrent publishes, and all of them land', async () => {
    const R = await start();
    const key = generateKeyPair();
    const pub = b64(key.publicKey);
    const before = R.reg.store.writes;
    const results = await Promise.all(Array.from({ length: 24 }, (_, i) => R.reg.publish(makePackage(`many-${'abcdefghjkpqstuxyz'[i % 18]}${'abcdefghjkpqstuxyz'[Math.floor(i / 18)]}`, '1.0.0', key), { actor: 'admin', admin: true }, pub)));
    expect(results.length).toBe(24);
    expect(R.reg.store.writes - before).toBeLessThan(24);
    const onDisk = JSON.parse(fs.readFileSync(path.join(R.dir, 'registry.json'), 'utf8'));
    for (const r of results) expect(onDisk.apps[r.name].versions['1.0.0'].digest).toBe(r.digest);
  });

  it('an embedding may accept its own tokens', async () => {
    const R = await start({ authenticate: (t) => (t === 'instance-admin' ? { actor: 'root', admin: true } : t === 'instance-user' ? { actor: 'ivy', admin: false } : null) });
    const key = generateKeyPair();
    expect((await publish(R, makePackage('embedded', '1.0.0', key), key, 'instance-user')).status).toBe(201);
    expect((await call<MetadataEnvelope>(R, 'GET', '/v1/apps/embedded')).body.signed.owner).toBe('ivy');
    expect((await call(R, 'POST', '/v1/tokens', { token: 'instance-admin', json: { actor: 'judy' } })).status).toBe(201);
    expect(refused(await call(R, 'POST', '/v1/tokens', { token: 'instance-user', json: { actor: 'judy' } }), 403)).toMatch(/yourself only/);
    expect(refused(await call(R, 'GET', '/v1/tokens', { token: 'someone-else' }), 401)).toMatch(/not valid/);
    expect((await call(R, 'GET', '/v1/tokens')).status).toBe(200); // the registry's own admin token still works
  });

  it('GET /healthz and unknown routes', async () => {
    const R = await start();
    expect((await call(R, 'GET', '/healthz', { token: null })).body).toEqual({ ok: true });
    expect(refused(await call(R, 'GET', '/v1/nothing'), 404)).toMatch(/no route GET \/v1\/nothing/);
  });
});

describe('os0 registry serve', () => {
  it('prints the ready line, writes admin.token (0600), and exits 0 on SIGTERM', async () => {
    const data = path.join(root, 'served');
    const port = await freePort();
    const child = spawn(NODE, [BIN, 'registry', 'serve', '--data', data, '--port', String(port)], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (err += b));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const t0 = Date.now();
      while (!out.includes('\n') && Date.now() - t0 < 15_000 && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      expect(out, err).toBe(`osØ registry ready at http://127.0.0.1:${port} (data ${data}, admin token in ${path.join(data, 'admin.token')})\n`);
      const token = fs.readFileSync(path.join(data, 'admin.token'), 'utf8').trim();
      expect(fs.statSync(path.join(data, 'admin.token')).mode & 0o777).toBe(0o600);
      expect(fs.statSync(path.join(data, 'registry.key')).mode & 0o777).toBe(0o600);
      const res = await fetch(`http://127.0.0.1:${port}/v1/tokens`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    const bad = spawn(NODE, [BIN, 'registry', 'serve', '--port', 'many'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let berr = '';
    bad.stderr.on('data', (b: Buffer) => (berr += b));
    expect(await new Promise((r) => bad.once('exit', r))).toBe(2);
    expect(berr).toBe('os0: --port must be a port number from 0 to 65535 (got many)\n');
  });
});
