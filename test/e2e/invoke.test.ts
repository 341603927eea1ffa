/** os0 invoke against a real `os0 up --app samples/hello`: the contract's invoke path end to end. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliFor, http, ROOT, startOs0, tempDir, type Os0 } from '../helpers/os0.ts';

let s: Os0;
let os0: ReturnType<typeof cliFor>;

beforeAll(async () => {
  s = await startOs0({ args: ['--app', path.join(ROOT, 'samples', 'hello')] });
  os0 = cliFor(s);
});
afterAll(async () => {
  await s?.stop('SIGTERM');
});

describe('os0 invoke', () => {
  it('prints the output as JSON and exits 0; the run is an invocation with observed state', async () => {
    const r = await os0(['invoke', 'hello.greet', '--input', '{"name":"ada"}']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ greeting: 'hello, ada' });
    const list = await http(s, 'GET', '/v1/resources?type=invocation&namespace=system');
    expect(list.body.length).toBe(1);
    const obs = await http(s, 'GET', `/v1/resources?type=invocation&observed=true&namespace=system&name=${list.body[0].name}`);
    expect(obs.body.data).toMatchObject({ status: 'succeeded', output: { greeting: 'hello, ada' }, logs: ['greeting ada'] });
  });

  it('takes the input from a file, and refuses misuse with exit 2 and failures with exit 1', async () => {
    const file = path.join(tempDir(), 'in.json');
    fs.writeFileSync(file, '{"name":"grace"}');
    const ok = await os0(['invoke', 'hello.greet', '-i', file]);
    expect(JSON.parse(ok.stdout)).toEqual({ greeting: 'hello, grace' });
    const usage = await os0(['invoke', 'hello']);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/APP\.CAPABILITY/);
    const badJson = await os0(['invoke', 'hello.greet', '--input', '{nope']);
    expect(badJson.status).toBe(2);
    const unknown = await os0(['invoke', 'hello.wave']);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr.trim()).toBe('os0: app hello has no capability "wave"; it has: greet');
  });

  it('refuses an actor without the invoke right', async () => {
    const t = await os0(['token', 'create', 'mallory']);
    const r = await cliFor(s, t.stdout.trim())(['invoke', 'hello.greet']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/rejected by permission: mallory may not invoke app \(hello\.greet\)/);
  });
});
