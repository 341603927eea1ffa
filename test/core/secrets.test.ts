/**
 * Secrets sealed at rest: no plaintext anywhere in the data directory (WAL, sstables, every
 * file) after writes, updates, rotation and deletes, nor in history, watches, handler events,
 * the log or metrics; reveal needs its verb; a ciphertext moved onto another secret does not
 * open; a missing or wrong key file refuses to start and loses nothing; a kill -9 in the middle
 * of a key rotation loses nothing.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Api } from '../../core/api/server.ts';
import { ADMIN_GROUP, type Actor } from '../../core/auth/permission.ts';
import { REDACTED } from '../../core/secrets/secrets.ts';
import { System } from '../../core/system.ts';
import { refused } from '../helpers/errors.ts';
import { cliFor, client, http, sse, startOs0, until } from '../helpers/os0.ts';
import { tempDir } from '../helpers/tmp.ts';

const admin: Actor = { name: 'admin', groups: [ADMIN_GROUP] };
const SYSTEM: Actor = { name: 'system', groups: [] };
const plain = (): string => `PLAIN-${randomBytes(12).toString('hex')}`;

/** Every file below dir, as bytes. */
function filesOf(dir: string): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push([p, fs.readFileSync(p)]);
    }
  };
  walk(dir);
  return out;
}

function expectNowhere(dir: string, values: string[]): void {
  const hits: string[] = [];
  for (const [file, bytes] of filesOf(dir)) {
    for (const v of values) {
      // As written, and as JSON would escape or base64 would encode it.
      for (const form of [v, Buffer.from(v).toString('base64'), Buffer.from(v).toString('base64url')]) if (bytes.includes(form)) hits.push(`${path.relative(dir, file)}: ${v}`);
    }
  }
  expect(hits).toEqual([]);
}

