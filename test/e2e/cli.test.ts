/**
 * The os0 CLI end to end, as a child process against a real `os0 up`: apply, get, delete, watch,
 * log, token; exit codes (0 ok, 1 failed or rejected with the reason on stderr, 2 usage);
 * client settings (OS0_URL/OS0_TOKEN, --url/--token, ./.os0/admin.token); `os0 up` itself.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { cli, cliFor, client, freePort, http, lines, spawnCli, startOs0, tempDir, type CliResult, type Os0 } from '../helpers/os0.ts';

let s: Os0;
let os0: ReturnType<typeof cliFor>;
let work: string;

beforeAll(async () => {
  s = await startOs0();
  os0 = cliFor(s);
  work = tempDir('cli-files-');
});

function file(name: string, text: string): string {
  const p = path.join(work, name);
  fs.writeFileSync(p, text);
  return p;
}

/** Exit 0 and nothing on stderr. */
function ok(r: CliResult): CliResult {
  expect(r.stderr, `stdout: ${r.stdout}`).toBe('');
  expect(r.status).toBe(0);
  return r;
}

/** Exit `status` with exactly one line on stderr, and nothing on stdout. */
function fails(r: CliResult, status: number, stderr: string | RegExp): void {
  expect(r.status, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(status);
  expect(r.stderr.endsWith('\n')).toBe(true);
  if (status === 1) expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  if (typeof stderr === 'string') expect(r.stderr.trimEnd()).toBe(stderr);
  else expect(r.stderr).toMatch(stderr);
}

const json = (r: CliResult): any => JSON.parse(r.stdout);

const MANY = `apiVersion: os0/v1
type: namespace
name: acme
---
apiVersion: os0/v1
type: namespace
name: acme/prod
data:
  quota: {count: {machine: 2}}
---
apiVersion: os0/v1
type: configuration
namespace: acme/prod
name: web-1
tags: {role: web}
data: {greeting: hi}
---
apiVersion: os0/v1
type: configuration
namespace: acme/prod
name: db-1
tags: {role: db}
data: {}
---
apiVersion: os0/v1
type: configuration
namespace: acme
name: top
tags: {role: web}
data: {}
`;

describe('apply, get, delete', () => {
  it('applies several YAML documents from a file and prints what changed', async () => {
    const r = ok(await os0(['apply', '-f', file('many.yaml', MANY)]));
    expect(r.stdout).toBe(['namespace acme created', 'namespace acme/prod created', 'configuration acme/prod/web-1 created', 'configuration acme/prod/db-1 created', 'configuration acme/top created', ''].join('\n'));
    // Applying the same file again changes nothing; a changed document is "configured".
    const again = ok(await os0(['apply', '-f', path.join(work, 'many.yaml')]));
    expect(again.stdout).toBe(['namespace acme unchanged', 'namespace acme/prod unchanged', 'configuration acme/prod/web-1 unchanged', 'configuration acme/prod/db-1 unchanged', 'configuration acme/top unchanged', ''].join('\n'));
    const changed = ok(await os0(['apply', '-f', file('many2.yaml', MANY.replace('name: top\ntags: {role: web}\ndata: {}', 'name: top\ntags: {role: web}\ndata: {x: 1}'))]));
    expect(changed.stdout).toContain('configuration acme/prod/db-1 unchanged\nconfiguration acme/top configured\n');
  });

  it('applies from standard input with -f -', async () => {
    const doc = { apiVersion: 'os0/v1', type: 'configuration', namespace: 'acme', name: 'from-stdin', data: { n: 1 } };
    ok(await os0(['apply', '-f', '-'], { input: JSON.stringify(doc) }));
    const yaml = 'type: configuration\nnamespace: acme\nname: stdin-2\ndata: {}\n---\ntype: configuration\nnamespace: acme\nname: stdin-3\ndata: {}\n';
    const r = ok(await os0(['apply', '-f', '-', '-o', 'json'], { input: yaml }));
    const out = json(r);
    expect(out.map((x: { action: string; resource: { name: string } }) => `${x.action} ${x.resource.name}`)).toEqual(['created stdin-2', 'created stdin-3']);
    expect((await client(s).get('/v1/resources?type=configuration&namespace=acme&name=from-stdin')).body.data).toEqual({ n: 1 });
  });

  it('get -o json prints an array for a list and an object for one name; -n includes everything below; -l selects', async () => {
    const list = ok(await os0(['get', 'configuration', '-n', 'acme', '-o', 'json']));
    const arr = json(list);
    expect(Array.isArray(arr)).toBe(true);
    expect(arr.map((r: { namespace: string; name: string }) => `${r.namespace}/${r.name}`).sort()).toEqual(
      ['acme/from-stdin', 'acme/stdin-2', 'acme/stdin-3', 'acme/top', 'acme/prod/db-1', 'acme/prod/web-1'].sort(),
    );
    const prod = json(ok(await os0(['get', 'configuration', '-n', 'acme/prod', '-o', 'json'])));
    expect(prod.map((r: { name: string }) => r.name).sort()).toEqual(['db-1', 'web-1']);
    const web = json(ok(await os0(['get', 'configuration', '-n', 'acme', '-l', 'role=web', '-o', 'json'])));
    expect(web.map((r: { name: string }) => r.name).sort()).toEqual(['top', 'web-1']);
    const none = json(ok(await os0(['get', 'configuration', '-n', 'acme', '-l', 'role=web,tier=9', '-o', 'json'])));
    expect(none).toEqual([]);

    const one = json(ok(await os0(['get', 'configuration', 'web-1', '-n', 'acme/prod', '-o', 'json'])));
    expect(Array.isArray(one)).toBe(false);
    expect(one).toMatchObject({ apiVersion: 'os0/v1', type: 'configuration', namespace: 'acme/prod', name: 'web-1', tags: { role: 'web' }, data: { greeting: 'hi' } });
    const ns = json(ok(await os0(['get', 'namespace', 'acme/prod', '-o', 'json'])));
    expect(ns).toMatchObject({ name: 'acme/prod', data: { quota: { count: { machine: 2 } } } });
  });

  it('get -o yaml and -o table', async () => {
    const y = ok(await os0(['get', 'configuration', 'web-1', '-n', 'acme/prod', '-o', 'yaml']));
    expect(parseYaml(y.stdout)).toMatchObject({ name: 'web-1', data: { greeting: 'hi' } });
    const ylist = ok(await os0(['get', 'configuration', '-n', 'acme/prod', '-o', 'yaml']));
    expect((parseYaml(ylist.stdout) as unknown[]).length).toBe(2);

    const t = ok(await os0(['get', 'configuration', '-n', 'acme/prod']));
    const rows = t.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^NAMESPACE\s+NAME\s+REVISION/);
    expect(rows.slice(1).map((l) => l.split(/\s+/).slice(0, 2).join(' ')).sort()).toEqual(['acme/prod db-1', 'acme/prod web-1']);
    // Table is the default; the observed state of a resource with none: an empty list.
    const empty = await os0(['get', 'machine', '-n', 'acme', '--observed', '-o', 'json']);
    expect(json(ok(empty))).toEqual([]);
  });

  it('delete removes a resource; getting it afterwards exits 1', async () => {
    const r = ok(await os0(['delete', 'configuration', 'stdin-3', '-n', 'acme']));
    expect(r.stdout).toBe('configuration acme/stdin-3 deleted\n');
    fails(await os0(['get', 'configuration', 'stdin-3', '-n', 'acme']), 1, 'os0: configuration acme/stdin-3 does not exist');
    fails(await os0(['delete', 'configuration', 'stdin-3', '-n', 'acme']), 1, 'os0: configuration acme/stdin-3 does not exist');
  });
});

