/** os0 invoke APP.CAPABILITY: prints the output as JSON; a failed program exits 1 with its reason. */
import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { Client, CliError } from '../client.ts';
import { format } from '../output.ts';
import type { Common } from './resources.ts';

interface Result {
  id: string;
  status: 'succeeded' | 'failed';
  output?: unknown;
  error?: { code: string; message: string };
  logs: string[];
}

export async function invoke(target: string, opts: Common & { input?: string; inputFile?: string }): Promise<void> {
  const f = format(opts.output);
  const dot = target.indexOf('.');
  if (dot <= 0 || dot === target.length - 1) throw new CliError(`name the capability as APP.CAPABILITY (got "${target}")`, 2);
  if (opts.input !== undefined && opts.inputFile !== undefined) throw new CliError('give --input or -i, not both', 2);
  let text = opts.input;
  if (opts.inputFile !== undefined) {
    try {
      text = readFileSync(opts.inputFile === '-' ? 0 : opts.inputFile, 'utf8');
    } catch (e) {
      throw new CliError(`cannot read ${opts.inputFile}: ${(e as Error).message}`);
    }
  }
  let input: unknown = {};
  if (text !== undefined) {
    try {
      input = JSON.parse(text);
    } catch (e) {
      throw new CliError(`the input is not JSON (${(e as Error).message})`, 2);
    }
  }
  const res = await new Client(opts).json<Result>('POST', '/v1/invocations', { app: target.slice(0, dot), capability: target.slice(dot + 1), input });
  if (res.status !== 'succeeded') throw new CliError(`${target} failed: ${res.error?.message ?? 'unknown error'}`);
  // JSON unless -o yaml asks for YAML (the table form of an output is its JSON).
  if (f === 'yaml') process.stdout.write(stringify(res.output ?? null));
  else process.stdout.write(JSON.stringify(res.output ?? null, null, 2) + '\n');
}
