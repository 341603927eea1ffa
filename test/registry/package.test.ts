import { describe, expect, it, vi } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tar from 'tar';
import { tempDir } from '../helpers/tmp.ts';
import { generateKeyPair, keyIdOf, readPublicKey, readSecretKey, writeKeyPair } from '../../registry/package/keys.ts';
import { digestInput, inspect, pack, signPackage, verify } from '../../registry/package/pack.ts';
import { readPackage, writeTar, gzip, type TarEntry } from '../../registry/package/tar.ts';
import { keygen, pack as packCmd } from '../../sdk/cli/commands/pack.ts';
import { oneLine } from '../helpers/errors.ts';

const HELLO = path.join(import.meta.dirname, '..', '..', 'samples', 'hello');
const dir = tempDir('pkg-');

/** tar (the package) makes the tar; zlib gzips it (tar's own gzip raced the test's end once). */
const tarGz = async (o: { file: string; cwd: string; portable?: boolean }, list: string[]): Promise<void> => {
  // Synchronously: tar's asynchronous file writer once wrote after its end (an uncaught error) in CI.
  tar.c({ file: `${o.file}.tar`, cwd: o.cwd, portable: o.portable, sync: true }, list);
  fs.writeFileSync(o.file, zlib.gzipSync(fs.readFileSync(`${o.file}.tar`)));
};


/** A valid package's files plus the bad entries, gzipped by our own writer. */
const withEntries = (extra: TarEntry[]): Buffer => {
  const base: TarEntry[] = [{ path: 'os0.json', data: fs.readFileSync(path.join(HELLO, 'os0.json')) }];
  return gzip(writeTar([...base, ...extra]));
};

