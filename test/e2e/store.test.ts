/**
 * The app store end to end, as an author and an operator would use it: a real `os0 up` (with its
 * embedded registry on port + 1) and the real CLI. keygen → pack → publish → trust → install →
 * invoke → upgrade (a migration rewriting the app's configuration) → invoke → uninstall; an
 * install refused half-way writes nothing; a migration that throws leaves the old version serving.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { BIN, cleanEnv, cli, cliFor, client, NODE, ROOT, startOs0, tempDir, type CliResult, type Os0 } from '../helpers/os0.ts';

const SAMPLES = path.join(ROOT, 'samples');

describe('os0 install, upgrade, uninstall', () => {
  let s: Os0;
  let os0: (args: string[]) => Promise<CliResult>;
  const work = tempDir('store-e2e-');
  const other = path.join(work, 'other');

  const ok = async (args: string[]): Promise<CliResult> => {
    const r = await os0(args);
    if (r.status !== 0) throw new Error(`os0 ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    return r;
  };
  const refused = async (args: string[], status = 1): Promise<string> => {
    const r = await os0(args);
    expect(r.status, r.stderr).toBe(status);
    const msg = r.stderr.trim();
    expect(msg.split('\n').length, msg).toBe(1);
    return msg;
  };
  /** Refused after showing the plan: the reason is the last line of stderr. */
  const refusedAfterPlan = async (args: string[], status: number): Promise<{ plan: string; reason: string }> => {
    const r = await os0(args);
    expect(r.status, r.stderr).toBe(status);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    return { plan: lines.slice(0, -1).join('\n'), reason: lines[lines.length - 1] };
  };
  const json = async <T = any>(args: string[]): Promise<T> => JSON.parse((await ok([...args, '-o', 'json'])).stdout) as T;

  beforeAll(async () => {
    s = await startOs0();
    os0 = (args) => cliFor(s)(args, { cwd: work, timeoutMs: 60_000 });
    await ok(['keygen', '--out', work]);
    fs.mkdirSync(other);
    await ok(['keygen', '--out', other]);
    for (const [dir, key] of [
      ['counter/1.0.0', work],
      ['notes', work],
      ['notes-stats', work],
    ]) {
      await ok(['publish', path.join(SAMPLES, dir), '--key', path.join(key, 'publisher.key')]);
    }
  }, 120_000);

  afterAll(async () => {
    await s?.stop();
  });

  it('refuses to install what no trusted key signed, naming the key, then installs once trusted', async () => {
    expect(await json(['trust', 'ls'])).toEqual([]);
    const m = await refused(['install', 'counter@1.0.0', '--yes']);
    expect(m).toMatch(/^os0: counter is signed by key [0-9a-f]{16}, which is not trusted \(add its \.pub with os0 trust add\)$/);
    await ok(['trust', 'add', path.join(work, 'publisher.pub')]);
    const keyId = m.match(/key ([0-9a-f]{16})/)![1];
    expect((await json(['trust', 'ls'])).map((r: any) => r.name)).toEqual([keyId]);
    // Without a terminal, an install must be confirmed with --yes.
    const unconfirmed = await refusedAfterPlan(['install', 'counter@1.0.0'], 2);
    expect(unconfirmed.reason).toBe('os0: confirmation needed: review the permissions above and pass --yes to go ahead');
    expect(unconfirmed.plan).toBe(`install counter@1.0.0  (signed by ${keyId})\n  may get/list/create/update configuration`);
    expect(await json(['apps'])).toEqual([]);
    const done = await json(['install', 'counter@1.0.0', '--yes']);
    expect(done.apps.map((a: any) => `${a.name}@${a.version}`)).toEqual(['counter@1.0.0']);
    expect(done.apps[0].permissions.resources[0].types).toContain('configuration');
    const out = await json(['invoke', 'counter.bump', '--input', '{"by": 2}']);
    expect(out).toEqual({ count: 2 });
  });

  it('installs an app with its dependency, and the dependency serves the type it needs', async () => {
    const r = await ok(['install', 'notes-stats', '--yes']);
    expect(r.stdout).toBe('installed notes@1.0.0\ninstalled notes-stats@1.0.0\n');
    await ok(['invoke', 'notes.add', '--input', '{"name": "n1", "text": "three little words"}']);
    const stats = await json(['invoke', 'notes-stats.count', '--input', '{}']);
    expect(stats).toEqual({ namespace: 'system', count: 1, words: 3 });
    expect(await refused(['uninstall', 'notes'])).toBe('os0: notes-stats@1.0.0 depends on notes; uninstall it first, or pass --force to break it');
  });

  it('an install that fails half-way (a dependency signed by an untrusted key) leaves nothing behind', async () => {
    const dir = path.join(work, 'needs-rogue');
    const rogue = path.join(work, 'rogue');
    fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
    fs.mkdirSync(path.join(rogue, 'src'), { recursive: true });
    const app = (name: string, deps: Record<string, string>) => ({ name, version: '1.0.0', description: name, capabilities: { hi: { entry: 'src/hi.ts', description: 'hi' } }, permissions: { resources: [] }, dependencies: deps });
    fs.writeFileSync(path.join(rogue, 'os0.json'), JSON.stringify(app('rogue', {})));
    fs.writeFileSync(path.join(dir, 'os0.json'), JSON.stringify(app('needs-rogue', { rogue: '^1.0.0' })));
    for (const d of [dir, rogue]) fs.writeFileSync(path.join(d, 'src', 'hi.ts'), 'export default async () => "hi";\n');
    await ok(['publish', rogue, '--key', path.join(other, 'publisher.key')]);
    await ok(['publish', dir, '--key', path.join(work, 'publisher.key')]);
    const before = (await client(s).get('/healthz')).body.index;
    const m = await refused(['install', 'needs-rogue', '--yes']);
    expect(m).toMatch(/^os0: rogue is signed by key [0-9a-f]{16}, which is not trusted/);
    // Nothing was written but the host agent's heartbeats (machine/observed, by system).
    const since = (await client(s).get(`/v1/log?since=${before}`)).body as { actor: string; changes: { type: string }[] }[];
    expect(since.filter((r) => r.actor !== 'system' || r.changes.some((ch) => ch.type !== 'machine/observed' && ch.type !== 'machine'))).toEqual([]);
    expect((await json(['apps'])).map((a: any) => a.name)).toEqual(['counter', 'notes', 'notes-stats']);
  });

  it('upgrades through its migration (old version serving if it throws), across a restart, then uninstalls', async () => {
    await ok(['publish', path.join(SAMPLES, 'counter', '2.0.0'), '--key', path.join(work, 'publisher.key')]);
    // A migration that throws: the old version keeps serving, its configuration untouched.
    const c = client(s);
    await c.submit({ op: 'apply', resource: { type: 'configuration', namespace: 'system', name: 'counter-fail-migration', data: {} } });
    const { reason: m } = await refusedAfterPlan(['upgrade', 'counter', '--yes'], 1);
    expect(m).toContain('the update migration of counter@2.0.0 failed');
    expect(m).toContain('counter@1.0.0 is still active and nothing was written');
    expect((await c.get('/v1/resources?type=configuration&namespace=system&name=counter')).body.data).toEqual({ count: 2 });
    expect(await json(['invoke', 'counter.bump', '--input', '{}'])).toEqual({ count: 3 });

    await c.submit({ op: 'delete', resource: { type: 'configuration', namespace: 'system', name: 'counter-fail-migration' } });
    const up = await ok(['upgrade', 'counter', '--yes']);
    expect(up.stdout).toBe('upgraded counter 1.0.0 → 2.0.0\n');
    expect((await c.get('/v1/resources?type=configuration&namespace=system&name=counter')).body.data).toEqual({ value: 3, bumps: 0 });

    expect((await s.stop()).code).toBe(0);
    await s.restart();
    const apps = await json(['apps']);
    expect(apps.map((a: any) => `${a.name}@${a.version} ${a.status}`)).toEqual(['counter@2.0.0 active', 'notes@1.0.0 active', 'notes-stats@1.0.0 active']);
    expect(await json(['invoke', 'counter.bump', '--input', '{}'])).toEqual({ value: 4, bumps: 1 });
    // Going back needs saying so.
    expect(await refused(['upgrade', 'counter@1.0.0', '--yes'])).toBe('os0: counter@1.0.0 is older than the installed 2.0.0; pass --allow-downgrade to go back');

    const gone = await ok(['uninstall', 'counter']);
    expect(gone.stdout).toMatch(/^uninstalled counter \(\d+ resources removed\)\n$/);
    expect((await json(['apps'])).map((a: any) => a.name)).toEqual(['notes', 'notes-stats']);
    expect((await c.get('/v1/resources?type=capability')).body.map((r: any) => r.name).sort()).toEqual(['notes-stats.count', 'notes.add', 'notes.list']);
    expect(await refused(['invoke', 'counter.bump', '--input', '{}'])).toMatch(/no app "counter" is installed/);
  });

  it('on a terminal, shows the permissions and asks: n cancels and installs nothing, y installs', async () => {
    await ok(['publish', path.join(SAMPLES, 'hello'), '--key', path.join(work, 'publisher.key')]);
    // `script` gives the CLI a real terminal; the answer is typed once the question is on screen.
    const onTerminal = (answer: string): Promise<{ status: number | null; screen: string }> =>
      new Promise((resolve, reject) => {
        const cmd = `'${NODE}' '${BIN}' install hello@1.0.0`;
        const child = spawn('script', ['-qec', cmd, '/dev/null'], { cwd: work, env: { ...cleanEnv(), OS0_URL: s.url, OS0_TOKEN: s.token }, stdio: ['pipe', 'pipe', 'pipe'] });
        let screen = '';
        let answered = false;
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.stdout!.on('data', (b: Buffer) => {
          screen += b.toString();
          if (!answered && screen.includes('[y/N]')) {
            answered = true;
            child.stdin!.write(`${answer}\r`);
          }
        });
        child.once('error', reject);
        child.once('close', (status) => {
          clearTimeout(timer);
          resolve({ status, screen });
        });
      });
    const no = await onTerminal('n');
    expect(no.screen).toContain('install hello@1.0.0  (signed by');
    expect(no.screen).toContain('asks for no permissions on resources');
    expect(no.screen).toContain('Install this app with these permissions? [y/N]');
    expect(no.screen).toContain('os0: cancelled; nothing was installed');
    expect(no.status).toBe(1);
    expect((await json(['apps'])).map((a: any) => a.name)).not.toContain('hello');
    const yes = await onTerminal('y');
    expect(yes.screen).toContain('installed hello@1.0.0');
    expect(yes.status).toBe(0);
    expect(await json(['invoke', 'hello.greet', '--input', '{"name": "tty"}'])).toEqual({ greeting: 'hello, tty' });
  });

  it('says what to do on bad input', async () => {
    expect(await refused(['install', 'Not_An_App', '--yes'], 2)).toBe('os0: "Not_An_App" is not NAME or NAME@RANGE (e.g. hello, hello@^1.2.0)');
    expect(await refused(['install', 'nothing-here', '--yes'])).toMatch(/nothing-here/);
    expect(await refused(['install', 'counter@not-a-range', '--yes'])).toMatch(/not a semver range/);
    expect(await refused(['uninstall', 'nothing-here'])).toBe(`os0: no app "nothing-here" is installed; 'os0 apps' lists the installed apps`);
    const noServer = await cli(['apps'], { env: { OS0_URL: 'http://127.0.0.1:9', OS0_TOKEN: 'x' } });
    expect(noServer.status).toBe(1);
  });
});
