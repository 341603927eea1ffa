/**
 * Walks the README's `console` blocks exactly as written: every `$ COMMAND` line runs in bash (a
 * here-document belongs to its command), and what it prints (standard output and error, as a
 * terminal shows them) must match the lines the README shows under it.
 *
 * The walk runs in a fresh folder outside the repository, with its own HOME (so `os0 keygen`
 * writes to HOME/.config/os0) and its own port: only the environment differs from a reader's
 * shell (OS0_URL names a free port, which `os0 up` listens on), never a command. `npx os0` runs
 * the repository's os0 (a shim named npx on PATH: no registry is asked), and `samples` links to
 * the repository's samples. The `sh` blocks (npm ci, npm test) are not walked: this test runs
 * inside them.
 *
 * What changes from run to run is compared loosely: times, ages, ids, tokens, digests, key ids,
 * numbers and column widths; `…` in the README stands for anything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanEnv, freePort, ROOT } from '../helpers/os0.ts';

interface Step {
  command: string;
  expected: string[];
  line: number;
}

/** The steps of every console block, in order. */
export function steps(readme: string): Step[] {
  const out: Step[] = [];
  const lines = readme.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```console') continue;
    for (i++; i < lines.length && lines[i].trim() !== '```'; ) {
      const l = lines[i];
      if (!l.startsWith('$ ')) throw new Error(`README.md:${i + 1}: output without a command: ${l}`);
      const step: Step = { command: l.slice(2), expected: [], line: i + 1 };
      i++;
      const heredoc = /<<-?\s*'?(\w+)'?/.exec(step.command);
      if (heredoc) {
        while (i < lines.length && lines[i] !== heredoc[1]) step.command += '\n' + lines[i++];
        step.command += '\n' + lines[i++];
      }
      while (i < lines.length && !lines[i].startsWith('$ ') && lines[i].trim() !== '```') step.expected.push(lines[i++]);
      out.push(step);
    }
  }
  return out;
}

/** The same text either side: what varies from run to run becomes a placeholder. */
export function normalise(line: string): string {
  return line
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z/g, 'TIME')
    .replace(/os0_[0-9a-f]{12}_[A-Za-z0-9_-]+/g, 'TOKEN')
    .replace(/\b[0-9a-f]{64}\b/g, 'DIGEST')
    .replace(/\b(?=[0-9a-z]*\d)[0-9a-z]{20}\b/g, 'ID')
    .replace(/\b(?=[0-9a-f]*\d)[0-9a-f]{12,16}\b/g, 'HEX')
    .replace(/\b\d+[smhd]\b/g, 'AGE')
    .replace(/\d+/g, 'N')
    .replace(/\s+/g, ' ')
    .trim();
}

function matches(expected: string, actual: string): boolean {
  const e = normalise(expected);
  const a = normalise(actual);
  if (!e.includes('…')) return e === a;
  const re = new RegExp(`^${e.split('…').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(a);
}

const started: ChildProcess[] = [];
let tmp = '';

afterAll(async () => {
  for (const c of started) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM');
      await Promise.race([new Promise((r) => c.once('exit', r)), new Promise((r) => setTimeout(r, 10_000))]);
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function run(command: string, cwd: string, env: Record<string, string>): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn('bash', ['-c', `exec 2>&1\n${command}`], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.setEncoding('utf8');
    c.stdout.on('data', (d: string) => (out += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), 90_000);
    c.once('error', reject);
    c.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, out });
    });
  });
}

describe('the README, walked as written', () => {
  it('prints what the README shows, command by command', async () => {
    const all = steps(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
    expect(all.length, 'README.md has no console blocks').toBeGreaterThan(10);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'os0-readme-'));
    const cwd = path.join(tmp, 'demo');
    const bin = path.join(tmp, 'bin');
    fs.mkdirSync(cwd);
    fs.mkdirSync(bin);
    fs.mkdirSync(path.join(tmp, 'home'));
    fs.symlinkSync(path.join(ROOT, 'samples'), path.join(cwd, 'samples'));
    fs.writeFileSync(
      path.join(bin, 'npx'),
      `#!/bin/sh\nif [ "$1" = os0 ]; then shift; exec "${path.join(ROOT, 'node_modules', '.bin', 'os0')}" "$@"; fi\necho "npx $1: not part of the README walk" >&2\nexit 127\n`,
      { mode: 0o755 },
    );
    const port = await freePort();
    const env: Record<string, string> = { ...cleanEnv(), PATH: `${bin}:${path.join(ROOT, 'node_modules', '.bin')}:${process.env.PATH}`, HOME: path.join(tmp, 'home'), OS0_URL: `http://127.0.0.1:${port}` };
    delete env.XDG_CONFIG_HOME;

    for (const step of all) {
      const where = `README.md:${step.line}: $ ${step.command.split('\n')[0]}`;
      if (/^npx os0 up\b/.test(step.command)) {
        // The server runs on while the walk goes on; its first line is the ready line.
        const c = spawn('bash', ['-c', `exec 2>&1\nexec ${step.command}`], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
        started.push(c);
        let out = '';
        c.stdout.setEncoding('utf8');
        c.stdout.on('data', (d: string) => (out += d));
        for (let i = 0; i < 600 && !out.includes('ready') && c.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
        const ready = out.split('\n').find((l) => l.includes('ready')) ?? '';
        expect(matches(step.expected[0], ready), `${where}\nexpected: ${step.expected[0]}\nprinted:  ${out}`).toBe(true);
        continue;
      }
      const r = await run(step.command, cwd, env);
      const printed = r.out.replace(/\n$/, '').split('\n').filter((l, i, a) => !(a.length === 1 && l === ''));
      const ok = printed.length === step.expected.length && printed.every((l, i) => matches(step.expected[i], l));
      expect(ok, `${where} (exit ${r.status})\nexpected:\n${step.expected.join('\n')}\nprinted:\n${printed.join('\n')}`).toBe(true);
      // A command the README shows failing prints os0: first; every other one succeeds.
      if (!step.expected[0]?.startsWith('os0: ')) expect(r.status, where).toBe(0);
    }
  }, 400_000);
});

describe('the README walk itself', () => {
  it('reads commands, here-documents and their outputs, and compares loosely only what varies', () => {
    const s = steps("x\n```console\n$ cat > a <<'E'\nline\nE\n$ echo hi\nhi\n```\n```sh\n$ skipped\n```\n");
    expect(s).toEqual([
      { command: "cat > a <<'E'\nline\nE", expected: [], line: 3 },
      { command: 'echo hi', expected: ['hi'], line: 6 },
    ]);
    expect(matches('acme   web   5   -   12s', 'acme web 17 - 3m')).toBe(true);
    expect(matches('acme   web', 'acme db')).toBe(false);
    expect(matches('data …/.os0, token …', 'data /tmp/x/.os0, token /tmp/x/a')).toBe(true);
    expect(matches('key 1e6af8f2de5a4b43', 'key 0d1b6b3cb85cd9d2')).toBe(true);
  });
});