describe('keys', () => {
  it('writes publisher.key (0600) and publisher.pub, reads them back, refuses to overwrite', () => {
    const d = path.join(dir, 'keys');
    const { keyFile, pubFile, keyId } = writeKeyPair(d);
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(fs.existsSync(pubFile)).toBe(true);
    const sk = readSecretKey(keyFile);
    const pk = readPublicKey(pubFile);
    expect(sk.length).toBe(64);
    expect(pk.length).toBe(32);
    expect(keyIdOf(pk)).toBe(keyId);
    expect(keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(oneLine(() => writeKeyPair(d))).toMatch(/already exists/);
    fs.writeFileSync(path.join(d, 'bad.key'), 'not base64!!\n');
    expect(oneLine(() => readSecretKey(path.join(d, 'bad.key')))).toMatch(/bad\.key: not an ed25519 secret key/);
    expect(oneLine(() => readPublicKey(path.join(d, 'missing.pub')))).toMatch(/missing\.pub: no such/);
    expect(oneLine(() => readPublicKey(keyFile))).toMatch(/expected 32 bytes/);
  });

  it('os0 keygen prints the key id and refuses an existing key', async () => {
    const d = path.join(dir, 'cli-keys');
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await keygen({ out: d });
      const printed = String(out.mock.calls[0][0]).trim();
      expect(printed).toBe(keyIdOf(readPublicKey(path.join(d, 'publisher.pub'))));
      expect(fs.statSync(path.join(d, 'publisher.key')).mode & 0o777).toBe(0o600);
      await expect(keygen({ out: d })).rejects.toThrow(/already exists/);
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  });
});

describe('pack and verify', () => {
  const kp = generateKeyPair();
  const other = generateKeyPair();
  const file = path.join(dir, 'hello-1.0.0.tgz');

  it('packs samples/hello signed; verifies with the right key; refuses an unknown key by id', async () => {
    const progress: string[] = [];
    const r = await pack(HELLO, { out: file, key: kp.secretKey, onProgress: (m) => progress.push(m) });
    expect(r.file).toBe(file);
    expect(r.size).toBe(fs.statSync(file).size);
    expect(r.keyId).toBe(keyIdOf(kp.publicKey));
    expect(r.files.map((f) => f.path)).toEqual(['README.md', 'bundles/capabilities/greet.js', 'bundles/capabilities/greet.js.map', 'os0.json', 'signature.json']);
    expect(progress.some((m) => m.includes('compiling capability greet'))).toBe(true);

    const v = verify(file, [other.publicKey, kp.publicKey]);
    expect(v.manifest.name).toBe('hello');
    expect(v.keyId).toBe(keyIdOf(kp.publicKey));
    expect(v.digest).toBe(r.digest);
    expect(v.files.get('bundles/capabilities/greet.js')!.toString()).toContain('__os0_program');
    expect(digestInput(v.files).toString()).toMatch(/^os0-package-v1\n[0-9a-f]{64}  README\.md\n/);

    const m = oneLine(() => verify(file, [other.publicKey]));
    expect(m).toContain(keyIdOf(kp.publicKey));
    expect(m).toMatch(/not trusted/);
  });

  it('a forged signature.json with a trusted key id does not verify', async () => {
    const files = readPackage(fs.readFileSync(file));
    const sig = JSON.parse(files.get('signature.json')!.toString());
    sig.signature = Buffer.alloc(64, 7).toString('base64');
    files.set('signature.json', Buffer.from(JSON.stringify(sig)));
    const tgz = gzip(writeTar([...files].map(([p, data]) => ({ path: p, data }))));
    expect(oneLine(() => verify(tgz, [kp.publicKey]))).toMatch(/does not verify/);
  });

  it('packs unsigned without a key; signPackage signs it later to the same digest', async () => {
    const out = path.join(dir, 'unsigned.tgz');
    const r = await pack(HELLO, { out });
    expect(r.keyId).toBeNull();
    expect(oneLine(() => verify(out, [kp.publicKey]))).toMatch(/is not signed/);
    const s = signPackage(out, kp.secretKey);
    expect(s.digest).toBe(r.digest);
    expect(verify(s.tgz, [kp.publicKey]).digest).toBe(r.digest);
  });

  it('is deterministic: two packs give the same digest and the same bytes', async () => {
    const a = await pack(HELLO, { out: path.join(dir, 'a.tgz'), key: kp.secretKey });
    const b = await pack(HELLO, { out: path.join(dir, 'b.tgz'), key: kp.secretKey });
    expect(a.digest).toBe(b.digest);
    expect(fs.readFileSync(a.file).equals(fs.readFileSync(b.file))).toBe(true);
  });

  it('a tampered bundle (one byte changed, re-tarred with tar) → digest mismatch', async () => {
    const x = path.join(dir, 'tamper');
    fs.mkdirSync(x);
    await tar.x({ file, cwd: x });
    const bundle = path.join(x, 'bundles/capabilities/greet.js');
    const b = fs.readFileSync(bundle);
    b[10] = b[10] === 0x41 ? 0x42 : 0x41;
    fs.writeFileSync(bundle, b);
    const bad = path.join(dir, 'tampered.tgz');
    await tarGz({ file: bad, cwd: x, portable: true }, ['os0.json', 'README.md', 'signature.json', 'bundles/capabilities/greet.js', 'bundles/capabilities/greet.js.map']);
    const m = oneLine(() => verify(bad, [kp.publicKey]));
    expect(m).toMatch(/digest mismatch/);
  });

  it('a tarball made by tar (with directory entries) reads the same', async () => {
    const x = path.join(dir, 'retar');
    fs.mkdirSync(x);
    await tar.x({ file, cwd: x });
    const again = path.join(dir, 'retar.tgz');
    await tarGz({ file: again, cwd: x }, ['.']);
    expect(verify(again, [kp.publicKey]).keyId).toBe(keyIdOf(kp.publicKey));
  });

  it('a bad manifest → a one-line error', async () => {
    const app = path.join(dir, 'badapp');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'os0.json'), JSON.stringify({ name: 'Bad Name', version: '1.0.0', capabilities: {} }));
    await expect(pack(app, { out: path.join(dir, 'bad.tgz') })).rejects.toThrow(/"name" must be lowercase/);
    fs.writeFileSync(path.join(app, 'os0.json'), '{ not json');
    const e = await pack(app).catch((err: Error) => err);
    expect((e as Error).message).toMatch(/not JSON/);
    expect((e as Error).message).not.toContain('\n');
    fs.writeFileSync(path.join(app, 'os0.json'), JSON.stringify({ name: 'ok', version: '1.0.0', capabilities: { c: { entry: 'nope.ts', description: '' } } }));
    await expect(pack(app)).rejects.toThrow(/entry nope\.ts does not exist/);
  });

  it('os0 pack -o json prints {file, digest, size, keyId}', async () => {
    const kd = path.join(dir, 'cli-pack-keys');
    const { keyFile, keyId } = writeKeyPair(kd);
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      await packCmd(HELLO, { out: path.join(dir, 'cli.tgz'), key: keyFile, output: 'json' });
      const j = JSON.parse(String(out.mock.calls.map((c) => c[0]).join('')));
      expect(j).toMatchObject({ file: path.join(dir, 'cli.tgz'), keyId });
      expect(j.digest).toMatch(/^[0-9a-f]{64}$/);
      expect(typeof j.size).toBe('number');
    } finally {
      out.mockRestore();
    }
  });
});

