/**
 * The registry client against a real Registry on 127.0.0.1: what it accepts, and everything it
 * must refuse (tampering in transit, a lying registry, stale metadata, a changed registry key,
 * untrusted and rotated-out keys, untrusted recoveries, rollbacks). Plus unpack and the file state.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import { generateKeyPair, keyIdOf, readSecretKey, type KeyPair } from '../../registry/package/keys.ts';
import { encodePackage } from '../../registry/package/pack.ts';
import { FileClientState, MemoryClientState, pick, RegistryClient, unpack, type TrustPolicy } from '../../registry/client/index.ts';
import { refused } from '../helpers/errors.ts';
import { makePackage, startRegistry as startNamed, type Running } from '../helpers/registry.ts';

const dir = tempDir('regclient-');



interface Proxy {
  url: string;
  /** Where requests go (can be switched to another registry). */
  target: string;
  /** Rewrites a response body for a request path (default: as is). */
  rewrite: ((p: string, body: Buffer) => Buffer) | null;
  close(): Promise<void>;
}

/** A tiny HTTP proxy on 127.0.0.1 that can alter what passes through it. */
async function startProxy(target: string): Promise<Proxy> {
  const px: Proxy = { url: '', target, rewrite: null, close: async () => {} };
  const server = http.createServer(async (req, res) => {
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const headers: Record<string, string> = {};
      for (const k of ['authorization', 'content-type', 'x-os0-public-key']) if (req.headers[k]) headers[k] = String(req.headers[k]);
      const r = await fetch(px.target + req.url, { method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined, signal: AbortSignal.timeout(10_000) });
      let body: Buffer = Buffer.from(await r.arrayBuffer());
      if (px.rewrite) body = px.rewrite(req.url ?? '', body);
      const out: Record<string, string> = {};
      r.headers.forEach((v, k) => {
        if (!['content-length', 'content-encoding', 'transfer-encoding', 'connection', 'keep-alive'].includes(k)) out[k] = v;
      });
      res.writeHead(r.status, out);
      res.end(body);
    } catch (e) {
      res.writeHead(502);
      res.end(String(e));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  px.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  px.close = () =>
    new Promise((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  return px;
}

/** Client tests' packages carry a README, to see files travel. */
const signedPkg = (name: string, version: string, key: KeyPair, fields: Record<string, unknown> = {}): Buffer => makePackage(name, version, key, fields, { readme: true });
const startRegistry = (name: string, opts: { metadataTtlSeconds?: number } = {}): Promise<Running> => startNamed(path.join(dir, name), opts);

const trusting = (...keys: KeyPair[]): TrustPolicy => ({ publisherKeys: keys.map((k) => k.publicKey) });

describe('RegistryClient against a real registry', () => {
  let R: Running;
  let alice: RegistryClient; // publishes, with a registry token for actor alice
  const key1 = generateKeyPair();
  const key2 = generateKeyPair();
  const stranger = generateKeyPair();
  const reader = (trust: TrustPolicy, extra: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {}) => new RegistryClient({ url: R.url, trust, ...extra });

  beforeAll(async () => {
    R = await startRegistry('main');
    const admin = new RegistryClient({ url: R.url, token: R.admin, trust: trusting() });
    const t = await admin.createToken('alice', 'tests');
    expect(t.token).toMatch(/^os0r_/);
    alice = new RegistryClient({ url: R.url, token: t.token, trust: trusting() });
    for (const v of ['1.0.0', '1.1.0', '1.2.0']) await alice.publish(signedPkg('hello', v, key1, { description: 'Says hello' }), { publicKey: key1.publicKey });
  });

  it('fetches the highest matching version, checked end to end, and pins the registry key', async () => {
    const state = new MemoryClientState();
    const progress: string[] = [];
    const c = reader(trusting(key1), { state });
    const pkg = await c.fetch('hello', '^1.0.0', { onProgress: (m) => progress.push(m) });
    expect(pkg.version).toBe('1.2.0');
    expect(pkg.keyId).toBe(keyIdOf(key1.publicKey));
    expect(pkg.manifest.name).toBe('hello');
    expect(pkg.files.get('README.md')?.toString()).toBe('# hello 1.2.0\n');
    expect(pkg.notices).toEqual([]);
    const meta = await c.metadata('hello');
    expect(pkg.digest).toBe(meta.versions['1.2.0'].digest);
    expect(pkg.integrity).toBe(meta.versions['1.2.0'].integrity);
    expect(meta.distTags.latest).toBe('1.2.0');
    expect(state.highestAccepted('hello')).toBe('1.2.0');
    expect(state.pinnedKey(R.url)).toBe(R.reg.info().keys.metadata.publicKey);
    expect(progress.some((m) => /downloading hello@1\.2\.0: \d+ of \d+ bytes/.test(m))).toBe(true);
    expect((await c.resolve('hello', '~1.1.0')).version).toBe('1.1.0');
    expect((await c.resolve('hello', 'latest')).version).toBe('1.2.0');
    expect(await refused(c.resolve('hello', '^2.0.0'))).toBe('no version of hello satisfies ^2.0.0 (versions: 1.0.0, 1.1.0, 1.2.0)');
    expect(await refused(c.resolve('hello', '9.9.9'))).toMatch(/^hello@9\.9\.9 is not published/);
    expect(await refused(c.resolve('hello', 'not a range!'))).toMatch(/is not a semver range/);
  });

  it('unpacks what it fetched', async () => {
    const pkg = await reader(trusting(key1)).fetch('hello', '1.0.0');
    const out = path.join(dir, 'unpacked-hello');
    const r = unpack(pkg.files, out);
    expect(r.files).toEqual(['README.md', 'os0.json', 'signature.json']);
    expect(fs.readFileSync(path.join(out, 'README.md'), 'utf8')).toBe('# hello 1.0.0\n');
  });

  it('refuses a package signed by a key nobody trusts, naming the key and os0 trust add', async () => {
    const m = await refused(reader(trusting(stranger)).fetch('hello'));
    expect(m).toBe(`hello is signed by key ${keyIdOf(key1.publicKey)}, which is not trusted (add its .pub with os0 trust add)`);
  });

  it('skips a yanked version in ranges, and takes it only when asked for exactly', async () => {
    await alice.publish(signedPkg('yanky', '1.0.0', key1), { publicKey: key1.publicKey });
    await alice.publish(signedPkg('yanky', '1.1.0', key1), { publicKey: key1.publicKey });
    const y = await alice.yank('yanky', '1.1.0', true, 'broken');
    expect(y.yanked).toBe(true);
    const c = reader(trusting(key1));
    expect((await c.resolve('yanky', '^1.0.0')).version).toBe('1.0.0');
    expect((await c.fetch('yanky', '1.1.0')).version).toBe('1.1.0');
    expect(await refused(c.resolve('yanky', '^1.1.0'))).toBe('no version of yanky satisfies ^1.1.0 (versions: 1.0.0, 1.1.0 (yanked))');
    await alice.yank('yanky', '1.1.0', false);
    expect((await c.resolve('yanky', '^1.0.0')).version).toBe('1.1.0');
  });

  it('refuses a rollback below what was accepted before, unless allowed', async () => {
    const state = new MemoryClientState();
    const c = reader(trusting(key1), { state });
    await c.fetch('hello', '1.1.0');
    expect(await refused(c.fetch('hello', '1.0.0'))).toBe('hello@1.0.0 is older than 1.1.0, installed before: refusing a rollback (pass --allow-downgrade)');
    expect((await c.fetch('hello', '1.0.0', { allowRollback: true })).version).toBe('1.0.0');
    expect(state.highestAccepted('hello')).toBe('1.1.0');
    expect((await c.fetch('hello', '^1.0.0')).version).toBe('1.2.0');
  });

  it('refuses a package altered in transit: a flipped byte fails the integrity check', async () => {
    const px = await startProxy(R.url);
    try {
      px.rewrite = (p, body) => {
        if (!p.endsWith('/package')) return body;
        const b = Buffer.from(body);
        b[b.length >> 1] ^= 0x01;
        return b;
      };
      const m = await refused(reader(trusting(key1), { url: px.url }).fetch('hello', '1.2.0'));
      expect(m).toMatch(/^hello@1\.2\.0: the downloaded package does not match the signed metadata \(integrity sha256-/);
      // A whole other package, validly signed by a key the caller trusts, fails the same way.
      const other = signedPkg('hello', '1.2.0', key1, { description: 'evil twin' });
      px.rewrite = (p, body) => (p.endsWith('/package') ? other : body);
      // (a longer one is cut off as soon as it passes the signed size)
      expect(await refused(reader(trusting(key1), { url: px.url }).fetch('hello', '1.2.0'))).toMatch(/does not match the signed metadata|is larger than the \d+ bytes the signed metadata lists/);
      px.rewrite = (p, body) => (p.endsWith('/package') ? Buffer.concat([body, Buffer.alloc(1)]) : body);
      expect(await refused(reader(trusting(key1), { url: px.url }).fetch('hello', '1.2.0'))).toMatch(/^the package hello@1\.2\.0 is larger than the \d+ bytes the signed metadata lists: refusing it/);
    } finally {
      await px.close();
    }
  });

  it('refuses metadata a lying registry rewrote: the signature does not verify', async () => {
    const px = await startProxy(R.url);
    try {
      px.rewrite = (p, body) => {
        if (p !== '/v1/apps/hello') return body;
        const env = JSON.parse(body.toString());
        env.signed.versions['1.2.0'].yanked = true; // hide the newest version
        return Buffer.from(JSON.stringify(env));
      };
      const m = await refused(reader(trusting(key1), { url: px.url }).fetch('hello'));
      expect(m).toMatch(/^metadata for hello: the signature by registry key [0-9a-f]{16} does not verify/);
      // Metadata of another app served under this name: signed, but not for what was asked.
      const yanky = await (await fetch(`${R.url}/v1/apps/yanky`)).arrayBuffer();
      px.rewrite = (p, body) => (p === '/v1/apps/hello' ? Buffer.from(yanky) : body);
      expect(await refused(reader(trusting(key1), { url: px.url }).fetch('hello'))).toMatch(/^the registry answered metadata for "yanky" when asked for hello/);
    } finally {
      await px.close();
    }
  });

  it('refuses expired metadata (freeze protection)', async () => {
    const later = () => Date.now() + 2 * 86_400_000;
    const m = await refused(reader(trusting(key1), { now: later }).fetch('hello'));
    expect(m).toMatch(/^metadata for hello expired at \d{4}-\d\d-\d\dT[\d:.]+Z: the registry \(or someone between\) is serving stale data/);
  });

  it('refuses metadata from a short-lived registry once its documents expire', async () => {
    const S = await startRegistry('short', { metadataTtlSeconds: 60 });
    const tok = (await new RegistryClient({ url: S.url, token: S.admin, trust: trusting() }).createToken('bob')).token;
    await new RegistryClient({ url: S.url, token: tok, trust: trusting() }).publish(signedPkg('short', '1.0.0', key1), { publicKey: key1.publicKey });
    const c = new RegistryClient({ url: S.url, trust: trusting(key1), now: () => Date.now() + 61_000 });
    expect(await refused(c.fetch('short'))).toMatch(/^metadata for short expired at/);
    expect((await new RegistryClient({ url: S.url, trust: trusting(key1) }).fetch('short')).version).toBe('1.0.0');
  });

  it('refuses a registry that now signs with another key than the pinned one', async () => {
    const S = await startRegistry('other-key');
    const px = await startProxy(R.url);
    try {
      const state = new MemoryClientState();
      await new RegistryClient({ url: px.url, trust: trusting(key1), state }).fetch('hello');
      px.target = S.url; // the same URL now leads to a registry with another metadata key
      const m = await refused(new RegistryClient({ url: px.url, trust: trusting(key1), state }).fetch('hello'));
      const now = S.reg.info().keys.metadata.keyId;
      const pinned = R.reg.info().keys.metadata.keyId;
      expect(m).toBe(`the registry at ${px.url} now signs with key ${now}, not the pinned key ${pinned}: refusing its metadata`);
      // A key given by the caller is pinned too.
      const given = R.reg.info().keys.metadata.publicKey;
      expect(await refused(new RegistryClient({ url: S.url, trust: trusting(key1), registryKey: given }).metadata('hello'))).toMatch(/now signs with key/);
    } finally {
      await px.close();
    }
  });

  it('follows a key rotation: a client trusting the old key accepts a package by the new one', async () => {
    await alice.publish(signedPkg('rotor', '1.0.0', key1), { publicKey: key1.publicKey });
    const chain = await alice.rotateKey('rotor', key1.secretKey, key2.publicKey);
    expect(chain.map((k) => k.keyId)).toEqual([keyIdOf(key1.publicKey), keyIdOf(key2.publicKey)]);
    const kept = (await alice.metadata('rotor')).versions['1.0.0'].digest;
    expect(chain[1].record?.keep).toEqual([kept]);
    expect(await refused(alice.publish(signedPkg('rotor', '1.1.0', key1), { publicKey: key1.publicKey }))).toMatch(/./); // the old key may no longer publish
    await alice.publish(signedPkg('rotor', '1.1.0', key2), { publicKey: key2.publicKey });
    const c = reader(trusting(key1));
    const pkg = await c.fetch('rotor', '1.1.0');
    expect(pkg.keyId).toBe(keyIdOf(key2.publicKey));
    expect((await c.fetch('rotor', '1.0.0', { allowRollback: true })).keyId).toBe(keyIdOf(key1.publicKey)); // kept
    // Trust flows forward only: who trusts just the new key is not thereby trusting the old one.
    expect(await refused(reader(trusting(key2)).fetch('rotor', '1.0.0'))).toMatch(/joined the app's chain after it/);
    expect(await refused(alice.rotateKey('rotor', key1.secretKey, stranger.publicKey))).toMatch(/current key of the app is [0-9a-f]{16}/);
  });

  it('trust flows forward only: rotating an app to a trusted public key does not vouch for what came before', async () => {
    const mallory = generateKeyPair();
    await alice.publish(signedPkg('evil', '1.0.0', mallory), { publicKey: mallory.publicKey });
    // A public key is public: mallory hands her app to key1, keeping her own package "valid".
    await alice.rotateKey('evil', mallory.secretKey, key1.publicKey);
    const m = await refused(reader(trusting(key1)).fetch('evil', '1.0.0'));
    expect(m).toBe(`evil@1.0.0 is signed by key ${keyIdOf(mallory.publicKey)}; the trusted key ${keyIdOf(key1.publicKey)} joined the app's chain after it, and vouches only for what comes after: refusing it`);
  });

  it("refuses a registry that hands an app back to a key its author rotated away from", async () => {
    await alice.publish(signedPkg('history', '1.0.0', key1), { publicKey: key1.publicKey });
    fs.cpSync(R.dir, path.join(dir, 'stale'), { recursive: true });
    await alice.rotateKey('history', key1.secretKey, key2.publicKey);
    await alice.publish(signedPkg('history', '1.1.0', key2), { publicKey: key2.publicKey });
    const state = new MemoryClientState();
    const registryKey = (await reader(trusting()).info()).keys.metadata.publicKey;
    expect((await reader(trusting(key1), { state, registryKey }).fetch('history')).version).toBe('1.1.0');
    expect(state.acceptedChain('history')).toEqual([keyIdOf(key1.publicKey), keyIdOf(key2.publicKey)]);
    // The same registry (same keys) as it was before the rotation, now serving a version signed by the old, leaked key.
    const S = await startRegistry('stale');
    await new RegistryClient({ url: S.url, token: S.admin, trust: trusting() }).publish(signedPkg('history', '1.2.0', key1), { publicKey: key1.publicKey });
    const m = await refused(new RegistryClient({ url: S.url, trust: trusting(key1), state, registryKey }).fetch('history'));
    expect(m).toBe(
      `the key chain of history the registry serves now (${keyIdOf(key1.publicKey)}) does not extend the one accepted before (${keyIdOf(key1.publicKey)} → ${keyIdOf(key2.publicKey)}): refusing it (the registry, or someone between, rewrote the app's history)`,
    );
  });

  it('refuses a version signed by a rotated-out key that the rotation did not keep', async () => {
    await alice.publish(signedPkg('leaky', '1.0.0', key1), { publicKey: key1.publicKey });
    await alice.publish(signedPkg('leaky', '1.1.0', key1), { publicKey: key1.publicKey });
    const keepOnly = (await alice.metadata('leaky')).versions['1.0.0'].digest;
    await alice.rotateKey('leaky', key1.secretKey, key2.publicKey, [keepOnly]);
    const c = reader(trusting(key1));
    expect((await c.fetch('leaky', '1.0.0')).version).toBe('1.0.0');
    const m = await refused(c.fetch('leaky', '1.1.0'));
    expect(m).toMatch(new RegExp(`^leaky@1\\.1\\.0 is signed by key ${keyIdOf(key1.publicKey)}, which was rotated out on \\d{4}-\\d\\d-\\d\\d and does not vouch for it`));
  });

  it('accepts a key recovery only with a trusted root key, and reports it', async () => {
    await alice.publish(signedPkg('lost', '1.0.0', key1), { publicKey: key1.publicKey });
    const root = readSecretKey(path.join(R.dir, 'root.key'));
    const admin = new RegistryClient({ url: R.url, token: R.admin, trust: trusting() });
    expect(await refused(alice.recover('lost', root, key2.publicKey))).toMatch(/./); // admin only
    const chain = await admin.recover('lost', root, key2.publicKey);
    expect(chain[1].record?.type).toBe('os0-key-recovery-v1');
    await alice.publish(signedPkg('lost', '1.1.0', key2), { publicKey: key2.publicKey });
    const rootPub = Buffer.from(R.reg.info().keys.root.publicKey, 'base64');
    const ok = await reader({ publisherKeys: [key2.publicKey], rootKeys: [new Uint8Array(rootPub)] }).fetch('lost', '1.1.0');
    expect(ok.notices).toEqual([expect.stringMatching(/^the key of lost was replaced by the registry operator's root key on \d{4}-\d\d-\d\d$/)]);
    const m = await refused(reader(trusting(key2)).fetch('lost', '1.1.0'));
    expect(m).toMatch(new RegExp(`is a recovery on \\d{4}-\\d\\d-\\d\\d signed by root key ${R.reg.info().keys.root.keyId}, which is not trusted \\(add the registry's root\\.pub with os0 trust add --root\\)`));
    const otherRoot = generateKeyPair();
    expect(await refused(reader({ publisherKeys: [key2.publicKey], rootKeys: [otherRoot.publicKey] }).fetch('lost'))).toMatch(/which is not trusted/);
  });

  it('reports the registry\'s own one-line errors and unreachable registries', async () => {
    expect(await refused(alice.publish(signedPkg('hello', '1.0.0', key1), { publicKey: key1.publicKey }))).toMatch(/1\.0\.0/);
    const e = await alice.publish(signedPkg('hello', '1.0.0', key1), { publicKey: key1.publicKey }).catch((x) => x);
    expect(e.status).toBe(409);
    expect(await refused(reader(trusting(key1)).metadata('nothing-here'))).toMatch(/nothing-here/);
    const anon = reader(trusting());
    expect((await anon.publish(signedPkg('anon', '1.0.0', key1), { publicKey: key1.publicKey }).catch((x) => x)).status).toBe(401);
    const unsigned = encodePackage(new Map([['os0.json', Buffer.from(JSON.stringify({ name: 'u', version: '1.0.0', capabilities: {}, permissions: { resources: [] } }))]]));
    expect(await refused(alice.publish(unsigned))).toMatch(/^u@1\.0\.0 is not signed/);
    const gone = await startProxy(R.url);
    await gone.close();
    expect(await refused(reader(trusting(), { url: gone.url }).info())).toMatch(new RegExp(`^cannot reach the registry at ${gone.url.replace(/[.]/g, '\\.')} \\(ECONNREFUSED\\)`));
  });

  it('searches and manages tokens', async () => {
    const results = await reader(trusting()).search('hello');
    expect(results[0]).toMatchObject({ name: 'hello', version: '1.2.0', description: 'Says hello' });
    const admin = new RegistryClient({ url: R.url, token: R.admin, trust: trusting() });
    const t = await admin.createToken('carol', 'ci');
    expect((await admin.listTokens()).some((x) => x.id === t.id && x.actor === 'carol')).toBe(true);
    const carol = new RegistryClient({ url: R.url, token: t.token, trust: trusting() });
    expect((await carol.listTokens()).map((x) => x.actor)).toEqual(['carol']);
    expect(await admin.revokeToken(t.id)).toEqual({ id: t.id, revoked: true });
    expect((await carol.listTokens().catch((x) => x)).status).toBe(401);
  });
});

describe('FileClientState', () => {
  it('keeps pins and the highest accepted version across instances, written atomically', () => {
    const f = path.join(dir, 'state', 'registry-client.json');
    const s = new FileClientState(f);
    expect(s.pinnedKey('http://r.example/')).toBeNull();
    s.pin('http://r.example/', 'AAAA');
    s.accepted('hello', '1.2.0');
    s.accepted('hello', '1.0.0');
    const t = new FileClientState(f);
    expect(t.pinnedKey('http://r.example')).toBe('AAAA');
    expect(t.highestAccepted('hello')).toBe('1.2.0');
    expect(fs.readdirSync(path.dirname(f))).toEqual(['registry-client.json']);
    fs.writeFileSync(f, '{not json');
    expect(() => new FileClientState(f)).toThrow(/registry-client\.json: the registry client state is not JSON/);
  });
});

describe('unpack', () => {
  const files = (entries: Record<string, string>) => new Map(Object.entries(entries).map(([k, v]) => [k, Buffer.from(v)]));
  const listAll = (d: string): string[] => (fs.existsSync(d) ? (fs.readdirSync(d, { recursive: true }) as string[]).sort() : []);

  it('writes nested files below the folder', () => {
    const out = path.join(dir, 'u-ok');
    const r = unpack(files({ 'os0.json': '{}', 'bundles/capabilities/greet.js': 'x' }), out);
    expect(r.files).toEqual(['bundles/capabilities/greet.js', 'os0.json']);
    expect(r.bytes).toBe(3);
    expect(fs.readFileSync(path.join(out, 'bundles/capabilities/greet.js'), 'utf8')).toBe('x');
  });

  it.each([['../escape.txt'], ['a/../../escape.txt'], ['/tmp/escape.txt'], ['a\\..\\escape.txt'], ['./']])('refuses %j and writes nothing', (bad) => {
    const base = fs.mkdtempSync(path.join(dir, 'u-bad-'));
    const out = path.join(base, 'out');
    expect(() => unpack(files({ 'os0.json': '{}', [bad]: 'pwned' }), out)).toThrow(/unpack|package: /);
    expect(listAll(base)).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'escape.txt'))).toBe(false);
  });

  it('does not follow a symbolic link already in the folder, nor overwrite a file', () => {
    const base = fs.mkdtempSync(path.join(dir, 'u-link-'));
    const outside = path.join(base, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'victim.txt'), 'original');
    const out = path.join(base, 'out');
    fs.mkdirSync(out);
    fs.symlinkSync(outside, path.join(out, 'bundles'));
    fs.symlinkSync(path.join(outside, 'victim.txt'), path.join(out, 'os0.json'));
    expect(() => unpack(files({ 'bundles/x.js': 'pwned' }), out)).toThrow(/bundles is a symbolic link/);
    expect(() => unpack(files({ 'os0.json': 'pwned' }), out)).toThrow(/already exists/);
    expect(() => unpack(files({ 'a.txt': 'fine', 'os0.json': 'pwned' }), out)).toThrow(/already exists/);
    expect(fs.readdirSync(outside)).toEqual(['victim.txt']);
    expect(fs.readFileSync(path.join(outside, 'victim.txt'), 'utf8')).toBe('original');
    expect(fs.existsSync(path.join(out, 'a.txt'))).toBe(false); // refused before the first byte
  });

  it('refuses a file below a file, and more files than the reader allows', () => {
    const out = path.join(dir, 'u-shape');
    expect(() => unpack(files({ a: '1', 'a/b': '2' }), out)).toThrow(/a\/b is below the file a/);
    const many = new Map(Array.from({ length: 1001 }, (_, i) => [`f${i}`, Buffer.from('x')]));
    expect(() => unpack(many, out)).toThrow(/1001 files; the limit is 1000/);
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('pick', () => {
  const entry = (version: string, yanked = false) => ({ version, digest: 'd'.repeat(64), integrity: 'sha256-x', size: 1, keyId: '0'.repeat(16), published: '', yanked, dependencies: {} });
  const md = {
    type: 'os0-app-metadata-v1' as const,
    name: 'tagged',
    issued: '',
    expires: '',
    owner: 'alice',
    keys: [],
    // A registry's tags may not redirect a version or a range: only names that are neither.
    distTags: { latest: '1.0.0', '2.1.0': '1.0.0', '^2': '1.0.0' },
    versions: { '1.0.0': entry('1.0.0'), '2.0.0': entry('2.0.0'), '2.1.0': entry('2.1.0', true) },
  };
  it('takes a dist-tag only for what is not a version or a range', () => {
    expect(pick(md, 'latest').version).toBe('1.0.0');
    expect(pick(md, '2.1.0').version).toBe('2.1.0');
    expect(pick(md, '^2').version).toBe('2.0.0');
  });
});