describe('sealed secrets', () => {
  const dir = path.join(tempDir('secrets-'), 'data');
  let sys: System;
  let api: Api;
  let url: string;
  const values: string[] = [];

  beforeAll(async () => {
    sys = await System.open({ dir });
    api = new Api(sys);
    url = `http://127.0.0.1:${await api.listen(0)}`;
    await sys.submit({ op: 'create', resource: { type: 'namespace', name: 'prod' } }, admin);
  });
  afterAll(async () => {
    await api.close();
    await sys.close();
  });

  it('leave no plaintext in any file, the history, a watch, a handler event, the log or metrics', async () => {
    const tok = sys.adminToken!;
    const w = await sse({ url, token: tok }, `/v1/watch?type=secret&since=${sys.core.index}`);
    await http({ url, token: tok }, 'POST', '/v1/handlers', { name: 'sec-h', query: { type: 'secret' } });
    for (let i = 0; i < 20; i++) {
      const v = [plain(), plain()];
      values.push(...v);
      await sys.submit({ op: 'apply', resource: { type: 'secret', namespace: 'prod', name: `s${i}`, data: { user: v[0], password: v[1] } } }, admin);
    }
    for (let i = 0; i < 20; i += 2) {
      const v = plain();
      values.push(v);
      await sys.submit({ op: 'apply', resource: { type: 'secret', namespace: 'prod', name: `s${i}`, data: { user: v, password: REDACTED } } }, admin);
    }
    const before = sys.keyring.current;
    await sys.rotateKey(admin);
    await sys.resealed();
    expect(sys.keyStatus()).toEqual({ current: expect.not.stringMatching(before), keys: [sys.keyring.current], resealing: 0 });
    for (let i = 15; i < 20; i++) await sys.submit({ op: 'delete', resource: { type: 'secret', namespace: 'prod', name: `s${i}` } }, admin);
    await sys.core.checkpoint();

    expectNowhere(dir, values);
    const history = JSON.stringify(sys.core.history.read(1, 100_000));
    for (const v of values) expect(history).not.toContain(v);
    const events = await w.take(45, 'change');
    w.close();
    for (const e of events) {
      for (const v of values) expect(e.data).not.toContain(v);
      if (e.json.action !== 'delete') expect(Object.values(e.json.resource.data).every((x) => x === REDACTED)).toBe(true);
    }
    const polled = await http({ url, token: tok }, 'GET', '/v1/handlers/sec-h/events?max=1000');
    expect(polled.body.events.length).toBeGreaterThan(40);
    const log = await http({ url, token: tok }, 'GET', '/v1/log?since=0&limit=10000');
    const metrics = await http({ url, token: tok }, 'GET', '/metrics');
    for (const v of values) {
      expect(polled.text).not.toContain(v);
      expect(log.text).not.toContain(v);
      expect(metrics.text).not.toContain(v);
    }
    // And yet every value is there for those who may reveal it: s0 updated, s1 as first written.
    expect(sys.reveal(admin, 'prod', 's0')).toEqual({ user: values[40], password: values[1] });
    expect(sys.reveal(admin, 'prod', 's1')).toEqual({ user: values[2], password: values[3] });
  });

  it('show keys with redacted values; values need the reveal verb', async () => {
    const reader = await sys.createToken(admin, 'reader', []);
    const revealer = await sys.createToken(admin, 'revealer', []);
    await sys.submit({ op: 'create', resource: { type: 'policy', name: 'readers', data: { subjects: ['user:reader', 'user:revealer'], rules: [{ verbs: ['get', 'list'], types: ['secret'], namespaces: ['prod'] }] } } }, admin);
    await sys.submit({ op: 'create', resource: { type: 'policy', name: 'revealers', data: { subjects: ['user:revealer'], rules: [{ verbs: ['reveal'], types: ['secret'], namespaces: ['prod'] }] } } }, admin);
    const r = await http({ url, token: reader.token }, 'GET', '/v1/resources?type=secret&namespace=prod&name=s1');
    expect(r.body.data).toEqual({ password: REDACTED, user: REDACTED });
    const no = await http({ url, token: reader.token }, 'GET', '/v1/resources?type=secret&namespace=prod&name=s1&reveal=true');
    expect(no.status).toBe(403);
    expect(no.text).not.toContain(values[2]);
    const yes = await http({ url, token: revealer.token }, 'GET', '/v1/resources?type=secret&namespace=prod&name=s1&reveal=true');
    expect(yes.status, yes.text).toBe(200);
    expect(yes.body.data).toEqual({ user: values[2], password: values[3] });
  });

  it('refuse what is not {KEY: "value"}, without echoing values', async () => {
    const v = plain();
    for (const data of [{ k: 1 }, { k: { v } }, [v], { 'bad key': v }, { k: 'x'.repeat(70_000) + v }]) {
      const m = await refused(sys.submit({ op: 'create', resource: { type: 'secret', namespace: 'prod', name: 'bad', data } }, admin));
      expect(m).not.toContain(v);
    }
    // The sealed form itself is the kernel's to write.
    const sealed = sys.core.get('secret', 's1', 'prod')!.data;
    await refused(sys.submit({ op: 'create', resource: { type: 'secret', namespace: 'prod', name: 'forged', data: sealed } }, admin));
  });

  it('do not open once moved onto another secret', async () => {
    const sealed = sys.core.get('secret', 's1', 'prod')!.data;
    await sys.submit({ op: 'create', resource: { type: 'secret', namespace: 'prod', name: 'moved', data: sealed } }, SYSTEM);
    const m = await refused(Promise.resolve().then(() => sys.reveal(admin, 'prod', 'moved')));
    expect(m).toMatch(/does not open/);
    await sys.submit({ op: 'delete', resource: { type: 'secret', namespace: 'prod', name: 'moved' } }, SYSTEM);
  });
});