describe('unpacking is safe', () => {
  it.each([
    ['..', [{ path: '../evil.js', data: Buffer.from('x') }], /'\.\.'/],
    ['.. in the middle', [{ path: 'bundles/../../evil.js', data: Buffer.from('x') }], /'\.\.'/],
    ['absolute path', [{ path: '/etc/evil', data: Buffer.from('x') }], /absolute path/],
    ['symlink', [{ path: 'bundles/link', type: '2', linkpath: '/etc/passwd' }], /symbolic link/],
    ['hardlink', [{ path: 'bundles/link', type: '1', linkpath: 'os0.json' }], /hard link/],
    ['device', [{ path: 'bundles/dev', type: '3' }], /character device/],
    ['fifo', [{ path: 'bundles/fifo', type: '6' }], /FIFO/],
    ['duplicate', [{ path: 'os0.json', data: Buffer.from('{}') }], /appears twice/],
  ] as [string, TarEntry[], RegExp][])('refuses %s', (_name, entries, re) => {
    expect(oneLine(() => verify(withEntries(entries), []))).toMatch(re);
  });

  it('refuses symlinks and hardlinks made by tar', async () => {
    const x = path.join(dir, 'links');
    fs.mkdirSync(x);
    fs.copyFileSync(path.join(HELLO, 'os0.json'), path.join(x, 'os0.json'));
    fs.symlinkSync('/etc/passwd', path.join(x, 'sym'));
    const s = path.join(dir, 'sym.tgz');
    await tarGz({ file: s, cwd: x }, ['os0.json', 'sym']);
    expect(oneLine(() => inspect(s))).toMatch(/symbolic link/);
    fs.linkSync(path.join(x, 'os0.json'), path.join(x, 'hard'));
    const h = path.join(dir, 'hard.tgz');
    await tarGz({ file: h, cwd: x }, ['os0.json', 'hard']);
    expect(oneLine(() => inspect(h))).toMatch(/hard link/);
  });

  it('refuses a tar with 2,000 files', () => {
    const entries = Array.from({ length: 2000 }, (_, i) => ({ path: `f/${i}.txt`, data: Buffer.from('x') }));
    expect(oneLine(() => verify(withEntries(entries), []))).toMatch(/more than 1000 entries/);
  });

  it('refuses a gzip bomb (100 MB of zeros) by the size bound, without inflating it all', () => {
    const big = 100 * 1024 * 1024;
    const tgz = zlib.gzipSync(writeTar([{ path: 'bundles/zeros', data: Buffer.alloc(big) }]), { level: 9 });
    expect(tgz.length).toBeLessThan(1024 * 1024);
    const heapBefore = process.memoryUsage().arrayBuffers;
    const t0 = Date.now();
    const m = oneLine(() => readPackage(tgz));
    expect(m).toMatch(/unpacks to more than 32 MiB/);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(process.memoryUsage().arrayBuffers - heapBefore).toBeLessThan(80 * 1024 * 1024);
  });

  it('refuses what is not a gzip, and a truncated tar', () => {
    expect(oneLine(() => readPackage(Buffer.from('hello')))).toMatch(/not a gzip/);
    const t = writeTar([{ path: 'os0.json', data: Buffer.alloc(2000, 0x20) }]).subarray(0, 1024);
    expect(oneLine(() => readPackage(zlib.gzipSync(t)))).toMatch(/truncated/);
  });
});
