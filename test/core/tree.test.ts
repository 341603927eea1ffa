import { describe, expect, it } from 'vitest';
import { Tree } from '../../core/tree/tree.ts';
import type { Resource } from '../../core/resource.ts';
import { parseSelector, residual, selects } from '../../core/tree/selector.ts';

let seq = 0;
const res = (namespace: string, type: string, name: string, tags: Record<string, string> = {}, id = `id${++seq}`): Resource => ({
  apiVersion: 'os0/v1',
  id,
  namespace,
  type,
  name,
  created: 't',
  updated: 't',
  revision: seq,
  tags,
  data: {},
});
const names = (rs: Resource[]) => rs.map((r) => `${r.namespace}/${r.type}/${r.name}`).sort();

describe('tree and indexes', () => {
  const t = new Tree();
  t.put(res('acme', 'configuration', 'a', { role: 'web', env: 'prod' }));
  t.put(res('acme/prod', 'configuration', 'b', { role: 'web', env: 'prod' }));
  t.put(res('acme/prod/eu', 'machine', 'm1', { role: 'db' }));
  t.put(res('acmex', 'configuration', 'c', { role: 'web' }));
  t.put(res('', 'namespace', 'acme'));

  it('gets by (namespace, type, name) and by id', () => {
    const b = t.get('acme/prod', 'configuration', 'b')!;
    expect(b.name).toBe('b');
    expect(t.getById(b.id)).toBe(b);
    expect(t.get('acme/prod', 'configuration', 'zzz')).toBeUndefined();
    expect(t.get('nope', 'configuration', 'b')).toBeUndefined();
  });

  it('queries by namespace prefix without matching a sibling that shares the prefix text', () => {
    expect(names(t.query({ namespace: 'acme' }))).toEqual(['acme/configuration/a', 'acme/prod/configuration/b', 'acme/prod/eu/machine/m1']);
    expect(names(t.query({ namespace: 'acme', exact: true }))).toEqual(['acme/configuration/a']);
    expect(t.query({}).length).toBe(5);
  });

  it('queries by type, tags and combinations', () => {
    expect(names(t.query({ type: 'configuration' }))).toEqual(['acme/configuration/a', 'acme/prod/configuration/b', 'acmex/configuration/c']);
    expect(names(t.query({ tags: { role: 'web', env: 'prod' } }))).toEqual(['acme/configuration/a', 'acme/prod/configuration/b']);
    expect(names(t.query({ tags: { role: 'web' }, namespace: 'acme/prod' }))).toEqual(['acme/prod/configuration/b']);
    expect(names(t.query({ tags: { role: 'db' }, type: 'configuration' }))).toEqual([]);
    expect(t.query({ tags: { role: 'nobody' } })).toEqual([]);
    expect(t.query({ type: 'configuration', limit: 2 }).length).toBe(2);
    expect(t.count('configuration', 'acme')).toBe(2);
  });

  it('keeps indexes right through update and delete', () => {
    const old = t.get('acme', 'configuration', 'a')!;
    t.put({ ...old, tags: { role: 'api' }, revision: 99 });
    expect(names(t.query({ tags: { role: 'web' } }))).toEqual(['acme/prod/configuration/b', 'acmex/configuration/c']);
    expect(names(t.query({ tags: { role: 'api' } }))).toEqual(['acme/configuration/a']);
    expect(t.query({ tags: { env: 'prod' } }).length).toBe(1);
    expect(t.delete('acme/prod/eu', 'machine', 'm1')?.name).toBe('m1');
    expect(t.query({ type: 'machine' })).toEqual([]);
    expect(t.query({ namespace: 'acme/prod/eu' })).toEqual([]);
    expect(t.query({ tags: { role: 'db' } })).toEqual([]);
    expect(t.delete('acme/prod/eu', 'machine', 'm1')).toBeUndefined();
    expect(t.size).toBe(4);
  });

  it('answers gets and selective queries from the indexes, never by scanning', () => {
    const big = new Tree();
    let reads = 0;
    // Every resource counts the reads of its fields: a scan would read all 20,000 of them.
    const counted = (r: Resource): Resource => new Proxy(r, { get: (o, k) => (reads++, Reflect.get(o, k)) });
    for (let i = 0; i < 20_000; i++) big.put(res(`ns${i % 50}`, 'configuration', `r${i}`, { group: `g${i % 2000}` }));
    const all = big.query({});
    for (const r of all) big.put(counted(r));
    reads = 0;
    expect(big.query({ tags: { group: 'g7' } }).length).toBe(10);
    expect(reads).toBeLessThan(10 * 6);
    reads = 0;
    expect(big.get('ns7', 'configuration', 'r7')?.name).toBe('r7');
    expect(big.query({ namespace: 'ns3', type: 'configuration' }).length).toBe(400);
    expect(reads).toBeLessThan(5);
  });
});

describe('tag selectors (k=v, k!=v, k, !k)', () => {
  const t = new Tree();
  t.put(res('shop', 'configuration', 'web', { role: 'web', canary: 'yes' }));
  t.put(res('shop', 'configuration', 'db', { role: 'db' }));
  t.put(res('shop/eu', 'configuration', 'cache', { role: 'cache', legacy: '1' }));
  t.put(res('shop', 'machine', 'm', { canary: 'no' }));
  t.put(res('other', 'configuration', 'plain'));
  const q = (s: string, extra: Record<string, unknown> = {}) => {
    const sel = parseSelector(s)!;
    return names(t.query({ tags: sel.equal, select: residual(sel), ...extra }));
  };

  it('parses every form and refuses what is none of them', () => {
    expect(parseSelector('role=web,tier!=db,canary,!legacy')).toEqual({ equal: { role: 'web' }, notEqual: { tier: 'db' }, present: ['canary'], absent: ['legacy'] });
    expect(parseSelector('a==b')).toEqual({ equal: { a: 'b' } });
    expect(parseSelector('')).toBeUndefined();
    for (const bad of ['=v', '!=v', '!', 'a,,b', 'k v']) expect(() => parseSelector(bad), bad).toThrow(/must be key=value, key!=value, key or !key/);
    expect(() => parseSelector('a=1,a=2')).toThrow(/nothing can match both/);
  });

  it('answers each form, alone and combined with type and namespace', () => {
    expect(q('canary')).toEqual(['shop/configuration/web', 'shop/machine/m']);
    expect(q('canary', { type: 'configuration' })).toEqual(['shop/configuration/web']);
    expect(q('canary=no')).toEqual(['shop/machine/m']);
    expect(q('!canary', { namespace: 'shop' })).toEqual(['shop/configuration/db', 'shop/eu/configuration/cache']);
    expect(q('role!=web', { type: 'configuration' })).toEqual(['other/configuration/plain', 'shop/configuration/db', 'shop/eu/configuration/cache']);
    expect(q('role,role!=web,!legacy')).toEqual(['shop/configuration/db']);
    expect(q('nosuchkey')).toEqual([]);
    expect(q('role=web,!canary')).toEqual([]);
  });

  it('matches one resource the same way the query does', () => {
    const sel = parseSelector('role!=db,!legacy')!;
    expect(selects(sel, { role: 'web' })).toBe(true);
    expect(selects(sel, {})).toBe(true);
    expect(selects(sel, { role: 'db' })).toBe(false);
    expect(selects(sel, { legacy: '' })).toBe(false);
  });
});
