/**
 * The bench dispatcher: `npm run bench -- [SUITE] [--json]`.
 *
 * Runs bench/SUITE.ts's `run(opts)`, or every suite in the registry when none is named. Results go
 * to stdout, one per line: aligned text, or with --json one `{"suite","metric","value","unit"}`
 * object per line and nothing else. Progress goes to stderr. A missed target is reported, never
 * turned into a failing exit code: only a suite that throws fails the run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export type Report = (metric: string, value: number, unit: string, note?: string) => void;

export interface SuiteOptions {
  json: boolean;
  report: Report;
}

interface Suite {
  run(opts: SuiteOptions): Promise<void>;
}

/** Every suite known, in the order a bare `npm run bench` runs them: one line each. */
const suites: Record<string, () => Promise<Suite>> = {
  core: () => import('./core.ts'),
  api: () => import('./api.ts'),
  sandbox: () => import('./sandbox.ts'),
  registry: () => import('./registry.ts'),
  store: () => import('./store.ts'),
  bus: () => import('./bus.ts'),
  instance: () => import('./instance.ts'),
  agent: () => import('./agent.ts'),
  console: () => import('./console.ts'),
  fleet: () => import('./fleet.ts'),
  sdk: () => import('./sdk.ts'),
};

/** Where suites keep their data (suites import only types from here, so they compute it too). */
const benchDataDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '.bench-data');

const METRIC_CHARS = 62;
const VALUE_CHARS = 14;
const UNIT_CHARS = 10;

function formatValue(value: number, unit: string): string {
  if (unit === 'pass') return value ? 'PASS' : 'FAIL';
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  const digits = Number.isInteger(value) || abs >= 1000 ? 0 : abs >= 100 ? 1 : abs >= 10 ? 2 : abs >= 1 ? 3 : 4;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function humanLine(suite: string, metric: string, value: number, unit: string, note?: string): string {
  const name = `${suite}: ${metric}`;
  const shown = unit === 'pass' ? '' : unit;
  return `${name.padEnd(METRIC_CHARS)} ${formatValue(value, unit).padStart(VALUE_CHARS)} ${shown.padEnd(UNIT_CHARS)}${note ? ' ' + note : ''}`.trimEnd();
}

function usage(): string {
  return `usage: npm run bench -- [${Object.keys(suites).join('|')}] [--json]`;
}

async function main(argv: string[]): Promise<number> {
  let json = false;
  const names: string[] = [];
  for (const a of argv) {
    if (a === '--json') json = true;
    else if (a === '-h' || a === '--help') {
      process.stderr.write(usage() + '\n');
      return 0;
    } else if (a.startsWith('-')) {
      process.stderr.write(`unknown option ${a}\n${usage()}\n`);
      return 2;
    } else names.push(a);
  }
  for (const n of names) {
    if (!Object.hasOwn(suites, n)) {
      process.stderr.write(`no bench suite "${n}"; known: ${Object.keys(suites).join(', ')}\n${usage()}\n`);
      return 2;
    }
  }
  const chosen = names.length > 0 ? names : Object.keys(suites);
  let failed = 0;
  try {
    for (const name of chosen) {
      const report: Report = (metric, value, unit, note) => {
        if (json) process.stdout.write(JSON.stringify({ suite: name, metric, value, unit }) + '\n');
        else process.stdout.write(humanLine(name, metric, value, unit, note) + '\n');
      };
      process.stderr.write(`bench ${name}: starting\n`);
      const t0 = performance.now();
      try {
        const suite = await suites[name]();
        await suite.run({ json, report });
        process.stderr.write(`bench ${name}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      } catch (e) {
        failed++;
        process.stderr.write(`bench ${name} failed: ${(e as Error)?.stack ?? String(e)}\n`);
      }
    }
  } finally {
    fs.rmSync(benchDataDir, { recursive: true, force: true });
  }
  return failed > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
