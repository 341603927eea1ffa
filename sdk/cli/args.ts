/** Checks of flag values that commander cannot do: each bad value is a usage error (exit 2). */
import { CliError } from './client.ts';

/** A log index (`--since`): a non-negative integer, or undefined when not given. */
export function index(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new CliError(`${flag} ${v} is not a log index (a whole number such as 42; 'os0 log' shows them)`, 2);
  return Number(v);
}

/** A count (`--limit`): a positive integer, or undefined when not given. */
export function count(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 1_000_000) throw new CliError(`${flag} ${v} is not a count (a whole number from 1 to 1000000)`, 2);
  return Number(v);
}

/** An http(s) URL (`--url`, `OS0_URL`, `--registry`). */
export function url(v: string, from: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new CliError(`${from} ${v} is not a URL (e.g. http://127.0.0.1:7070)`, 2);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CliError(`${from} ${v} is not a URL osØ can use: it must start with http:// or https://`, 2);
  return v;
}
