/** Output in the three forms every command offers: table (people), json and yaml (scripts). */
import { stringify } from 'yaml';
import { CliError } from './client.ts';

export type Format = 'table' | 'json' | 'yaml';

export function format(o: string | undefined): Format {
  const f = o ?? 'table';
  if (f !== 'table' && f !== 'json' && f !== 'yaml') throw new CliError(`-o must be table, json or yaml (got ${f})`, 2);
  return f;
}

export function print(f: Format, value: unknown, table: () => string[][]): void {
  if (f === 'json') process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  else if (f === 'yaml') process.stdout.write(stringify(value));
  else {
    const rows = table();
    if (rows.length > 1) process.stdout.write(renderTable(rows));
    else if (rows.length === 1) process.stderr.write('nothing found\n');
  }
}

export function renderTable(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('   ').trimEnd()).join('\n') + '\n';
}

export function age(iso: string): string {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 120) return `${Math.floor(s)}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}
