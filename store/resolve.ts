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
 *
 * Rounds until the choices settle: each round collects the ranges that the root and the current
 * choices ask for (a version chosen in an earlier round and since replaced asks for nothing any
 * more), and picks for every app the highest version satisfying all of them. Greedy, not a full
 * search: a conflict it reports names the ranges that clash.
 */
export async function resolve(source: MetadataSource, root: Wanted, installed: Map<string, string>, replace?: string, alsoWanted: Wanted[] = []): Promise<Resolved[]> {
  if (semver.validRange(root.range) === null) throw new OsError('invalid', `"${root.range}" is not a semver range (e.g. ^1.2.0, 1.x, 2.0.1)`);
  const metadata = new Map<string, AppMetadata>();
  const metadataOf = async (name: string): Promise<AppMetadata> => {
    let md = metadata.get(name);
    if (!md) {
      if (metadata.size >= MAX_APPS) throw new OsError('too_large', `installing ${root.name} would install more than ${MAX_APPS} apps`);
      md = await source.metadata(name);
      metadata.set(name, md);
    }
    return md;
  };
  let chosen = new Map<string, Resolved>();
  for (let round = 0; ; round++) {
    if (round > MAX_APPS) throw new OsError('invalid', `the dependencies of ${root.name} do not settle; check their ranges`);
    // Every range asked for, by the root and by the apps chosen so far (reachable from the root).
    const wanted = new Map<string, Wanted[]>();
    const ask = (w: Wanted): void => void wanted.set(w.name, [...(wanted.get(w.name) ?? []), w]);
    for (const w of [...alsoWanted, root]) ask(w);
    const seen = new Set<string>();
    const visit = (name: string): void => {
      const c = chosen.get(name);
      if (!c || seen.has(name)) return;
      seen.add(name);
      for (const [dep, range] of Object.entries(c.entry.dependencies ?? {})) {
        if (dep === name) throw new OsError('invalid', `${name}@${c.version} depends on itself`);
        if (semver.validRange(range) === null) throw new OsError('invalid', `${name}@${c.version} asks for ${dep}@"${range}", which is not a semver range`);
        ask({ name: dep, range, by: `${name}@${c.version}` });
        visit(dep);
      }
    };
    visit(root.name);
    const next = new Map<string, Resolved>();
    for (const [name, all] of wanted) {
      const have = installed.get(name);
      if (have !== undefined && name !== replace) {
        const clash = all.find((w) => !semver.satisfies(have, w.range, { includePrerelease: true }));
        if (clash) throw new OsError('conflict', `${clash.by} needs ${name}@${clash.range}, but ${name}@${have} is installed; upgrade it first (os0 upgrade ${name}@${clash.range})`);
        continue;
      }
      const md = await metadataOf(name);
      const entry = pick(md, all.map((x) => x.range));
      if (!entry) {
        const versions = Object.values(md.versions).filter((v) => !v.yanked).map((v) => v.version).sort(semver.compare);
        if (all.length > 1) throw new OsError('conflict', `no version of ${name} satisfies ${describeWanted(all)}; it has ${versions.join(', ') || 'no installable versions'}`);
        const w = all[0];
        throw new OsError('not_found', `no version of ${name} satisfies ${w.range}${w.by === 'you' ? '' : ` (asked for by ${w.by})`}; it has ${versions.join(', ') || 'no installable versions'}`);
      }
      next.set(name, { name, version: entry.version, entry, wanted: all });
    }
    const settled = next.size === chosen.size && [...next].every(([n, r]) => chosen.get(n)?.version === r.version);
    chosen = next;
    if (settled) break;
  }
  // Dependencies first: an app's types exist before the apps that use them.
  const order: Resolved[] = [];
  const done = new Set<string>();
  const place = (name: string, path: string[]): void => {
    if (done.has(name) || !chosen.has(name)) return;
    if (path.includes(name)) throw new OsError('invalid', `dependency cycle: ${[...path, name].join(' → ')}`);
    for (const dep of Object.keys(chosen.get(name)!.entry.dependencies ?? {})) place(dep, [...path, name]);
    done.add(name);
    order.push(chosen.get(name)!);
  };
  place(root.name, []);
  return order;
}
