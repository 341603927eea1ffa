/**
 * The web console in a real headless Chromium (Debian's, driven by playwright-core): it is served
 * at `/` with a strict CSP and UTF-8, signs in with a token, shows a resource created through the
 * API without a reload, follows a service scaling 1 -> 3, invokes samples/hello, shows a narrow
 * token only its namespace, and shows markup held by a resource as text (its handler never runs).
 * Screenshots of every view go to .test-data/console/ (gitignored).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../core/api/client/index.ts';
import { CHROMIUM, launch, NO_CHROMIUM, signIn } from '../helpers/browser.ts';
import { openInstance, type TestInstance } from '../helpers/instance.ts';

const SHOTS = path.resolve('.test-data/console');
if (!CHROMIUM) console.warn(NO_CHROMIUM);

describe.skipIf(!CHROMIUM)('web console (headless chromium)', () => {
  let inst: TestInstance;
  let api: ApiClient;
  let browser: Browser;
  let page: Page;
  const shot = (p: Page, name: string) => p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    inst = await openInstance({ apps: [path.resolve('samples/hello')] });
    api = inst.client();
    await api.submit({ batch: [
      { op: 'create', resource: { type: 'namespace', name: 'acme', data: { budget: { perHour: 1 }, quota: { count: { service: 5 } } } } },
      { op: 'create', resource: { type: 'namespace', name: 'acme/prod', data: { budget: { perHour: 0.5 } } } },
      { op: 'create', resource: { type: 'namespace', name: 'other' } },
      { op: 'create', resource: { type: 'configuration', namespace: 'acme', name: 'settings', data: { greeting: 'hallo osØ' } } },
      { op: 'create', resource: { type: 'configuration', namespace: 'other', name: 'secret-plans', data: {} } },
      { op: 'create', resource: { type: 'machine', namespace: 'acme', name: 'm1', data: { cpu: 4, memoryMb: 8192 } } },
    ] });
    browser = await launch();
    page = await signIn(browser, inst.url, inst.adminToken);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  it('serves the app with a strict CSP, nosniff and UTF-8', async () => {
    const res = await fetch(`${inst.url}/`);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/unsafe-(inline|eval)/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await res.text()).toContain('osØ');
    expect((await fetch(`${inst.url}/console/client/watch.js`)).headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect((await fetch(`${inst.url}/console/..%2Fserve.ts`)).status).toBe(404);
    // The brand renders as Ø, not mojibake.
    expect(await page.textContent('header .brand')).toBe('osØ');
  });

  it('shows a resource created through the API without a reload', async () => {
    await page.goto(`${inst.url}/#/tree/acme`);
    // A reload would sign out (the token is in memory only): the row must come over the stream.
    await page.evaluate('window.marker = 42');
    await page.waitForSelector('[data-name=settings]');
    await api.apply({ type: 'configuration', namespace: 'acme', name: 'made-live', data: { n: 1 } });
    await page.waitForSelector('[data-name=made-live]', { timeout: 10_000 });
    expect(await page.evaluate('window.marker')).toBe(42);
    expect(await page.textContent('[data-ns=acme] .counts')).toMatch(/2 configuration/);
    await shot(page, 'tree');
    const id = (await api.get('configuration', 'settings', 'acme')).id;
    await page.goto(`${inst.url}/#/r/${id}`);
    await page.waitForSelector('pre.desired');
    expect(await page.textContent('pre.desired')).toContain('hallo osØ');
    await shot(page, 'resource');
  });

  it('follows a service scaling from 1 to 3 replicas, and its cost against the budget', async () => {
    await page.goto(`${inst.url}/#/fleet`);
    // The kernel's service reconciler makes one task per replica; the page follows it live.
    await api.apply({ type: 'service', namespace: 'acme/prod', name: 'web', data: { command: ['web'], replicas: 1, resources: { cpu: 1, memoryMb: 512 } } });
    const tasks = (n: number) => page.waitForSelector(`section[data-type=task] h2:has-text("(${n})")`);
    await tasks(1);
    await api.apply({ type: 'service', namespace: 'acme/prod', name: 'web', data: { command: ['web'], replicas: 3, resources: { cpu: 1, memoryMb: 512 } } });
    await page.waitForSelector(`section[data-type=service] .row:has-text('"replicas":3')`);
    await tasks(3);
    await shot(page, 'fleet');
    await page.goto(`${inst.url}/#/costs`);
    await page.waitForSelector('[data-ns="acme/prod"]');
    const prod = await page.textContent('[data-ns="acme/prod"]');
    expect(prod).toMatch(/of 0\.5\/h/);
    expect(prod).toContain("0.14/h"); // 3 replicas × (1 cpu × 0.04 + 0.5 GiB × 0.01)
    expect(await page.textContent('[data-ns=acme]')).toMatch(/service 1\/5/);
    await shot(page, 'costs');
  });

  it('invokes a capability from the form and shows its output and logs', async () => {
    await page.goto(`${inst.url}/#/apps`);
    await page.waitForSelector('select[name=capability] option[value="hello.greet"]', { state: 'attached' });
    await page.selectOption('select[name=capability]', 'hello.greet');
    await page.fill('textarea[name=input]', '{"name": "Ø"}');
    await page.click('form button[type=submit]');
    await page.waitForSelector('pre.output[data-status=succeeded]', { timeout: 20_000 });
    expect(JSON.parse((await page.textContent('pre.output'))!)).toEqual({ greeting: 'hello, Ø' });
    expect(await page.textContent('pre.logs')).toContain('greeting');
    await shot(page, 'apps');
  });

  it('the log view shows who changed what, filtered and following', async () => {
    await page.goto(`${inst.url}/#/log`);
    await page.fill('input[name=namespace]', 'acme');
    await api.apply({ type: 'configuration', namespace: 'acme', name: 'logged', data: {} });
    await page.waitForSelector('.row[data-name=logged]');
    const row = await page.textContent('.row[data-name=logged]');
    expect(row).toContain('admin');
    expect(row).toContain('create configuration');
    expect(await page.$('.row[data-name=secret-plans]')).toBeNull();
    await shot(page, 'log');
  });

  it('a token with a narrow policy sees only its namespace', async () => {
    await api.submit({ op: 'create', resource: { type: 'policy', name: 'narrow-acme', data: { subjects: ['user:narrow'], rules: [{ verbs: ['get', 'list', 'watch'], types: ['*'], namespaces: ['acme'] }] } } });
    const t = await api.createToken('narrow');
    // It is offered only what it may do: no capability it may not invoke.
    expect(await api.as(t.token).json('GET', '/v1/console/apps')).toEqual([]);
    expect(await api.json('GET', '/v1/console/apps')).toEqual([{ name: 'hello', version: '1.0.0', description: 'Says hello', capabilities: [{ name: 'greet', description: 'Greets someone' }] }]);
    const p = await signIn(browser, inst.url, t.token);
    try {
      await p.goto(`${inst.url}/#/tree/acme`);
      await p.waitForSelector('[data-name=settings]');
      await api.apply({ type: 'configuration', namespace: 'other', name: 'not-for-narrow', data: {} });
      await api.apply({ type: 'configuration', namespace: 'acme', name: 'for-narrow', data: {} });
      await p.waitForSelector('[data-name=for-narrow]', { timeout: 10_000 });
      expect(await p.$('[data-ns=other]')).toBeNull();
      await p.goto(`${inst.url}/#/tree/other`);
      await p.waitForSelector('section h2 >> text=In other');
      expect(await p.$('[data-name=not-for-narrow]')).toBeNull();
      expect(await p.$('[data-name=secret-plans]')).toBeNull();
      await shot(p, 'narrow');
    } finally {
      await p.close();
    }
  });

  it('shows markup held by a resource as text; its handler never runs', async () => {
    const evil = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>';
    const r = (await api.apply({ type: 'configuration', namespace: 'acme', name: 'evil', tags: { note: 'x' }, data: { html: evil } })).resources[0];
    await page.goto(`${inst.url}/#/tree/acme`);
    await page.waitForSelector('[data-name=evil]');
    expect(await page.textContent('[data-name=evil]')).toContain('<img src=x onerror=');
    await page.goto(`${inst.url}/#/r/${r.id}`);
    await page.waitForSelector('pre.desired');
    expect(await page.textContent('pre.desired')).toContain('<img src=x onerror=\\"window.pwned=1\\">');
    expect(await page.$$('main img')).toHaveLength(0);
    expect(await page.$$('main script')).toHaveLength(0);
    await page.waitForTimeout(200);
    expect(await page.evaluate('window.pwned')).toBeUndefined();
    expect((page as Page & { errors?: string[] }).errors).toEqual([]);
    await shot(page, 'markup-as-text');
  });
});
