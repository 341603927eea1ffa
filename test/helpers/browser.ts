/**
 * Debian's chromium, headless, through playwright-core (never `playwright install`: no downloads
 * here). `CHROMIUM` is null when the browser is missing, so suites can skip with a clear message.
 */
import * as fs from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';
export const CHROMIUM: string | null = fs.existsSync(CHROMIUM_PATH) ? CHROMIUM_PATH : null;
export const NO_CHROMIUM = `${CHROMIUM_PATH} is missing: the console's browser tests are skipped (apt-get install chromium; .ci/run does)`;

export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Opens the console at `url`, signs in with `token`, and waits until it is live. */
export async function signIn(browser: Browser, url: string, token: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  (page as Page & { errors?: string[] }).errors = errors;
  await page.goto(url);
  await page.fill('input[name=token]', token);
  await page.click('button[type=submit]');
  await page.waitForSelector('header .status[data-state=live]', { timeout: 15_000 });
  return page;
}
