/**
 * Compiling a capability program: esbuild bundles the entry module and everything it imports into
 * one IIFE script whose exports land in `__os0_program` (its `default` is the capability), with an
 * external source map so stack traces can point at the TypeScript. `os0/sdk` resolves to the tiny
 * shim beside this file; Node's built-in modules are refused at compile time.
 *
 * Cached by content: a compiled program remembers the SHA-256 of every input file; it is reused
 * (from memory, or from `cacheDir` on disk) only while every one of those files still hashes the
 * same. The program's id is the SHA-256 of its code.
 */
import { createHash } from 'node:crypto';
import { builtinModules } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { SandboxError, formatBytes } from './errors.ts';
import { PROGRAM_BYTES_MAX } from './protocol.ts';

/** Immutable (compile() freezes it): the sandbox remembers what it checked per Program object. */
export interface Program {
  /** SHA-256 (hex) of `code`: the sandbox checks it and keys its caches by it. */
  id: string;
  /** The bundle: a script that assigns the module's exports to `__os0_program`. */
  code: string;
  /** Its source map (JSON), sources relative to the root the program was compiled from. */
  map: string | null;
  /** The entry file, relative to that root. */
  entry: string;
  /** What errors call it (e.g. `hello.greet`); defaults to `entry`. */
  name?: string;
  /** The app version it belongs to (e.g. `hello@1.0.0`): isolates are never shared across apps. */
  app?: string;
}

export interface CompileOptions {
  /** Keep compiled programs here too, to skip esbuild across restarts. */
  cacheDir?: string;
  /** Source paths in maps, errors and `entry` are relative to this; defaults to the entry's folder. */
  rootDir?: string;
}

/** Bump when the shape of what compile() produces changes, so old disk entries are ignored. */
const COMPILER_REV = 1;
export const PROGRAM_GLOBAL = '__os0_program';
// The SDK's own file (sdk/index.ts, no imports): a path for the bundler, not an import of this layer.
const SDK_SHIM = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'sdk', 'index.ts');
const MEMORY_CACHE_MAX = 256;

interface CacheEntry {
  rev: number;
  inputs: [file: string, sha256: string][];
  program: Program;
}

const memory = new Map<string, CacheEntry>();
const building = new Map<string, Promise<Program>>();

/** Forgets the in-memory cache (tests use it to reach the disk cache). */
export function forgetCompiled(): void {
  memory.clear();
}

export const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

function realPath(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p; // missing: the build reports it
  }
}

export async function compile(entryFile: string, opts: CompileOptions = {}): Promise<Program> {
  // Real paths: esbuild reports inputs relative to the real working directory, so a folder
  // reached through a symlink would otherwise be read back from the wrong place.
  const entryAbs = realPath(path.resolve(entryFile));
  const root = realPath(path.resolve(opts.rootDir ?? path.dirname(entryAbs)));
  const key = `${entryAbs}\0${root}`;

  const hit = memory.get(key);
  if (hit && unchanged(hit)) {
    memory.delete(key); // refresh its place in the LRU order
    memory.set(key, hit);
    return hit.program;
  }
  const diskFile = opts.cacheDir ? path.join(opts.cacheDir, `${sha256(`${key}\0${esbuild.version}\0${COMPILER_REV}`)}.json`) : null;
  if (diskFile) {
    const entry = readDiskEntry(diskFile);
    if (entry && unchanged(entry)) {
      remember(key, entry);
      return entry.program;
    }
  }
  // One build per entry at a time; concurrent callers share it.
  let pending = building.get(key);
  if (!pending) {
    pending = build(entryAbs, root).then((entry) => {
      remember(key, entry);
      if (diskFile) writeDiskEntry(diskFile, entry);
      return entry.program;
    });
    building.set(key, pending);
    const clear = (): void => void building.delete(key);
    pending.then(clear, clear);
  }
  return pending;
}

