/**
 * The publishing path end to end, with real processes: os0 keygen → os0 pack samples/hello →
 * os0 registry serve → os0 registry token create alice → os0 publish with alice's token → the
 * package fetched and verified by RegistryClient trusting publisher.pub. Plus os0 search, a
 * refused second publish of the same version, and yank.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { cli, freePort, lines, ROOT, spawnCli, startOs0, tempDir, type CliOptions } from '../helpers/os0.ts';
import { keyIdOf, readPublicKey } from '../../registry/package/keys.ts';
import { RegistryClient } from '../../registry/client/index.ts';

const HELLO = path.join(ROOT, 'samples', 'hello');

describe('os0 publish against os0 registry serve', () => {
  const work = tempDir('publish-');
  const data = path.join(work, 'registry-data');
  let server: ChildProcess;
  let url = '';
  let port = 0;
  let admin = '';
  let alice = '';
  const inWork = (args: string[], opts: CliOptions = {}) => cli(args, { cwd: work, timeoutMs: 60_000, ...opts });

  beforeAll(async () => {
    port = await freePort();
    server = spawnCli(['registry', 'serve', '--data', data, '--port', String(port)]);
    const out = lines(server);
    let err = '';
    server.stderr!.setEncoding('utf8');
    server.stderr!.on('data', (s: string) => (err += s));
    const first = await out.waitFor(1, 20_000).catch((e) => {
      throw new Error(`${(e as Error).message}; stderr: ${err}`);
    });
    expect(first[0]).toContain('ready');
    url = /https?:\/\/[^\s)]+/.exec(first[0])![0];
    expect(url).toBe(`http://127.0.0.1:${port}`);
    admin = fs.readFileSync(path.join(data, 'admin.token'), 'utf8').trim();
    expect(fs.statSync(path.join(data, 'admin.token')).mode & 0o777).toBe(0o600);
  }, 30_000);

  afterAll(() => {
    server?.kill('SIGTERM');
  });

  it('keygen, pack, token create, publish, then a client that trusts publisher.pub fetches and verifies it', async () => {
    const kg = await inWork(['keygen', '--out', '.']);
    expect(kg.status, kg.stderr).toBe(0);
    const keyId = kg.stdout.trim();
    const pub = readPublicKey(path.join(work, 'publisher.pub'));
    expect(keyIdOf(pub)).toBe(keyId);

    const pk = await inWork(['pack', HELLO]);
    expect(pk.status, pk.stderr).toBe(0);
    const tgz = pk.stdout.trim();
    expect(tgz).toBe(path.join(work, 'hello-1.0.0.tgz'));

    const tc = await inWork(['registry', 'token', 'create', 'alice', '--registry', url, '--registry-token', admin]);
    expect(tc.status, tc.stderr).toBe(0);
    alice = tc.stdout.trim();
    expect(alice).toMatch(/^os0r_/);
    expect(tc.stderr).toMatch(/for alice: shown once/);

    // The unsigned package is signed with ./publisher.key, then published with alice's token.
    const pb = await inWork(['publish', 'hello-1.0.0.tgz'], { env: { OS0_REGISTRY_URL: url, OS0_REGISTRY_TOKEN: alice } });
    expect(pb.status, pb.stderr).toBe(0);
    const m = /^published hello@1\.0\.0 \(([0-9a-f]{64}), key ([0-9a-f]{16})\)\n$/.exec(pb.stdout);
    expect(m, pb.stdout).not.toBeNull();
    expect(m![2]).toBe(keyId);
    expect(pb.stderr).toBe(''); // progress only on a terminal

    const client = new RegistryClient({ url, trust: { publisherKeys: [pub] } });
    const pkg = await client.fetch('hello', '^1.0.0');
    expect(pkg.version).toBe('1.0.0');
    expect(pkg.digest).toBe(m![1]);
    expect(pkg.keyId).toBe(keyId);
    expect(pkg.manifest.capabilities.greet).toBeDefined();
    expect(pkg.files.has('bundles/capabilities/greet.js')).toBe(true);
    expect((await client.metadata('hello')).owner).toBe('alice');
  }, 90_000);

  it('os0 search prints JSON only and finds the registry from --url; a second publish of a version fails in one line', async () => {
    // independent runs, concurrently: each CLI start costs about a second
    const [s, viaInstance, again, noToken, down, usage] = await Promise.all([
      inWork(['search', 'hello', '-o', 'json', '--registry', url]),
      inWork(['search', 'hello', '--url', `http://127.0.0.1:${port - 1}`]), // the instance's port + 1
      inWork(['publish', HELLO, '--registry', url, '--registry-token', alice]),
      inWork(['publish', 'hello-1.0.0.tgz', '--registry', url]),
      inWork(['search', 'hello', '--registry', `http://127.0.0.1:${port - 1}`]),
      inWork(['registry', 'yank', 'hello', '--registry', url]),
    ]);
    expect(s.status, s.stderr).toBe(0);
    const results = JSON.parse(s.stdout);
    expect(results[0]).toMatchObject({ name: 'hello', version: '1.0.0', description: 'Says hello' });
    expect(viaInstance.status, viaInstance.stderr).toBe(0);
    expect(viaInstance.stdout).toMatch(/^NAME\s+VERSION\s+DESCRIPTION\nhello\s+1\.0\.0\s+Says hello\n$/);

    expect(again.status).toBe(1);
    expect(again.stdout).toBe('');
    expect(again.stderr).toMatch(/^os0: .*1\.0\.0.*\n$/);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(noToken.status).toBe(1);
    expect(noToken.stderr).toMatch(/^os0: .*token.*\n$/);
    expect(down.status).toBe(1);
    expect(down.stderr).toBe(`os0: cannot reach the registry at http://127.0.0.1:${port - 1} (ECONNREFUSED); check that it runs and the URL is right\n`);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/give the version to yank as APP@VERSION/);
  }, 60_000);

  it('yank and un-yank a version as its owner', async () => {
    const y = await inWork(['registry', 'yank', 'hello@1.0.0', '--reason', 'testing', '--registry', url, '--registry-token', alice]);
    expect(y.status, y.stderr).toBe(0);
    expect(y.stdout).toBe('yanked hello@1.0.0 (testing)\n');
    const u = await inWork(['registry', 'yank', 'hello@1.0.0', '--undo', '-o', 'json', '--registry', url, '--registry-token', alice]);
    expect(u.status, u.stderr).toBe(0);
    expect(JSON.parse(u.stdout)).toMatchObject({ version: '1.0.0', yanked: false });
  });
  it('rotate-key hands the app to a new key that keeps vouching for what the old one signed; token ls and revoke', async () => {
    const kg = await inWork(['keygen', '--out', 'next']);
    expect(kg.status, kg.stderr).toBe(0);
    const [rot, ls] = await Promise.all([
      inWork(['registry', 'rotate-key', 'hello', '--key', 'publisher.key', '--new-key', 'next/publisher.pub', '--registry', url, '--registry-token', alice]),
      inWork(['registry', 'token', 'ls', '-o', 'json', '--registry', url, '--registry-token', admin]),
    ]);
    expect(rot.status, rot.stderr).toBe(0);
    const oldId = keyIdOf(readPublicKey(path.join(work, 'publisher.pub')));
    expect(rot.stdout).toBe(`the key of hello is now ${kg.stdout.trim()} (was ${oldId}; it keeps vouching for 1 published version: 1.0.0)\n`);
    const next = readPublicKey(path.join(work, 'next', 'publisher.pub'));
    const old = readPublicKey(path.join(work, 'publisher.pub'));
    const pkg = await new RegistryClient({ url, trust: { publisherKeys: [old] } }).fetch('hello', '1.0.0');
    expect(pkg.keyId).toBe(oldId); // signed by the old key, kept by the rotation
    // Trust flows forward only: the new key alone does not vouch for what the old one signed.
    await expect(new RegistryClient({ url, trust: { publisherKeys: [next] } }).fetch('hello', '1.0.0')).rejects.toThrow(/joined the app's chain after it/);
    expect(ls.status, ls.stderr).toBe(0);
    const tokens = JSON.parse(ls.stdout) as { id: string; actor: string }[];
    const mine = tokens.find((t) => t.actor === 'alice')!;
    expect(alice).toContain(mine.id);
    const rv = await inWork(['registry', 'token', 'revoke', mine.id, '--registry', url, '--registry-token', admin]);
    expect(rv.stdout).toBe(`registry token ${mine.id} revoked\n`);
  }, 60_000);
});

describe('os0 publish to the embedded registry of os0 up', () => {
  it('finds it from OS0_URL (port + 1) and authenticates with the instance token', async () => {
    const work = tempDir('publish-up-');
    const s = await startOs0();
    const kg = await cli(['keygen', '--out', '.'], { cwd: work });
    expect(kg.status, kg.stderr).toBe(0);
    const pb = await cli(['publish', HELLO, '-o', 'json'], { cwd: work, env: { OS0_URL: s.url, OS0_TOKEN: s.token }, timeoutMs: 60_000 });
    expect(pb.status, pb.stderr).toBe(0);
    const r = JSON.parse(pb.stdout);
    expect(r).toMatchObject({ name: 'hello', version: '1.0.0', keyId: kg.stdout.trim() });
    const port = Number(new URL(s.url).port);
    const pub = readPublicKey(path.join(work, 'publisher.pub'));
    const pkg = await new RegistryClient({ url: `http://127.0.0.1:${port + 1}`, trust: { publisherKeys: [pub] } }).fetch('hello');
    expect(pkg.digest).toBe(r.digest);
  }, 90_000);
});

describe('the instance token stays with the instance', () => {
  it('is never sent to a registry named with --registry or OS0_REGISTRY_URL, only to the embedded one', async () => {
    const seen: (string | undefined)[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ results: [] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    try {
      const env = { OS0_TOKEN: 'os0_000000000000_instance-secret-not-for-others' };
      const named = await cli(['search', 'x', '--registry', `http://127.0.0.1:${port}`], { env });
      expect(named.status, named.stderr).toBe(0);
      const fromEnv = await cli(['search', 'x'], { env: { ...env, OS0_REGISTRY_URL: `http://127.0.0.1:${port}` } });
      expect(fromEnv.status, fromEnv.stderr).toBe(0);
      const given = await cli(['search', 'x', '--registry', `http://127.0.0.1:${port}`, '--registry-token', 'os0r_for-this-registry'], { env });
      expect(given.status, given.stderr).toBe(0);
      // The embedded registry of the instance at OS0_URL (port + 1) does get the instance token.
      const embedded = await cli(['search', 'x'], { env: { ...env, OS0_URL: `http://127.0.0.1:${port - 1}` } });
      expect(embedded.status, embedded.stderr).toBe(0);
      expect(seen).toEqual([undefined, undefined, 'Bearer os0r_for-this-registry', `Bearer ${env.OS0_TOKEN}`]);
    } finally {
      server.close();
    }
  });
});
