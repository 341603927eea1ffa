/**
 * The operator's CLI as a kubectl or helm user expects it (issue 11), end to end: the real CLI
 * against a real `os0 up`. Apply (unchanged, -n, a partial failure), get (short names, plurals,
 * selectors, where a name is, a missing namespace, explain, --observed), watch (list then stream,
 * resume across a restart, one line when it cannot), log (--limit, summaries), usage errors,
 * completion, keygen's home, and the app commands' rough edges (up --app in apps, upgrade when
 * current, uninstall --yes, invoke -o yaml, several registries).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { BIN, cleanEnv, cli, cliFor, client, http, lines, NODE, ROOT, spawnCli, startOs0, tempDir, type CliResult, type Os0 } from '../helpers/os0.ts';

const SAMPLES = path.join(ROOT, 'samples');
let s: Os0;
let os0: ReturnType<typeof cliFor>;

beforeAll(async () => {
  s = await startOs0({ args: ['--app', path.join(SAMPLES, 'hello')] });
  os0 = cliFor(s);
}, 60_000);

function ok(r: CliResult): CliResult {
  expect(r.status, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
  return r;
}
function fails(r: CliResult, status: number, stderr: string | RegExp): void {
  expect(r.status, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(status);
  expect(r.stderr.trimEnd().split('\n'), r.stderr).toHaveLength(1);
  if (typeof stderr === 'string') expect(r.stderr.trimEnd()).toBe(stderr);
  else expect(r.stderr.trimEnd()).toMatch(stderr);
}
const index = async (): Promise<number> => (await http(s, 'GET', '/healthz')).body.index as number;

const SHOP = `type: namespace
name: shop
---
type: configuration
namespace: shop
name: web
tags: {role: web, canary: "yes"}
data: {greeting: hi}
---
type: configuration
namespace: shop
name: db
tags: {role: db}
data: {}
`;

describe('apply', () => {
  it('says unchanged for an identical re-apply, writing no log record and sending no event', async () => {
    expect(ok(await os0(['apply', '-f', '-'], { input: SHOP })).stdout).toBe('namespace shop created\nconfiguration shop/web created\nconfiguration shop/db created\n');
    const at = await index();
    const w = spawnCli(['watch', 'cfg', '-n', 'shop', '-o', 'json', '--since', String(at)], { env: { OS0_URL: s.url, OS0_TOKEN: s.token } });
    const out = lines(w);
    try {
      expect(ok(await os0(['apply', '-f', '-'], { input: SHOP })).stdout).toBe('namespace shop unchanged\nconfiguration shop/web unchanged\nconfiguration shop/db unchanged\n');
      expect(ok(await os0(['apply', '--atomic', '-f', '-'], { input: SHOP })).stdout).toMatch(/unchanged\n.*unchanged\n.*unchanged\n$/);
      expect(await index()).toBe(at);
      // A real change after it is the first thing the watch sees.
      ok(await os0(['apply', '-f', '-'], { input: 'type: configuration\nnamespace: shop\nname: db\ntags: {role: db}\ndata: {v: 2}\n' }));
      const [first] = await out.waitFor(1);
      expect(JSON.parse(first)).toMatchObject({ action: 'update', index: at + 1, resource: { name: 'db' } });
      expect(JSON.parse(ok(await os0(['log', '--since', String(at), '-o', 'json'])).stdout)).toHaveLength(1);
    } finally {
      w.kill('SIGTERM');
    }
  });

  it('takes -n as the namespace of documents that name none (not of cluster-wide types)', async () => {
    const r = ok(await os0(['apply', '-n', 'shop', '-f', '-'], { input: 'type: configuration\nname: from-n\ndata: {}\n---\ntype: namespace\nname: shop/sub\n' }));
    expect(r.stdout).toBe('configuration shop/from-n created\nnamespace shop/sub created\n');
  });

  it('a failure part-way says how many were applied, which failed and why, and which were not tried', async () => {
    const docs = ['a1', 'a2'].map((n) => `type: configuration\nnamespace: shop\nname: ${n}\ndata: {}\n`).join('---\n') + '---\ntype: configuration\nnamespace: shop\nname: bad\ndata: 5\n---\ntype: configuration\nnamespace: shop\nname: a4\ndata: {}\n';
    const r = await os0(['apply', '-f', '-'], { input: docs });
    fails(r, 1, 'os0: configuration shop/bad: rejected by schema: data must be object (document 3 of 4: 2 applied (above); not tried: configuration shop/a4)');
    expect(r.stdout).toBe('configuration shop/a1 created\nconfiguration shop/a2 created\n');
  });

  it('names a document without a name plainly, and never a resource twice', async () => {
    fails(await os0(['apply', '-f', '-'], { input: 'type: configuration\nnamespace: shop\ndata: {}\n' }), 1, 'os0: the document in - (a configuration) has no name; nothing was applied');
    fails(await os0(['apply', '-f', '-'], { input: 'type: configuration\nnamespace: shop\nname: ok\ndata: {}\n---\ndata: {}\nname: x\n' }), 1, 'os0: document 2 of - has no type (e.g. type: configuration); nothing was applied');
    const r = await os0(['apply', '-f', '-'], { input: 'type: service\nnamespace: shop\nname: s\ndata: {command: [x], replicas: many}\n' });
    fails(r, 1, 'os0: service shop/s: rejected by schema: data.replicas must be integer');
    // The API's field paths (command.resource, batch[1].resource) stay out of it.
    const badTags = 'type: configuration\nnamespace: shop\nname: t\ntags: [1]\ndata: {}\n';
    fails(await os0(['apply', '-f', '-'], { input: badTags }), 1, 'os0: configuration shop/t: tags must be an object of key: value strings');
    fails(await os0(['apply', '--atomic', '-f', '-'], { input: 'type: configuration\nnamespace: shop\nname: u\ndata: {}\n---\n' + badTags }), 1, 'os0: configuration shop/t: tags must be an object of key: value strings; nothing was applied (--atomic)');
  });
});

describe('get, explain', () => {
  it('takes short names and plurals, listed by os0 get type', async () => {
    const full = ok(await os0(['get', 'configuration', '-n', 'shop', '-o', 'json'])).stdout;
    for (const alias of ['cfg', 'configurations', 'config', 'CFG']) expect(ok(await os0(['get', alias, '-n', 'shop', '-o', 'json'])).stdout).toBe(full);
    expect(JSON.parse(ok(await os0(['get', 'ns', 'shop', '-o', 'json'])).stdout).name).toBe('shop');
    const types = ok(await os0(['get', 'type'])).stdout;
    expect(types).toMatch(/^NAME\s+SHORT NAMES\s+SCOPE\s+OBSERVED\s+DESCRIPTION\n/);
    expect(types).toMatch(/\nconfiguration\s+configurations,cfg,config\s+namespaced\s+-\s+Free-form configuration\n/);
    expect(types).toMatch(/\nservice\s+services,svc\s+namespaced\s+yes\s/);
    fails(await os0(['get', 'confgiuration']), 1, /^os0: unknown type "confgiuration" \(did you mean configuration\?\); 'os0 get type' lists the types and their short names$/);
  });

  it('-l takes k=v, k!=v, k and !k', async () => {
    const names = async (sel: string) => (JSON.parse(ok(await os0(['get', 'cfg', '-n', 'shop', '-l', sel, '-o', 'json'])).stdout) as { name: string }[]).map((r) => r.name).sort();
    expect(await names('role=web')).toEqual(['web']);
    expect(await names('role!=web,role')).toEqual(['db']);
    expect(await names('canary')).toEqual(['web']);
    expect(await names('!role')).toEqual(['a1', 'a2', 'from-n']);
    fails(await os0(['get', 'cfg', '-l', 'a b']), 1, 'os0: tag selector "a b" must be key=value, key!=value, key or !key');
  });

  it('get TYPE NAME without -n names the namespaces where NAME is; -n of a missing namespace is an error', async () => {
    fails(await os0(['get', 'cfg', 'web']), 1, 'os0: configuration web is not at the top level: it is in namespace shop; pass -n shop');
    fails(await os0(['get', 'cfg', 'nothing-like-it']), 1, 'os0: no configuration named nothing-like-it in any namespace you may see');
    fails(await os0(['get', 'cfg', '-n', 'nowhere']), 1, "os0: namespace nowhere does not exist; 'os0 get namespace' lists them");
    fails(await os0(['get', 'cfg', 'web', '-n', 'nowhere']), 1, "os0: namespace nowhere does not exist; 'os0 get namespace' lists them");
  });

  it('--observed on a type without observed state says so; explain prints the schema', async () => {
    fails(await os0(['get', 'cfg', 'web', '-n', 'shop', '--observed']), 1, 'os0: configuration has no observed state; only its desired state is kept (os0 get configuration web)');
    const e = ok(await os0(['explain', 'svc'])).stdout;
    expect(e).toMatch(/^TYPE:\s+service \(services, svc\)\nSCOPE:\s+namespaced\nOBSERVED:\s+yes/);
    expect(e).toContain('DATA SCHEMA (JSON Schema):\n  type: object\n');
    expect(e).toMatch(/\n {4}replicas:\n {6}type: integer\n/);
    const j = JSON.parse(ok(await os0(['explain', 'dns', '-o', 'json'])).stdout);
    expect(j).toMatchObject({ name: 'dns-record', scope: 'namespaced', schema: { required: ['type', 'value'] } });
  });
});

describe('watch', () => {
  it('lists what exists first, then streams; resumes after a server restart, saying so on stderr', async () => {
    const data = tempDir('watch-restart-');
    const first = await startOs0({ dataDir: data });
    await client(first).submit({ op: 'create', resource: { type: 'namespace', name: 'wr' } });
    await client(first).submit({ op: 'create', resource: { type: 'configuration', namespace: 'wr', name: 'before', data: {} } });
    const port = first.port;
    const env = { OS0_URL: first.url, OS0_TOKEN: first.token };
    const w = spawnCli(['watch', 'cfg', '-n', 'wr'], { env });
    const out = lines(w);
    let stderr = '';
    w.stderr!.on('data', (d) => (stderr += d));
    let again: ReturnType<typeof spawn> | undefined;
    try {
      const [listed] = await out.waitFor(1);
      expect(listed).toMatch(/^\s+\d+\s+exists\s+configuration wr\/before$/);
      await client(first).submit({ op: 'create', resource: { type: 'configuration', namespace: 'wr', name: 'live', data: {} } });
      expect((await out.waitFor(2))[1]).toMatch(/^\s+\d+\s+create\s+configuration wr\/live$/);
      expect((await first.stop()).code).toBe(0);
      // The same data directory and port: the watch comes back by itself.
      again = spawn(NODE, [BIN, 'up', '--data', data, '--port', String(port)], { cwd: data, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      let upOut = '';
      again.stdout!.on('data', (d) => (upOut += d));
      for (let i = 0; i < 300 && !upOut.includes('ready'); i++) await new Promise((r) => setTimeout(r, 100));
      expect(upOut).toContain('ready');
      await client({ url: first.url, token: first.token } as Os0).submit({ op: 'create', resource: { type: 'configuration', namespace: 'wr', name: 'after', data: {} } });
      expect((await out.waitFor(3, 20_000))[2]).toMatch(/^\s+\d+\s+create\s+configuration wr\/after$/);
      expect(stderr).toMatch(/^os0: .* at index \d+; reconnecting…\n(.*\n)*os0: reconnected to http:\/\/127\.0\.0\.1:\d+; resuming after index \d+\n$/);
    } finally {
      w.kill('SIGTERM');
      again?.kill('SIGTERM');
      if (again) await new Promise((r) => again!.once('exit', r));
    }
  }, 60_000);

  it('-l selects on the stream too (k!=v, !k)', async () => {
    const at = await index();
    const w = spawnCli(['watch', 'cfg', '-n', 'shop', '-l', '!canary,role!=cache', '-o', 'json', '--since', String(at)], { env: { OS0_URL: s.url, OS0_TOKEN: s.token } });
    const out = lines(w);
    try {
      const c = client(s);
      await c.submit({ op: 'apply', resource: { type: 'configuration', namespace: 'shop', name: 'web', tags: { role: 'web', canary: 'yes' }, data: { v: 9 } } });
      await c.submit({ op: 'apply', resource: { type: 'configuration', namespace: 'shop', name: 'cache', tags: { role: 'cache' }, data: {} } });
      await c.submit({ op: 'apply', resource: { type: 'configuration', namespace: 'shop', name: 'db', tags: { role: 'db' }, data: { v: 9 } } });
      const got = (await out.waitFor(1)).map((l) => JSON.parse(l));
      expect(got.map((e) => `${e.action} ${e.resource.name}`)).toEqual(['update db']);
    } finally {
      w.kill('SIGTERM');
    }
  });

  it('when it cannot resume, says why in one line; --since abc is a usage error', async () => {
    const at = await index();
    fails(await os0(['watch', 'cfg', '--since', String(at + 1000)]), 1, /^os0: since \d+ is beyond the end of the log/);
    fails(await os0(['watch', 'cfg', '--since', 'abc']), 2, "os0: --since abc is not a log index (a whole number such as 42; 'os0 log' shows them)");
  });
});

describe('log, usage errors, completion', () => {
  it('log --limit N shows the newest N; long change lists are summarised on one line', async () => {
    const now = await index();
    const recs = JSON.parse(ok(await os0(['log', '--limit', '2', '-o', 'json'])).stdout) as { index: number }[];
    // The newest two (the host agent's heartbeats may have added records since `now`).
    expect(recs).toHaveLength(2);
    expect(recs[1].index).toBeGreaterThanOrEqual(now);
    expect(recs[0].index).toBe(recs[1].index - 1);
    const t = ok(await os0(['log', '--since', '1', '--limit', '1'])).stdout.split('\n');
    expect(t[1]).toMatch(/^2\s+\S+\s+system\s+\d+ changes: create type ×\d+$/);
    fails(await os0(['log', '--limit', '0']), 2, 'os0: --limit 0 is not a count (a whole number from 1 to 1000000)');
  });

  it('usage errors exit 2: a bad --url or OS0_URL is not a URL', async () => {
    fails(await cli(['get', 'cfg', '--url', 'not-a-url']), 2, 'os0: --url not-a-url is not a URL (e.g. http://127.0.0.1:7070)');
    fails(await cli(['get', 'cfg'], { env: { OS0_URL: 'ftp://x' } }), 2, 'os0: OS0_URL ftp://x is not a URL osØ can use: it must start with http:// or https://');
  });

  it('completion scripts complete commands, flags, types and names from the live server', async () => {
    const words = async (...w: string[]) => ok(await os0(['__complete', ...w])).stdout.split('\n').filter(Boolean);
    expect(await words('ap')).toEqual(['apply', 'apps']);
    expect(await words('get', '--na')).toEqual(['--namespace']);
    expect(await words('get', 'conf')).toEqual(['configuration', 'config']);
    expect(await words('get', 'cfg', '-n', 'shop', '')).toEqual(expect.arrayContaining(['web', 'db']));
    expect(await words('get', 'cfg', '-n', 'sh')).toEqual(['shop', 'shop/sub']);
    expect(await words('get', '-o', '')).toEqual(['table', 'json', 'yaml']);
    for (const sh of ['bash', 'zsh', 'fish']) expect(ok(await os0(['completion', sh])).stdout).toContain('os0 __complete');
    fails(await os0(['completion', 'tcsh']), 2, 'os0: no completion for "tcsh": choose bash, zsh or fish');
    // The bash script, sourced into a real bash, with os0 on PATH.
    const bin = tempDir('compl-bin-');
    fs.writeFileSync(path.join(bin, 'os0'), `#!/bin/sh\nexec "${NODE}" "${BIN}" "$@"\n`, { mode: 0o755 });
    const script = ok(await os0(['completion', 'bash'])).stdout;
    const r = spawnSync('bash', ['-c', `${script}\nCOMP_WORDS=(os0 get cfg -n shop w); COMP_CWORD=5; _os0; printf '%s\\n' "\${COMPREPLY[@]}"`], {
      env: { ...cleanEnv(), PATH: `${bin}:${process.env.PATH}`, OS0_URL: s.url, OS0_TOKEN: s.token },
      encoding: 'utf8',
    });
    expect(r.stdout).toBe('web\n');
  });
});

describe('keygen', () => {
  it('writes to $OS0_HOME (else ~/.config/os0), never into a git work tree unless --out asks', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'os0-keygen-'));
    try {
      const r = ok(await cli(['keygen'], { env: { OS0_HOME: home } }));
      expect(fs.statSync(path.join(home, 'publisher.key')).mode & 0o777).toBe(0o600);
      expect(r.stdout).toMatch(/^[0-9a-f]{16}\n$/);
      const viaHome = ok(await cli(['keygen'], { env: { OS0_HOME: '', HOME: home, XDG_CONFIG_HOME: '' } }));
      expect(fs.existsSync(path.join(home, '.config', 'os0', 'publisher.key')), viaHome.stderr).toBe(true);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
    const inRepo = path.join(ROOT, '.test-data', 'keys-in-repo');
    fails(await cli(['keygen'], { env: { OS0_HOME: inRepo } }), 1, /is inside the git work tree .*; a secret key does not belong in a repository: set OS0_HOME to a folder outside it, or pass --out DIR to write there anyway$/);
    expect(fs.existsSync(inRepo)).toBe(false);
    const out = tempDir('keys-out-');
    ok(await cli(['keygen', '--out', out]));
    expect(fs.existsSync(path.join(out, 'publisher.key'))).toBe(true);
    const ignore = fs.readFileSync(path.join(ROOT, '.gitignore'), 'utf8').split('\n');
    expect(ignore).toEqual(expect.arrayContaining(['.os0/', '*.key']));
  });
});

describe('apps', () => {
  let home: string;
  let reg: ReturnType<typeof spawn>;
  let regUrl = '';
  let regToken = '';
  afterAll(async () => {
    reg?.kill('SIGTERM');
  });

  it('apps lists up --app folders; invoke -o yaml; upgrade when current exits 0; uninstall --yes; install@RANGE lists versions', async () => {
    const apps = ok(await os0(['apps'])).stdout;
    expect(apps).toMatch(new RegExp(`\\nhello\\s+1\\.0\\.0\\s+-\\s+greet\\s+loaded from ${path.join(SAMPLES, 'hello').replace(/[/.]/g, '\\$&')}\\n`));
    expect(parseYaml(ok(await os0(['invoke', 'hello.greet', '--input', '{"name":"yaml"}', '-o', 'yaml'])).stdout)).toEqual({ greeting: 'hello, yaml' });
    home = userKeys();
    ok(await os0(['keygen', '--out', home]));
    ok(await os0(['trust', 'add', path.join(home, 'publisher.pub')]));
    ok(await os0(['publish', path.join(SAMPLES, 'counter', '1.0.0'), '--key', path.join(home, 'publisher.key')]));
    fails(await os0(['install', 'counter@^2', '--yes']), 1, 'os0: no version of counter satisfies ^2; it has 1.0.0');
    ok(await os0(['install', 'counter', '--yes']));
    expect(ok(await os0(['upgrade', 'counter', '--yes'])).stdout).toBe('counter@1.0.0 is installed and is the highest version matching *; nothing to upgrade\n');
    expect(ok(await os0(['uninstall', 'counter', '--yes'])).stdout).toMatch(/^uninstalled counter \(\d+ resources removed\)\n$/);
  }, 120_000);

  it('several registries: add pins the metadata key, install --registry, search covers every one', async () => {
    const data = tempDir('reg-');
    reg = spawn(NODE, [BIN, 'registry', 'serve', '--data', data, '--port', '0'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    reg.stdout!.on('data', (d) => (out += d));
    for (let i = 0; i < 200 && !out.includes('ready'); i++) await new Promise((r) => setTimeout(r, 100));
    regUrl = /http:\/\/127\.0\.0\.1:\d+/.exec(out)![0];
    regToken = fs.readFileSync(path.join(data, 'admin.token'), 'utf8').trim();
    ok(await os0(['publish', path.join(SAMPLES, 'notes'), '--key', path.join(home, 'publisher.key'), '--registry', regUrl, '--registry-token', regToken]));
    // Without a key to compare, not on a terminal: the fingerprint, and how to pin it.
    const ask = await os0(['registry', 'add', 'third', regUrl]);
    fails(ask, 2, /^os0: the registry at http:\/\/127\.0\.0\.1:\d+ signs its metadata with key [0-9a-f]{16}; check that with its operator, then pass --key [0-9a-f]{16} to pin it$/);
    const fp = /--key ([0-9a-f]{16})/.exec(ask.stderr)![1];
    fails(await os0(['registry', 'add', 'third', regUrl, '--key', '0123456789abcdef']), 1, new RegExp(`signs with key ${fp}, not 0123456789abcdef: not adding it`));
    expect(ok(await os0(['registry', 'add', 'third', regUrl, '--key', fp])).stdout).toBe(`registry third added: ${regUrl} (metadata key ${fp})\n`);
    expect(ok(await os0(['registry', 'ls'])).stdout).toMatch(new RegExp(`^NAME\\s+URL\\s+KEY\nthird\\s+${regUrl.replace(/[.]/g, '\\.')}\\s+${fp}\n$`));
    // notes is only in the added registry: the embedded one does not have it.
    fails(await os0(['install', 'notes', '--yes']), 1, /no app "notes"/);
    expect(ok(await os0(['install', 'notes', '--registry', 'third', '--yes'])).stdout).toBe('installed notes@1.0.0\n');
    fails(await os0(['install', 'other', '--registry', 'fourth', '--yes']), 1, "os0: no registry named fourth; 'os0 registry ls' lists them, 'os0 registry add NAME URL' adds one");
    // Search covers the embedded registry (counter) and the added one (notes).
    const found = JSON.parse(ok(await os0(['search', 'example', '-o', 'json'])).stdout) as { name: string; registry: string }[];
    expect(found.map((r) => `${r.registry}:${r.name}`)).toEqual(expect.arrayContaining(['embedded:counter', 'third:notes']));
    const table = ok(await os0(['search', 'example'])).stdout;
    expect(table).toMatch(/^REGISTRY\s+NAME\s+VERSION\s+DESCRIPTION\nembedded\s+counter\s+1\.0\.0\s+A counter.*\nthird\s+notes\s+1\.0\.0\s+Short notes.*\n$/);
    // The pinned key holds: a registry that changes its key is refused at install.
    await client(s).submit({ op: 'apply', resource: { type: 'registry', name: 'wrongkey', data: { url: regUrl, metadataKey: Buffer.alloc(32, 7).toString('base64') } } });
    fails(await os0(['install', 'notes-stats', '--registry', 'wrongkey', '--yes']), 1, /not the pinned key/);
  }, 120_000);
});

function userKeys(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'os0-keys-'));
}
