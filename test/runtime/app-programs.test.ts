/** Apps' filters (fail closed) and handlers, run in the sandbox around a real System. */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OsError } from '../../core/errors.ts';
import { System } from '../../core/system.ts';
import type { Actor } from '../../core/auth/permission.ts';
import { Sandbox } from '../../runtime/sandbox/index.ts';
import { AppFilters, Invoker, loadAppFolder } from '../../runtime/invoke/index.ts';
import { tempDir } from '../helpers/tmp.ts';

let sys: System;
let sandbox: Sandbox;
let admin: Actor;
let filters: AppFilters;
let invoker: Invoker;

beforeAll(async () => {
  const dir = tempDir();
  filters = new AppFilters();
  sys = await System.open({ dir, filters: [filters] });
  admin = sys.authenticate(sys.adminToken);
  sandbox = new Sandbox({ processes: 1 });
  filters.attach(sandbox);
  invoker = new Invoker(sys, sandbox);
  invoker.add(await loadAppFolder(path.join(import.meta.dirname, 'apps', 'guard'), { cacheDir: path.join(dir, 'cache') }), filters);
  for (const ns of ['a', 'b']) await sys.submit({ op: 'create', resource: { type: 'namespace', name: ns } }, admin);
});
afterAll(async () => {
  await sandbox?.close();
  await sys?.close();
});

async function refusal(p: Promise<unknown>): Promise<OsError> {
  try {
    await p;
  } catch (e) {
    return e as OsError;
  }
  throw new Error('expected a refusal');
}

describe('app filters', () => {
  it('refuse with the reason the program gives, naming the app filter, and write nothing', async () => {
    const at = sys.core.index;
    const e = await refusal(sys.submit({ op: 'create', resource: { type: 'configuration', namespace: 'b', name: 'forbidden-x' } }, admin));
    expect(e.message).toBe('rejected by guard.names: admin may not name a configuration forbidden-x');
    expect(e.filter).toBe('guard.names');
    expect(sys.core.index).toBe(at);
    await sys.submit({ op: 'create', resource: { type: 'configuration', namespace: 'b', name: 'fine' } }, admin);
    expect(sys.core.get('configuration', 'fine', 'b')).toBeDefined();
  });

  it('fail closed: a filter that throws refuses the commands it covers, and only those', async () => {
    const e = await refusal(sys.submit({ op: 'create', resource: { type: 'secret', namespace: 'b', name: 's' } }, admin));
    expect(e.message).toMatch(/^rejected by guard\.broken: the filter failed \(Error: this filter is broken.*\), so the command is refused$/);
    expect(sys.core.get('secret', 's', 'b')).toBeUndefined();
  });
});

describe('app handlers', () => {
  it('run after apply on matching changes, writing with the app manifest permissions', async () => {
    await sys.submit({ op: 'create', resource: { type: 'configuration', namespace: 'a', name: 'web' } }, admin);
    await sys.submit({ op: 'create', resource: { type: 'configuration', namespace: 'b', name: 'elsewhere' } }, admin);
    const end = Date.now() + 10_000;
    while (!sys.core.get('configuration', 'web-seen', 'a') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(sys.core.get('configuration', 'web-seen', 'a')?.data).toEqual({ of: 'web' });
    expect(sys.core.get('configuration', 'elsewhere-seen', 'b')).toBeUndefined();
    const status = sys.handlers.status().find((h) => h.name === 'guard.mirror')!;
    expect(status.failures).toBe(0);
  });
});
