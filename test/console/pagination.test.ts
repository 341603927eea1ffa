/**
 * Lists page over real HTTP: `limit` and a `continue` token that keeps every page at the first
 * page's log index (changes made between pages are undone from the log), a token whose index left
 * the retained log answers 409 "re-list", and `os0 get` pages through to the whole list.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient, Listed } from '../../core/api/client/index.ts';
import { openInstance, type TestInstance } from '../helpers/instance.ts';

let inst: TestInstance;
let api: ApiClient;
const conf = (namespace: string, name: string, v = 0) => ({ op: 'apply' as const, resource: { type: 'configuration', namespace, name, data: { v } } });
const names = (l: Listed[]) => l.map((r) => `${r.namespace}/${r.name}`);

beforeAll(async () => {
  inst = await openInstance();
  api = inst.client();
  await api.submit({ op: 'create', resource: { type: 'namespace', name: 'pg' } });
  await api.submit({ op: 'create', resource: { type: 'namespace', name: 'pg/in' } });
  await api.submit({ batch: Array.from({ length: 25 }, (_, i) => conf(i % 2 ? 'pg' : 'pg/in', `c${String(i).padStart(2, '0')}`)) });
});

describe('list pagination', () => {
  it('pages in key order and ends without a token; the pages join into the unpaged list', async () => {
    const whole = (await api.list({ type: 'configuration', namespace: 'pg' })).items;
    expect(whole).toHaveLength(25);
    const pages: Listed[][] = [];
    let token: string | undefined;
    const indexes = new Set<number>();
    do {
      const p = await api.listPage({ type: 'configuration', namespace: 'pg', limit: 10, continue: token });
      pages.push(p.items);
      indexes.add(p.index);
      token = p.continue;
    } while (token);
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
    expect(names(pages.flat())).toEqual(names(whole));
    expect(indexes.size).toBe(1);
  });

  it('later pages show the tree at the first page\'s index: creates, updates and deletes made since are undone', async () => {
    const first = await api.listPage({ type: 'configuration', namespace: 'pg', limit: 5 });
    const before = (await api.list({ type: 'configuration', namespace: 'pg' })).items;
    // Change things after the first page: a new one, an update, a delete (all past the first page).
    await api.submit(conf('pg', 'zz-new'));
    await api.submit(conf('pg', 'c23', 99));
    await api.submit({ op: 'delete', resource: { type: 'configuration', namespace: 'pg', name: 'c21' } });
    const rest: Listed[] = [];
    let token = first.continue;
    while (token) {
      const p = await api.listPage({ type: 'configuration', namespace: 'pg', limit: 7, continue: token });
      expect(p.index).toBe(first.index);
      rest.push(...p.items);
      token = p.continue;
    }
    const got = [...first.items, ...rest];
    expect(names(got)).toEqual(names(before));
    expect(got.find((r) => r.name === 'c23')!.data).toEqual({ v: 0 });
    // A fresh list sees the changes.
    const now = await api.listPage({ type: 'configuration', namespace: 'pg', limit: 100 });
    expect(now.index).toBeGreaterThan(first.index);
    expect(names(now.items)).toContain('pg/zz-new');
    expect(names(now.items)).not.toContain('pg/c21');
  });

  it('a token that is not the server\'s is a one-line 400; one beyond the log is a 409 "re-list"', async () => {
    const bad = await fetch(`${inst.url}/v1/resources?type=configuration&limit=2&continue=nonsense`, { headers: { authorization: `Bearer ${inst.adminToken}` } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/continue token .* list again/);
    const future = Buffer.from(JSON.stringify({ i: 1e9, k: '' })).toString('base64url');
    const far = await fetch(`${inst.url}/v1/resources?type=configuration&limit=2&continue=${future}`, { headers: { authorization: `Bearer ${inst.adminToken}` } });
    expect(far.status).toBe(409);
    expect(((await far.json()) as { error: { message: string } }).error.message).toMatch(/re-list$/);
  });

  it('a token whose index left the retained log answers 409 "re-list"', async () => {
    const small = await openInstance({ retainRecords: 20, historyRecords: 8, segmentBytes: 2048 });
    const sapi = small.client();
    await sapi.submit({ op: 'create', resource: { type: 'namespace', name: 'tiny' } });
    for (let i = 0; i < 10; i++) await sapi.submit(conf('tiny', `c${i}`));
    const first = await sapi.listPage({ type: 'configuration', namespace: 'tiny', limit: 3 });
    expect(first.continue).toBeTruthy();
    let status = 0;
    let message = '';
    // Write on until the first page's index is compacted away (segments drop in the background).
    for (let i = 0; i < 400 && status !== 409; i++) {
      await sapi.submit(conf('tiny', `more${i % 50}`, i));
      if (i < 100) continue;
      try {
        await sapi.listPage({ type: 'configuration', namespace: 'tiny', limit: 3, continue: first.continue });
      } catch (e) {
        status = (e as { status: number }).status;
        message = (e as Error).message;
      }
    }
    expect(status).toBe(409);
    expect(message).toMatch(/older than the retained log .*re-list$/);
  });

  it('a narrow token pages only through what it may see', async () => {
    await api.submit({ op: 'create', resource: { type: 'policy', name: 'pg-in-only', data: { subjects: ['user:pager'], rules: [{ verbs: ['get', 'list', 'watch'], types: ['*'], namespaces: ['pg/in'] }] } } });
    const t = await api.createToken('pager');
    const p = await api.as(t.token).listPage({ type: 'configuration', namespace: 'pg/in', limit: 4 });
    const all: Listed[] = [...p.items];
    let token = p.continue;
    while (token) {
      const n = await api.as(t.token).listPage({ type: 'configuration', namespace: 'pg/in', limit: 4, continue: token });
      all.push(...n.items);
      token = n.continue;
    }
    expect(all.length).toBe(13);
    expect(all.every((r) => r.namespace === 'pg/in')).toBe(true);
    await expect(api.as(t.token).listPage({ type: 'configuration', namespace: 'pg', exact: true, limit: 4 })).rejects.toMatchObject({ status: 403 });
  });

  it('os0 get pages through the whole list', async () => {
    await api.submit({ op: 'create', resource: { type: 'namespace', name: 'many' } });
    for (let b = 0; b < 3; b++) await api.submit({ batch: Array.from({ length: 400 }, (_, i) => conf('many', `m${b}-${String(i).padStart(3, '0')}`)) });
    const bin = path.resolve('sdk/cli/bin.js');
    const { stdout } = await promisify(execFile)(process.execPath, [bin, 'get', 'configuration', '-n', 'many', '-o', 'json'], {
      env: { ...process.env, OS0_URL: inst.url, OS0_TOKEN: inst.adminToken },
      maxBuffer: 64 << 20,
    });
    const list = JSON.parse(stdout) as Listed[];
    expect(list).toHaveLength(1200);
    expect(list[0].name).toBe('m0-000');
    expect(list[1199].name).toBe('m2-399');
  });
});