describe('the key file', () => {
  it('missing or wrong: refuses to start with one line, and nothing is lost', async () => {
    const root = tempDir('kek-');
    const dir = path.join(root, 'data');
    const other = path.join(root, 'other');
    let sys = await System.open({ dir });
    const v = plain();
    await sys.submit({ op: 'create', resource: { type: 'namespace', name: 'prod' } }, admin);
    await sys.submit({ op: 'create', resource: { type: 'secret', namespace: 'prod', name: 'db', data: { password: v } } }, admin);
    const index = sys.core.index;
    await sys.close();
    (await System.open({ dir: other })).close();
    const key = path.join(dir, 'secrets.key');
    expect(fs.statSync(key).mode & 0o777).toBe(0o600);
    fs.renameSync(key, key + '.saved');
    const missing = await refused(System.open({ dir }));
    expect(missing).toMatch(/secrets\.key is missing/);
    fs.copyFileSync(path.join(other, 'secrets.key'), key);
    const wrong = await refused(System.open({ dir }));
    expect(wrong).toMatch(/secrets\.key (lacks|holds a different) key/);
    fs.renameSync(key + '.saved', key);
    sys = await System.open({ dir });
    expect(sys.core.index).toBe(index);
    expect(sys.reveal(admin, 'prod', 'db')).toEqual({ password: v });
    await sys.close();
  });
});

describe('a key rotation killed -9 half-way', () => {
  it('loses nothing: every secret opens after the restart, and the rotation finishes', async () => {
    const s = await startOs0();
    const api = client(s);
    await api.submit({ op: 'create', resource: { type: 'namespace', name: 'prod' } });
    const want = new Map<string, string>();
    for (let b = 0; b < 3; b++) {
      const batch = [];
      for (let i = 0; i < 200; i++) {
        const name = `s${b}-${i}`;
        const v = plain();
        want.set(name, v);
        batch.push({ op: 'create', resource: { type: 'secret', namespace: 'prod', name, data: { v } } });
      }
      await api.submit({ batch });
    }
    const rot = await api.post('/v1/secrets/rotate-key', {});
    expect(rot.status, rot.text).toBe(200);
    expect(rot.body.resealing).toBe(600);
    const seen = await until(async () => {
      const k = (await api.get('/v1/secrets/key')).body;
      return k.resealing < 600 ? k : null;
    }, 20_000, 'the rotation to start');
    await s.kill9();
    expect(seen.resealing).toBeGreaterThan(0); // it was killed mid-way
    await s.restart();
    const names = [...want.keys()];
    for (let at = 0; at < names.length; at += 50) {
      await Promise.all(
        names.slice(at, at + 50).map(async (name) => {
          const r = await api.get(`/v1/resources?type=secret&namespace=prod&name=${name}&reveal=true`);
          expect(r.status, r.text).toBe(200);
          expect(r.body.data).toEqual({ v: want.get(name) });
        }),
      );
    }
    const done = await until(async () => {
      const k = (await api.get('/v1/secrets/key')).body;
      return k.resealing === 0 && k.keys.length === 1 ? k : null;
    }, 30_000, 'the rotation to finish');
    expect(done.current).toBe(rot.body.key);
    expectNowhere(s.dataDir, [...want.values()]);
    // The CLI: set (a value from a file too), get shows keys redacted, --reveal the values.
    const os0 = cliFor(s);
    const file = path.join(s.dataDir, '..', `tls-${process.pid}.pem`);
    const pw = plain();
    fs.writeFileSync(file, 'CERT');
    const set = await os0(['secret', 'set', 'db', '-n', 'prod', `password=${pw}`, '--from-file', `tls=${file}`]);
    fs.rmSync(file);
    expect(set.status, set.stderr).toBe(0);
    expect(set.stdout).not.toContain(pw);
    const got = await os0(['get', 'secret', 'db', '-n', 'prod', '-o', 'json']);
    expect(JSON.parse(got.stdout).data).toEqual({ password: REDACTED, tls: REDACTED });
    const shown = await os0(['get', 'secret', 'db', '-n', 'prod', '--reveal', '-o', 'json']);
    expect(JSON.parse(shown.stdout).data).toEqual({ password: pw, tls: 'CERT' });
    const bad = await os0(['secret', 'set', 'db', 'x=y']);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    await s.stop();
  });
});
