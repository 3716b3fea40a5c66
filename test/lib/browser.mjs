// browser.mjs - browser tests' plumbing: playwright-core driving Debian's chromium.
//
// playwright-core downloads no browser; it launches /usr/bin/chromium (override
// with GH_CHROMIUM). Pages record console errors and uncaught page errors on
// page.errors so a test can assert that the dashboard logged none. Screenshots
// go to test/browser/artifacts/<name>.png (git-ignored).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS_DIR = path.resolve(HERE, '..', 'browser', 'artifacts');
export const CHROMIUM_PATH = process.env.GH_CHROMIUM || '/usr/bin/chromium';

/** Starts a headless chromium. The caller closes it (browser.close()). */
export async function launchBrowser(opts = {}) {
  if (!fs.existsSync(CHROMIUM_PATH)) {
    throw new Error(`browser: ${CHROMIUM_PATH} not found (install Debian's chromium: apt-get install chromium)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    ...opts,
  });
}

/**
 * A page in a fresh context (own cookies). opts: baseURL, plus any
 * browser.newContext() option. page.errors collects
 * {type: 'console'|'pageerror', text, location?} in order.
 */
export async function newPage(browser, { baseURL, ...contextOpts } = {}) {
  const context = await browser.newContext({ baseURL, ...contextOpts });
  const page = await context.newPage();
  page.errors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.errors.push({ type: 'console', text: msg.text(), location: msg.location() });
  });
  page.on('pageerror', (err) => {
    page.errors.push({ type: 'pageerror', text: String(err?.stack ?? err?.message ?? err) });
  });
  return page;
}

/** Saves a full-page PNG as test/browser/artifacts/<name>.png; returns its path. */
export async function screenshot(page, name) {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`browser: screenshot name "${name}" must be [A-Za-z0-9._-]+`);
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
