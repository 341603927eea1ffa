/**
 * A package's programs as a LoadedApp, straight from its bundles: nothing is compiled again
 * (esbuild ran at pack time; the bundles are what the signature covers), so what runs is
 * exactly what was signed.
 *
 *   const pkg = verify(tgz, trustedKeys);
 *   invoker.add(appFromPackage(pkg));
 */
import * as path from 'node:path';
import type { CapabilitySpec, LoadedApp, Manifest } from '../../runtime/invoke/manifest.ts';
import { sha256, type Program } from '../../runtime/sandbox/compile.ts';
import { programsOf } from './pack.ts';

export interface PackageLike {
  manifest: Manifest;
  files: Map<string, Buffer>;
}

/**
 * Builds the app from an inspected or verified package. `dir` is what LoadedApp.dir says
 * (default `NAME@VERSION`: a package has no folder). Throws a one-line Error if a program's
 * bundle is missing.
 */
export function appFromPackage(p: PackageLike, dir?: string): LoadedApp {
  const m = p.manifest;
  const app = `${m.name}@${m.version}`;
  const programOf = (name: string, spec: CapabilitySpec, bundle: string): Program => {
    const code = p.files.get(bundle);
    if (!code) throw new Error(`package ${app}: missing ${bundle} for ${name}; repack the app with os0 pack`);
    const map = p.files.get(`${bundle}.map`);
    const text = code.toString('utf8');
    return Object.freeze({ id: sha256(text), code: text, map: map ? map.toString('utf8') : null, entry: path.posix.normalize(spec.entry), name: `${m.name}.${name}`, app });
  };
  const loaded: LoadedApp = {
    dir: dir ?? app,
    manifest: m,
    capabilities: new Map(),
    filters: new Map(),
    handlers: new Map(),
    drivers: new Map(),
  };
  for (const { kind, name, spec, bundle } of programsOf(m)) {
    const program = programOf(name, spec, bundle);
    switch (kind) {
      case 'capabilities':
        loaded.capabilities.set(name, { spec, program });
        break;
      case 'filters':
        loaded.filters.set(name, { spec: m.filters![name], program });
        break;
      case 'handlers':
        loaded.handlers.set(name, { spec: m.handlers![name], program });
        break;
      case 'drivers':
        loaded.drivers!.set(name, { spec: m.drivers![name], program });
        break;
      case 'update':
        loaded.update = { spec, program };
        break;
    }
  }
  return loaded;
}
