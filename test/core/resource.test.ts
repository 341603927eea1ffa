import { describe, expect, it } from 'vitest';
import { checkCommand, checkSubmission, LIMITS, newId } from '../../core/resource.ts';
import { OsError } from '../../core/errors.ts';

const cmd = (resource: Record<string, unknown>, op = 'create') => ({ op, resource });

function rejects(raw: unknown, pattern: RegExp): void {
  let err: unknown;
  try {
    checkSubmission(raw);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(OsError);
  expect((err as OsError).message).toMatch(pattern);
  expect((err as OsError).message).not.toContain('\n');
}

describe('command validation', () => {
  it('accepts a well-formed command and normalises it', () => {
    const c = checkCommand(cmd({ type: 'configuration', namespace: 'acme/prod', name: 'web-1', tags: { role: 'web' }, data: { a: 1 } }));
    expect(c.op).toBe('create');
    expect(c.resource).toMatchObject({ type: 'configuration', namespace: 'acme/prod', name: 'web-1', tags: { role: 'web' }, data: { a: 1 } });
  });

  it('defaults namespace to cluster-wide and data to {}', () => {
    const c = checkCommand(cmd({ type: 'namespace', name: 'acme/prod' }));
    expect(c.resource.namespace).toBe('');
    expect(c.resource.data).toEqual({});
  });

  it.each([
    [null, /must be an object/],
    [{ op: 'explode', resource: {} }, /op must be one of create, update, apply, delete/],
    [cmd({ type: 'Bad Type', name: 'x' }), /type "Bad Type"/],
    [cmd({ type: 'configuration', name: 'Web_1!' }), /name "Web_1!"/],
    [cmd({ type: 'configuration', name: '' }), /name is required/],
    [cmd({ type: 'configuration', name: 'x'.repeat(300) }), /longer than 253/],
    [cmd({ type: 'configuration', namespace: 'Acme//prod', name: 'x' }), /not a path of DNS labels/],
    [cmd({ type: 'configuration', namespace: '/acme', name: 'x' }), /not a path of DNS labels/],
    [cmd({ type: 'configuration', namespace: Array(20).fill('a').join('/'), name: 'x' }), /deeper than 16/],
    [cmd({ type: 'namespace', namespace: 'acme', name: 'prod' }), /cluster-wide/],
    [cmd({ type: 'configuration', name: 'x', tags: { 'bad key!': 'v' } }), /tag key "bad key!"/],
    [cmd({ type: 'configuration', name: 'x', tags: { k: 5 } }), /tag "k" must have a string value/],
    [cmd({ type: 'configuration', name: 'x', tags: ['a'] }), /tags must be an object/],
    [cmd({ type: 'configuration', name: 'x', apiVersion: 'v2' }), /apiVersion must be os0\/v1/],
    [cmd({ type: 'configuration', name: 'x', owner: 'abc' }), /owner must be a list/],
    [cmd({ type: 'configuration', name: 'x', cost: -1 }), /cost must be a non-negative number/],
    [{ ...cmd({ type: 'configuration', name: 'x' }), expect: 1.5 }, /expect must be a revision/],
    [{ batch: [] }, /non-empty list/],
    [{ batch: [cmd({ type: 'configuration', name: 'ok' }), cmd({ type: 'configuration', name: 'NO' })] }, /batch\[1\]\.resource: name "NO"/],
  ])('refuses %j with a one-line reason', (raw, pattern) => rejects(raw, pattern));

  it('refuses a batch over the size limit', () => {
    const batch = Array.from({ length: LIMITS.batchCommands + 1 }, (_, i) => cmd({ type: 'configuration', name: `c${i}` }));
    rejects({ batch }, /at most 1000 commands/);
  });

  it('accepts delete by id without a name', () => {
    const c = checkCommand({ op: 'delete', resource: { type: 'configuration', id: 'abc' } });
    expect(c.resource.id).toBe('abc');
  });
});

describe('ids', () => {
  it('are unique, 20 characters, and sort by creation time', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 100_000; i++) ids.add(newId(1_700_000_000_000 + Math.floor(i / 1000)));
    expect(ids.size).toBe(100_000);
    const a = newId(1_700_000_000_000);
    const b = newId(1_800_000_000_000);
    expect(a.length).toBe(20);
    expect(a < b).toBe(true);
  });
});