describe('exit codes and errors', () => {
  it('a rejected command exits 1 with the filter and reason in one line on stderr', async () => {
    const m = (name: string) => `type: machine\nnamespace: acme/prod\nname: ${name}\ndata: {cpu: 1, memoryMb: 1024}\n`;
    ok(await os0(['apply', '-f', '-'], { input: m('m1') + '---\n' + m('m2') }));
    const r = await os0(['apply', '-f', '-'], { input: m('m3') });
    fails(r, 1, /rejected by quota: namespace acme\/prod allows 2 machines/);
    expect(r.stderr.trimEnd()).toBe('os0: machine acme/prod/m3: rejected by quota: namespace acme/prod allows 2 machines');
    expect(r.stdout).toBe('');
    fails(await os0(['get', 'machine', 'm3', '-n', 'acme/prod']), 1, /does not exist/);

    fails(
      await os0(['apply', '-f', '-'], { input: 'type: service\nnamespace: acme\nname: s\ndata: {command: [x], replicas: many}\n' }),
      1,
      'os0: service acme/s: rejected by schema: data.replicas must be integer', // the name once
    );
    fails(await os0(['apply', '-f', '-'], { input: 'type: namespace\nname: nope/child\n' }), 1, /rejected by namespace: the parent namespace nope does not exist/);
    fails(await os0(['delete', 'namespace', 'acme']), 1, /rejected by namespace: namespace acme is not empty/);
  });

  it('bad YAML exits 1 and applies nothing, not even the valid documents before it', async () => {
    const text = 'type: configuration\nnamespace: acme\nname: before-bad\ndata: {}\n---\ntype: configuration\nname: [oops\n';
    const r = await os0(['apply', '-f', file('bad.yaml', text)]);
    fails(r, 1, /^os0: .*bad\.yaml(:\d+)?: not valid YAML or JSON: .*; nothing was applied\n$/);
    expect(r.stdout).toBe('');
    fails(await os0(['get', 'configuration', 'before-bad', '-n', 'acme']), 1, /does not exist/);
    // A document that is not a mapping, and a file that does not exist.
    fails(await os0(['apply', '-f', '-'], { input: '- a\n- b\n' }), 1, /each document must be a resource/);
    fails(await os0(['apply', '-f', path.join(work, 'missing.yaml')]), 1, /cannot read .*missing\.yaml: no such file/);
  });

  it('usage errors exit 2', async () => {
    for (const args of [['get'], ['frobnicate'], ['apply'], ['get', 'configuration', '-o', 'xml'], ['delete', 'configuration'], ['get', 'configuration', '--no-such-flag']]) {
      const r = await os0(args);
      expect(r.status, `os0 ${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).not.toBe('');
      expect(r.stdout).toBe('');
    }
    const help = await cli(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('apply');
    const v = await cli(['--version']);
    expect(v.status).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('an unreachable server exits 1 with a clear message', async () => {
    const port = await freePort();
    const r = await cli(['get', 'configuration', '--url', `http://127.0.0.1:${port}`, '--token', s.token]);
    fails(r, 1, `os0: cannot reach osØ at http://127.0.0.1:${port} (ECONNREFUSED); is 'os0 up' running? (set OS0_URL or --url)`);
  });
});

describe('client settings', () => {
  it('OS0_URL/OS0_TOKEN, overridden by --url/--token; ./.os0/admin.token is the default token', async () => {
    const wrongPort = await freePort();
    // Flags win over the environment.
    const r = await cli(['get', 'namespace', 'acme', '-o', 'json', '--url', s.url, '--token', s.token], {
      env: { OS0_URL: `http://127.0.0.1:${wrongPort}`, OS0_TOKEN: 'os0_000000000000_aaaaaaaaaaaaaaaaaaaaaaaa' },
    });
    expect(json(ok(r)).name).toBe('acme');
    // The environment alone.
    expect(json(ok(await cli(['get', 'namespace', 'acme', '-o', 'json'], { env: { OS0_URL: s.url, OS0_TOKEN: s.token } }))).name).toBe('acme');
    // No token anywhere: 401, exit 1.
    fails(await cli(['get', 'namespace', 'acme'], { env: { OS0_URL: s.url } }), 1, /^os0: missing or unknown token/);
    // The token file in ./.os0 of the working directory.
    const cwd = tempDir('cli-home-');
    fs.mkdirSync(path.join(cwd, '.os0'));
    fs.copyFileSync(path.join(s.dataDir, 'admin.token'), path.join(cwd, '.os0', 'admin.token'));
    expect(json(ok(await cli(['get', 'namespace', 'acme', '-o', 'json'], { cwd, env: { OS0_URL: s.url } }))).name).toBe('acme');
  });
});

describe('watch and log', () => {
  it('os0 watch TYPE -o json prints one JSON object per line', async () => {
    const at = (await http(s, 'GET', '/healthz')).body.index;
    const w = spawnCli(['watch', 'configuration', '-n', 'acme', '-o', 'json', '--since', String(at)], { env: { OS0_URL: s.url, OS0_TOKEN: s.token } });
    const out = lines(w);
    let stderr = '';
    w.stderr!.on('data', (d) => (stderr += d));
    try {
      ok(await os0(['apply', '-f', '-'], { input: 'type: configuration\nnamespace: acme\nname: watched\ndata: {v: 1}\n' }));
      ok(await os0(['apply', '-f', '-'], { input: 'type: namespace\nname: acmex\n---\ntype: configuration\nnamespace: acmex\nname: x\ndata: {}\n' })); // not below acme
      ok(await os0(['apply', '-f', '-'], { input: 'type: configuration\nnamespace: acme/prod\nname: watched\ndata: {v: 2}\n' }));
      ok(await os0(['delete', 'configuration', 'watched', '-n', 'acme']));
      const got = (await out.waitFor(3)).map((l) => JSON.parse(l));
      expect(got.map((e) => `${e.action} ${e.resource.namespace}/${e.resource.name}`)).toEqual(['create acme/watched', 'create acme/prod/watched', 'delete acme/watched']);
      for (const e of got) expect(Object.keys(e).sort()).toEqual(['action', 'index', 'resource']);
      expect(got[0].index).toBeGreaterThan(at);
      expect(got[1].index).toBeGreaterThan(got[0].index);
      expect(got[2].index).toBeGreaterThan(got[1].index);
    } finally {
      w.kill('SIGTERM');
    }
    expect(stderr).toBe('');
  });

  it('os0 log shows who did what at which index', async () => {
    const t = await client(s).post('/v1/tokens', { actor: 'logger' });
    await client(s).submit({ op: 'create', resource: { type: 'policy', name: 'logger', data: { subjects: ['user:logger'], rules: [{ verbs: ['*'], types: ['*'], namespaces: ['acme'] }] } } });
    const at = (await http(s, 'GET', '/healthz')).body.index;
    ok(await cliFor(s, t.body.token)(['apply', '-f', '-'], { input: 'type: configuration\nnamespace: acme\nname: logged\ndata: {}\n' }));
    // Read as logger: the log shows it only its own namespace's records, so the host agent's
    // heartbeats (machine/observed, written as system) do not come between.
    const asLogger = cliFor(s, t.body.token);
    const recs = json(ok(await asLogger(['log', '--since', String(at), '-o', 'json'])));
    expect(recs).toHaveLength(1);
    expect(recs[0]).toMatchObject({ actor: 'logger', changes: [{ action: 'create', type: 'configuration', namespace: 'acme', name: 'logged' }] });
    expect(recs[0].index).toBeGreaterThan(at);
    const idx = recs[0].index as number;
    const table = ok(await asLogger(['log', '--since', String(at)]));
    expect(table.stdout).toMatch(new RegExp(`^INDEX\\s+TIME\\s+ACTOR\\s+CHANGES\\n${idx}\\s+\\S+\\s+logger\\s+create configuration acme/logged\\n$`));
  });
});

describe('tokens', () => {
  it('token create / ls / revoke; a revoked token gets 401', async () => {
    const c = ok(await os0(['token', 'create', 'erin', '-g', 'devs', '-o', 'json']));
    const t = json(c);
    expect(t).toMatchObject({ actor: 'erin', groups: ['devs'] });
    expect(t.token).toMatch(/^os0_[0-9a-f]{12}_/);
    // Table output: the token alone on stdout, the note on stderr.
    const plain = await os0(['token', 'create', 'frank']);
    expect(plain.status).toBe(0);
    expect(plain.stdout).toMatch(/^os0_[0-9a-f]{12}_[A-Za-z0-9_-]+\n$/);

    const ls = json(ok(await os0(['token', 'ls', '-o', 'json'])));
    expect(ls.find((x: { id: string }) => x.id === t.id)).toMatchObject({ id: t.id, actor: 'erin', groups: ['devs'] });
    expect(JSON.stringify(ls)).not.toContain(t.token.split('_')[2]);
    expect(ok(await os0(['token', 'ls'])).stdout).toMatch(new RegExp(`^${t.id}\\s+erin\\s+devs`, 'm'));

    // erin has no policy: the CLI says so (exit 1); with a policy she can read.
    const asErin = cliFor(s, t.token);
    fails(await asErin(['get', 'configuration', '-n', 'acme']), 1, 'os0: rejected by permission: erin may not list configuration in acme; ask an admin for a policy that grants it');
    await client(s).submit({ op: 'create', resource: { type: 'policy', name: 'devs-read', data: { subjects: ['group:devs'], rules: [{ verbs: ['get', 'list'], types: ['*'], namespaces: ['acme'] }] } } });
    expect(json(ok(await asErin(['get', 'configuration', '-n', 'acme', '-o', 'json']))).length).toBeGreaterThan(0);

    expect(ok(await os0(['token', 'revoke', t.id])).stdout).toBe(`token ${t.id} revoked\n`);
    fails(await asErin(['get', 'configuration', '-n', 'acme']), 1, /^os0: missing or unknown token/);
    expect(json(ok(await os0(['token', 'ls', '-o', 'json']))).find((x: { id: string }) => x.id === t.id)).toBeUndefined();
    fails(await os0(['token', 'revoke', t.id]), 1, /does not exist/);
  });
});

describe('os0 up', () => {
  it('refuses a data dir already in use (exit 1, clear message) and leaves the running one alone', async () => {
    const r = await cli(['up', '--data', s.dataDir, '--port', String(await freePort())]);
    fails(r, 1, `os0: ${s.dataDir} is in use by osØ process ${s.proc.pid}; stop it first or pass another --data`);
    expect((await http(s, 'GET', '/healthz')).status).toBe(200);
    expect(fs.readFileSync(path.join(s.dataDir, 'LOCK'), 'utf8')).toBe(String(s.proc.pid));
  });

  it('refuses a port in use and a bad --port', async () => {
    const dir = tempDir('up-port-');
    fails(await cli(['up', '--data', dir, '--port', String(s.port)]), 1, `os0: port ${s.port} is in use; pass --port with a free one`);
    expect(fs.existsSync(path.join(dir, 'LOCK'))).toBe(false); // released on the way out
    const bad = await cli(['up', '--data', dir, '--port', 'seventy']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--port must be a port number');
  });

  it('after kill -9, os0 up on the same dir has every acknowledged command; SIGINT exits 0', async () => {
    const x = await startOs0();
    const run = cliFor(x);
    ok(await run(['apply', '-f', '-'], { input: 'type: namespace\nname: crash\n' }));
    const docs = Array.from({ length: 8 }, (_, i) => `type: configuration\nnamespace: crash\nname: c${i}\ndata: {i: ${i}}\n`).join('---\n');
    ok(await run(['apply', '-f', '-'], { input: docs }));
    // Plus a burst of concurrent writes over HTTP, every one acknowledged before the kill.
    const api = client(x);
    const burst = await Promise.all(Array.from({ length: 40 }, (_, i) => api.post('/v1/commands', { op: 'create', resource: { type: 'configuration', namespace: 'crash', name: `b${i}`, data: { i } } })));
    for (const b of burst) expect(b.status).toBe(200);
    const index = (await http(x, 'GET', '/healthz')).body.index;

    expect((await x.kill9()).signal).toBe('SIGKILL');
    expect(fs.existsSync(path.join(x.dataDir, 'LOCK'))).toBe(true); // a stale lock a restart must take over
    await x.restart();
    // At least that index: the host agent's heartbeats (machine/observed) may have come since.
    expect((await http(x, 'GET', '/healthz')).body.index).toBeGreaterThanOrEqual(index);
    const all = json(ok(await run(['get', 'configuration', '-n', 'crash', '-o', 'json'])));
    expect(all.map((r: { name: string }) => r.name).sort()).toEqual([...Array.from({ length: 8 }, (_, i) => `c${i}`), ...Array.from({ length: 40 }, (_, i) => `b${i}`)].sort());
    expect(all.find((r: { name: string }) => r.name === 'c7').data).toEqual({ i: 7 });
    // The admin token is the same and still works; new writes continue after the old index.
    const more = await api.submit({ op: 'create', resource: { type: 'configuration', namespace: 'crash', name: 'after', data: {} } });
    expect(more.index).toBeGreaterThan(index); // heartbeats may have come in between

    const exit = await x.stop('SIGINT');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(fs.existsSync(path.join(x.dataDir, 'LOCK'))).toBe(false);
    expect(x.stderr()).toContain('SIGINT');
  });

  it('kill -9 with writes in flight: every acknowledged one is there after the restart', async () => {
    const x = await startOs0();
    const api = client(x);
    await api.submit({ op: 'create', resource: { type: 'namespace', name: 'inflight' } });
    const acked: string[] = [];
    let stop = false;
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const name = `w${w}-${i}`;
        try {
          const r = await api.post('/v1/commands', { op: 'create', resource: { type: 'configuration', namespace: 'inflight', name, data: {} } });
          if (r.status === 200) acked.push(name);
        } catch {
          return; // the server went away mid-request: not acknowledged
        }
      }
    };
    const writers = Array.from({ length: 16 }, (_, w) => writer(w));
    while (acked.length < 60) await new Promise((r) => setTimeout(r, 5));
    await x.kill9();
    stop = true;
    await Promise.all(writers);
    await x.restart();
    const present = new Set((await api.get('/v1/resources?type=configuration&namespace=inflight')).body.map((r: { name: string }) => r.name));
    const lost = acked.filter((n) => !present.has(n));
    expect(lost).toEqual([]);
    expect(acked.length).toBeGreaterThanOrEqual(60);
    await x.stop();
  });

  it('prints a ready line with the URL and writes admin.token with mode 0600', async () => {
    expect(s.stdout()).toMatch(new RegExp(`ready.*${s.url.replace(/[.]/g, '\\.')}`));
    expect(fs.statSync(path.join(s.dataDir, 'admin.token')).mode & 0o777).toBe(0o600);
  });
});
