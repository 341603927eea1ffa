/** Dependency resolution over registry metadata (pure: the metadata is data, not a service). */
import { describe, expect, it } from 'vitest';
import type { AppMetadata } from '../../registry/client/types.ts';
import { resolve, type MetadataSource } from '../../store/resolve.ts';
import { refused } from '../helpers/errors.ts';

/** {app: {version: {dep: range}}}, with `!` after a version to yank it. */
function registry(apps: Record<string, Record<string, Record<string, string>>>): MetadataSource & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    async metadata(name) {
      asked.push(name);
      const versions = apps[name];
      if (!versions) throw new Error(`no app ${name}`);
      const md: AppMetadata = { type: 'os0-app-metadata-v1', name, issued: '', expires: '', owner: 'o', distTags: {}, keys: [], versions: {} };
      for (const [v, deps] of Object.entries(versions)) {
        const version = v.replace(/!$/, '');
        md.versions[version] = { version, digest: '', integrity: '', size: 0, keyId: '', published: '', yanked: v.endsWith('!'), dependencies: deps };
      }
      return md;
    },
  };
}

const you = (name: string, range = '*') => ({ name, range, by: 'you' });
const names = (r: { name: string; version: string }[]) => r.map((x) => `${x.name}@${x.version}`);

describe('resolve', () => {
  it('picks the highest non-yanked versions, dependencies first, shared ones once', async () => {
    const reg = registry({
      top: { '1.0.0': { a: '^1', b: '^1' } },
      a: { '1.0.0': { c: '^1' }, '1.1.0': { c: '^1' } },
      b: { '1.0.0': { c: '>=1.1' } },
      c: { '1.0.0': {}, '1.1.0': {}, '1.2.0!': {} },
    });
    expect(names(await resolve(reg, you('top'), new Map()))).toEqual(['c@1.1.0', 'a@1.1.0', 'b@1.0.0', 'top@1.0.0']);
    expect(reg.asked.filter((n) => n === 'c')).toEqual(['c']);
  });

  it('drops the ranges of a version it replaced, so a solution found later is not refused', async () => {
    const reg = registry({
      r: { '1.0.0': { a: '^1', b: '^1' } },
      a: { '1.1.0': { c: '^2' }, '1.2.0': { c: '^1' } },
      b: { '1.0.0': { a: '<1.2' } },
      c: { '1.0.0': {}, '2.0.0': {} },
    });
    expect(names(await resolve(reg, you('r'), new Map()))).toEqual(['c@2.0.0', 'a@1.1.0', 'b@1.0.0', 'r@1.0.0']);
  });

  it('names the clash: between ranges, and with what is installed', async () => {
    const reg = registry({ top: { '1.0.0': { a: '^1', b: '^1' } }, a: { '1.0.0': { c: '^1' } }, b: { '1.0.0': { c: '^2' } }, c: { '1.0.0': {}, '2.0.0': {} } });
    expect(await refused(resolve(reg, you('top'), new Map()))).toBe('no version of c satisfies a@1.0.0 needs ^1, b@1.0.0 needs ^2; it has 1.0.0, 2.0.0');
    const reg2 = registry({ top: { '1.0.0': { c: '^2' } }, c: { '2.0.0': {} } });
    expect(await refused(resolve(reg2, you('top'), new Map([['c', '1.0.0']])))).toBe('top@1.0.0 needs c@^2, but c@1.0.0 is installed; upgrade it first (os0 upgrade c@^2)');
    expect(names(await resolve(reg2, you('top'), new Map([['c', '2.0.0']])))).toEqual(['top@1.0.0']);
  });

  it('refuses cycles, self-dependencies, bad ranges and what does not exist', async () => {
    expect(await refused(resolve(registry({ a: { '1.0.0': { b: '^1' } }, b: { '1.0.0': { a: '^1' } } }), you('a'), new Map()))).toBe('dependency cycle: a → b → a');
    expect(await refused(resolve(registry({ a: { '1.0.0': { a: '^1' } } }), you('a'), new Map()))).toBe('a@1.0.0 depends on itself');
    expect(await refused(resolve(registry({ a: { '1.0.0': { b: 'soon' } } }), you('a'), new Map()))).toBe('a@1.0.0 asks for b@"soon", which is not a semver range');
    expect(await refused(resolve(registry({ a: { '1.0.0': {} } }), you('a', '^2'), new Map()))).toBe('no version of a satisfies ^2; it has 1.0.0');
    expect(await refused(resolve(registry({}), you('a', 'x.y'), new Map()))).toBe('"x.y" is not a semver range (e.g. ^1.2.0, 1.x, 2.0.1)');
  });
});
