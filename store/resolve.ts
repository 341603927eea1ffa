/**
 * Dependency resolution: from an app and a range, every app to install, each at the highest
 * non-yanked version that satisfies every range asking for it; an app already installed is
 * kept when it satisfies them and is a conflict otherwise. Shared dependencies are resolved once.
 * Works on the registry's (verified) metadata alone; the packages are fetched afterwards.
 */
import semver from 'semver';
import { OsError } from '../core/errors.ts';
import type { AppMetadata, VersionEntry } from '../registry/client/types.ts';

export interface MetadataSource {
  metadata(name: string): Promise<AppMetadata>;
}

export interface Wanted {
  name: string;
  range: string;
  /** Who asks: `you`, or `APP@VERSION`. */
  by: string;
}

export interface Resolved {
  name: string;
  version: string;
  entry: VersionEntry;
  /** Every range that asked for it. */
  wanted: Wanted[];
}

/** At most this many apps in one install, dependencies included. */
export const MAX_APPS = 100;

/** The highest version that satisfies every range, skipping yanked ones (unless asked for exactly). */
export function pick(md: AppMetadata, ranges: string[]): VersionEntry | null {
  const candidates = Object.values(md.versions)
    .filter((v) => ranges.every((r) => semver.satisfies(v.version, r, { includePrerelease: semver.valid(r) !== null })))
    .filter((v) => !v.yanked || ranges.some((r) => r === v.version))
    .sort((a, b) => semver.rcompare(a.version, b.version));
  return candidates[0] ?? null;
}

const describeWanted = (w: Wanted[]): string => w.map((x) => (x.by === 'you' ? `you ask for ${x.range}` : `${x.by} needs ${x.range}`)).join(', ');

/**
 * Resolves `root`. `installed` maps installed apps to their versions: they are kept (never
 * re-resolved) when they satisfy every range, else the resolution fails naming the conflict.
 * `replace` names an installed app whose version may change (the app being upgraded);
 * `alsoWanted` are the ranges installed apps ask of it, which the new version must satisfy too.
 */
export async function resolve(source: MetadataSource, root: Wanted, installed: Map<string, string>, replace?: string, alsoWanted: Wanted[] = []): Promise<Resolved[]> {
  if (semver.validRange(root.range) === null) throw new OsError('invalid', `"${root.range}" is not a semver range (e.g. ^1.2.0, 1.x, 2.0.1)`);
  const wanted = new Map<string, Wanted[]>();
  const chosen = new Map<string, Resolved>();
  const metadata = new Map<string, AppMetadata>();
  // What installed apps ask of the one being replaced counts as much as what the user asks.
  const queue: Wanted[] = [...alsoWanted, root];
  let steps = 0;
  while (queue.length > 0) {
    if (++steps > MAX_APPS * 20) throw new OsError('invalid', `the dependencies of ${root.name} do not settle; check their ranges`);
    const w = queue.shift()!;
    const all = [...(wanted.get(w.name) ?? []), w];
    wanted.set(w.name, all);
    const have = installed.get(w.name);
    if (have !== undefined && w.name !== replace) {
      if (!semver.satisfies(have, w.range, { includePrerelease: true })) {
        throw new OsError('conflict', `${w.by} needs ${w.name}@${w.range}, but ${w.name}@${have} is installed; upgrade it first (os0 upgrade ${w.name}@${w.range})`);
      }
      continue;
    }
    let md = metadata.get(w.name);
    if (!md) {
      md = await source.metadata(w.name);
      metadata.set(w.name, md);
    }
    const entry = pick(md, all.map((x) => x.range));
    if (!entry) {
      const versions = Object.values(md.versions).filter((v) => !v.yanked).map((v) => v.version).sort(semver.compare);
      if (all.length > 1) throw new OsError('conflict', `no version of ${w.name} satisfies ${describeWanted(all)}; it has ${versions.join(', ') || 'no installable versions'}`);
      throw new OsError('not_found', `no version of ${w.name} satisfies ${w.range}${w.by === 'you' ? '' : ` (asked for by ${w.by})`}; it has ${versions.join(', ') || 'no installable versions'}`);
    }
    const prev = chosen.get(w.name);
    chosen.set(w.name, { name: w.name, version: entry.version, entry, wanted: all });
    if (prev?.version === entry.version) continue;
    if (chosen.size > MAX_APPS) throw new OsError('too_large', `installing ${root.name} would install more than ${MAX_APPS} apps`);
    for (const [dep, range] of Object.entries(entry.dependencies ?? {})) {
      if (dep === w.name) throw new OsError('invalid', `${w.name}@${entry.version} depends on itself`);
      if (semver.validRange(range) === null) throw new OsError('invalid', `${w.name}@${entry.version} asks for ${dep}@"${range}", which is not a semver range`);
      queue.push({ name: dep, range, by: `${w.name}@${entry.version}` });
    }
  }
  // A version chosen early may have been replaced later: keep only what the final choices need.
  const needed = new Set<string>();
  const visit = (name: string): void => {
    if (needed.has(name) || !chosen.has(name)) return;
    needed.add(name);
    for (const dep of Object.keys(chosen.get(name)!.entry.dependencies ?? {})) visit(dep);
  };
  visit(root.name);
  // Dependencies first: an app's types exist before the apps that use them.
  const order: Resolved[] = [];
  const done = new Set<string>();
  const place = (name: string, path: string[]): void => {
    if (done.has(name) || !needed.has(name)) return;
    if (path.includes(name)) throw new OsError('invalid', `dependency cycle: ${[...path, name].join(' → ')}`);
    for (const dep of Object.keys(chosen.get(name)!.entry.dependencies ?? {})) place(dep, [...path, name]);
    done.add(name);
    order.push(chosen.get(name)!);
  };
  place(root.name, []);
  return order;
}