async function build(entryAbs: string, root: string): Promise<CacheEntry> {
  let result: esbuild.BuildResult<{ write: false; metafile: true }>;
  try {
    result = await esbuild.build({
      entryPoints: [entryAbs],
      absWorkingDir: root,
      outfile: path.join(root, `${PROGRAM_GLOBAL}.js`), // never written: names the map's relative paths
      write: false,
      bundle: true,
      format: 'iife',
      globalName: PROGRAM_GLOBAL,
      platform: 'neutral',
      mainFields: ['module', 'main'],
      target: 'es2023',
      sourcemap: 'external',
      sourcesContent: false,
      legalComments: 'none',
      charset: 'utf8',
      metafile: true,
      logLevel: 'silent',
      plugins: [sandboxResolver],
    });
  } catch (e) {
    throw compileError(e);
  }
  const js = result.outputFiles.find((f) => f.path.endsWith('.js'));
  const map = result.outputFiles.find((f) => f.path.endsWith('.js.map'));
  if (!js) throw new SandboxError('compile', `${rel(root, entryAbs)}: esbuild produced no output`);
  const code = js.text;
  if (Buffer.byteLength(code) > PROGRAM_BYTES_MAX) {
    throw new SandboxError('compile', `${rel(root, entryAbs)}: the bundle is ${formatBytes(Buffer.byteLength(code))}; the limit is ${formatBytes(PROGRAM_BYTES_MAX)}`);
  }
  const inputs: [string, string][] = Object.keys(result.metafile.inputs).map((f) => {
    const abs = path.resolve(root, f);
    return [abs, sha256(fs.readFileSync(abs))];
  });
  return {
    rev: COMPILER_REV,
    inputs,
    program: Object.freeze({ id: sha256(code), code, map: map ? map.text : null, entry: rel(root, entryAbs) }),
  };
}

const NODE_BUILTINS = new Set(builtinModules);

/** `os0/sdk` → the shim; `fs`, `node:fs`… → a compile error that says why. */
const sandboxResolver: esbuild.Plugin = {
  name: 'os0-sandbox',
  setup(b) {
    b.onResolve({ filter: /^os0\/sdk$/ }, () => ({ path: SDK_SHIM }));
    b.onResolve({ filter: /^[a-z_:][a-z0-9_/:.-]*$/ }, (args) => {
      const bare = args.path.startsWith('node:') ? args.path.slice(5) : args.path;
      if (!args.path.startsWith('node:') && !NODE_BUILTINS.has(bare)) return undefined;
      return {
        errors: [{ text: `cannot import "${args.path}": programs run in the osØ sandbox, which has no Node.js modules; use ctx for resources and commands` }],
      };
    });
  },
};

function compileError(e: unknown): SandboxError {
  const errors = (e as esbuild.BuildFailure)?.errors;
  if (!Array.isArray(errors) || errors.length === 0) return new SandboxError('compile', `esbuild failed: ${(e as Error)?.message ?? String(e)}`);
  const first = errors[0];
  const where = first.location ? `${first.location.file}:${first.location.line}:${first.location.column + 1}: ` : '';
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more error${errors.length > 2 ? 's' : ''})` : '';
  return new SandboxError('compile', `${where}${first.text}${more}`);
}

function unchanged(entry: CacheEntry): boolean {
  for (const [file, hash] of entry.inputs) {
    let data: Buffer;
    try {
      data = fs.readFileSync(file);
    } catch {
      return false;
    }
    if (sha256(data) !== hash) return false;
  }
  return true;
}

function remember(key: string, entry: CacheEntry): void {
  memory.delete(key);
  memory.set(key, entry);
  while (memory.size > MEMORY_CACHE_MAX) memory.delete(memory.keys().next().value!);
}

/** A disk entry is ours, but the disk may be damaged: anything malformed is a miss. */
function readDiskEntry(file: string): CacheEntry | null {
  try {
    const e = JSON.parse(fs.readFileSync(file, 'utf8')) as CacheEntry;
    const p = e?.program;
    if (e.rev !== COMPILER_REV || !Array.isArray(e.inputs) || typeof p?.code !== 'string' || typeof p.entry !== 'string') return null;
    if (p.map !== null && typeof p.map !== 'string') return null;
    if (!e.inputs.every((i) => Array.isArray(i) && typeof i[0] === 'string' && typeof i[1] === 'string')) return null;
    if (sha256(p.code) !== p.id) return null;
    return { rev: e.rev, inputs: e.inputs, program: Object.freeze({ id: p.id, code: p.code, map: p.map, entry: p.entry }) };
  } catch {
    return null;
  }
}

/** Write-then-rename, so a reader sees a whole entry or none; a failed write only costs a rebuild. */
function writeDiskEntry(file: string, entry: CacheEntry): void {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(entry));
    fs.renameSync(tmp, file);
  } catch {
    // The cache is an optimisation.
  }
}

const rel = (root: string, file: string): string => path.relative(root, file).split(path.sep).join('/');
