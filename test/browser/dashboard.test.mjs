// dashboard.test.mjs - the dashboard in a real browser (Debian's chromium via
// playwright-core) against the test stack: Discord login through the fake's
// OAuth pages, the guild picker, a setting saved and still there after a
// reload, API errors shown to the person, a member without access, and a
// guild whose name is HTML. Screenshots: test/browser/artifacts/*.png.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, newPage, screenshot } from '../lib/browser.mjs';
import { FakeDiscord } from '../lib/fake.mjs';
import { DEMO_GUILD_ID, demoGuild, makeGuild, users } from '../lib/fixtures.mjs';
import { snowflake } from '../lib/snowflake.mjs';
import { loadStack } from '../lib/stack.mjs';
import { cleanupGuild, query } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const stack = loadStack();
const fake = new FakeDiscord(stack.fakeUrl);
const BASE = stack.GH_HTTP_URL.replace(/\/$/, '');
const DEMO = stack.GH_DEMO_GUILD_ID || DEMO_GUILD_ID;
const MOD_LOG = demoGuild.channels.modLog.id;
const GENERAL = demoGuild.channels.general.id;
const XSS_NAME = '<img src=x onerror=alert(1)>';

let browser;
before(async () => {
  const res = await fetch(`${BASE}/api/v1/auth/me`).catch((e) => { throw new Error(`Guildhall does not answer at ${BASE} (${e.cause?.message ?? e.message}); start the stack`); });
  assert.equal(res.status, 401, 'GET /api/v1/auth/me without a session answers 401 (is the API in?)');
  await fake.health();
  // The test profile does not install the demo guild (make run does): install it the way Discord
  // does, with the APPLICATION_AUTHORIZED webhook event, its owner as the installer. Idempotent.
  const r = await fake.install(DEMO, users.owner.id);
  assert.ok(r.status >= 200 && r.status < 300, `installing the demo guild: ${JSON.stringify(r).slice(0, 300)}`);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await fake.setOAuthUser(null).catch(() => {});
  await fake.clearFails().catch(() => {});
});

/** A page in a fresh context (no cookies) that counts dialogs; see page.errors. */
async function freshPage() {
  const page = await newPage(browser, { baseURL: BASE, viewport: { width: 1100, height: 800 } });
  page.setDefaultTimeout(15000);
  page.dialogs = [];
  page.on('dialog', async (d) => {
    page.dialogs.push(d.message());
    await d.dismiss().catch(() => {});
  });
  return page;
}

/**
 * page.errors without Chromium's "Failed to load resource" lines for the
 * HTTP errors a test provokes on purpose (the UI handles those: asserted
 * separately). expected: [[status, url substring], ...].
 */
function unexpectedErrors(page, expected = []) {
  return page.errors.filter((e) => {
    const m = /^Failed to load resource: the server responded with a status of (\d+)/.exec(e.text);
    if (!m) return true;
    const url = e.location?.url ?? '';
    return !expected.some(([status, part]) => Number(m[1]) === status && url.includes(part));
  });
}

/**
 * test() with a fresh page: fn(page, t). On a failure the page is saved as
 * artifacts/failed-<slug>.png; the context is closed either way.
 */
function browserTest(name, slug, fn) {
  test(name, async (t) => {
    const page = await freshPage();
    try {
      await fn(page, t);
    } catch (e) {
      await screenshot(page, `failed-${slug}`).catch(() => {});
      throw e;
    } finally {
      await page.context().close();
    }
  });
}

// Before logging in, the dashboard asks /auth/me and gets 401: that is how it learns it must show the login.
const BOOT_401 = [401, '/api/v1/auth/me'];

/** Clicks "Log in with Discord" and follows the fake's consent back to the picker. */
async function login(page, shot) {
  await page.goto('/');
  const button = page.getByRole('link', { name: 'Log in with Discord' });
  await button.waitFor();
  if (shot) await screenshot(page, shot);
  await button.click();
  await page.waitForURL(/\/#\/guilds$/);
  await page.getByRole('heading', { name: 'Your servers' }).waitFor();
  await page.locator('main:not([aria-busy="true"]) :is(.cards, .panel)').first().waitFor();
}

function coreSettings() {
  return query(stack.DATABASE_URL, "SELECT document, version FROM guild_settings WHERE guild_id = :'g' AND feature = 'core'", { g: DEMO })[0];
}

function utilityEnabled() {
  const row = query(stack.DATABASE_URL, "SELECT document FROM guild_settings WHERE guild_id = :'g' AND feature = 'utility'", { g: DEMO })[0];
  return row ? row.document.enabled !== false : true;
}

browserTest('log in, pick the demo guild, change a setting, reload and see it kept', 'settings', async (page) => {
  await login(page, 'login');
  const card = page.locator('.cards').getByRole('link', { name: /Guildhall Demo/ });
  await card.waitFor();
  await screenshot(page, 'guilds');

  await card.click();
  await page.waitForURL(new RegExp(`#/g/${DEMO}$`));
  await page.locator('.features').waitFor();
  await screenshot(page, 'overview');

  // The feature toggle, by keyboard: Space on the focused switch disables utility, then enables it again.
  const toggle = page.getByRole('switch', { name: 'Utility' });
  assert.equal(await toggle.isChecked(), true, 'utility starts enabled');
  await toggle.focus();
  await page.keyboard.press('Space');
  await page.getByText('Utility disabled.').waitFor();
  assert.equal(utilityEnabled(), false, 'guild_settings holds utility disabled');
  await page.keyboard.press('Space');
  await page.getByText('Utility enabled.').waitFor();
  assert.equal(utilityEnabled(), true, 'utility enabled again');

  await page.getByRole('link', { name: 'Core settings' }).click();
  const channel = page.getByLabel('Alert channel');
  await channel.waitFor();
  const before = coreSettings();
  await channel.selectOption(MOD_LOG);
  await page.getByText('Unsaved changes').waitFor();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Saved.', { exact: true }).waitFor();
  assert.equal(await page.getByText('Unsaved changes').isVisible(), false, 'no unsaved changes after saving');
  await screenshot(page, 'settings-saved');
  const saved = coreSettings();
  assert.equal(saved.document.alert_channel_id, MOD_LOG, 'guild_settings holds the channel');
  assert.ok(!before || saved.version > before.version, 'the version went up');

  await page.reload();
  await page.getByLabel('Alert channel').waitFor();
  assert.equal(await page.getByLabel('Alert channel').inputValue(), MOD_LOG, 'the channel is still chosen after a reload');
  assert.match(await page.getByLabel('Alert channel').locator('option:checked').innerText(), /#mod-log/);

  // Put it back so later runs start from the same state (and clearing a setting works).
  await page.getByLabel('Alert channel').selectOption('');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Saved.', { exact: true }).waitFor();
  assert.equal(coreSettings().document.alert_channel_id, undefined, 'the channel was cleared');

  assert.deepEqual(unexpectedErrors(page, [BOOT_401]), [], 'no console errors');
  assert.deepEqual(page.dialogs, [], 'no dialog');
});

browserTest('API errors are shown to the person with what to do', 'api-error', async (page, t) => {
  await login(page);

  await t.test('Discord failing during member search: the message and a retry that works', async () => {
    await page.goto(`/#/g/${DEMO}/access`);
    const box = page.getByLabel('Find a member to grant access');
    await box.waitFor();
    // 503 on the search for the first call and the REST client's 3 retries (REST_MAX_RETRIES default).
    await fake.fail({ method: 'GET', path_re: `/guilds/${DEMO}/members/search`, status: 503, count: 4 });
    await box.fill('bob');
    await box.press('Enter');
    const alert = page.locator('.search-results [role="alert"]');
    await alert.waitFor();
    assert.match(await alert.innerText(), /Discord did not answer/i);
    await screenshot(page, 'api-error');
    await fake.clearFails();
    await alert.getByRole('button', { name: 'Retry' }).click();
    await page.getByRole('button', { name: /Grant access Bob/ }).waitFor();
  });

  await t.test('someone else saved first: 409 version_conflict offers a reload', async () => {
    await page.goto(`/#/g/${DEMO}/settings/core`);
    const channel = page.getByLabel('Alert channel');
    await channel.waitFor();
    // Another tab (same session) saves in between.
    const cur = await (await page.request.get(`/api/v1/guilds/${DEMO}/settings/core`)).json();
    const csrf = (await page.context().cookies()).find((c) => c.name === 'gh_csrf')?.value;
    const other = await page.request.put(`/api/v1/guilds/${DEMO}/settings/core`, {
      headers: { 'X-CSRF-Token': csrf ?? '' }, data: { document: { ...cur.document, alert_channel_id: GENERAL }, version: cur.version },
    });
    assert.equal(other.status(), 200, `the other save: ${await other.text()}`);

    await channel.selectOption(MOD_LOG);
    await page.getByRole('button', { name: 'Save' }).click();
    const alert = page.locator('.form-msg [role="alert"]');
    await alert.waitFor();
    assert.match(await alert.innerText(), /Someone else saved/i);
    await screenshot(page, 'version-conflict');
    assert.equal(coreSettings().document.alert_channel_id, GENERAL, 'the conflicting save changed nothing');

    await alert.getByRole('button', { name: /Reload/ }).click();
    await waitFor(async () => (await page.getByLabel('Alert channel').inputValue()) === GENERAL,
      { message: 'the form shows the other save after the reload' });
    await page.getByLabel('Alert channel').selectOption('');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved.', { exact: true }).waitFor();
  });

  assert.deepEqual(unexpectedErrors(page, [BOOT_401, [500, '/members'], [409, '/settings/core']]), [], 'no other console errors');
  assert.deepEqual(page.dialogs, [], 'no dialog');
});

browserTest('a member without access sees no admin pages', 'no-access', async (page) => {
  await fake.setOAuthUser(users.member.id);
  try {
    await login(page);
    assert.match(await page.locator('#user').innerText(), /Bob/, 'logged in as the plain member');
    assert.equal(await page.locator(`a[href="#/g/${DEMO}"]`).count(), 0, 'the demo guild is not in the picker');
    assert.equal(await page.getByRole('link', { name: 'Jobs' }).count(), 0, 'no developer pages in the navigation');
    assert.equal(await page.getByRole('link', { name: 'Shards' }).count(), 0);

    await page.goto(`/#/g/${DEMO}`);
    const alert = page.locator('main [role="alert"]');
    await alert.waitFor();
    assert.match(await alert.innerText(), /don't have access to this server/i);
    assert.equal(await page.locator('.features').count(), 0, 'no feature toggles');
    assert.equal(await page.getByRole('link', { name: 'Access' }).count(), 0, 'no access management');
    await screenshot(page, 'no-access');

    await page.goto(`/#/g/${DEMO}/settings/core`);
    await page.locator('main [role="alert"]').waitFor();
    assert.equal(await page.locator('form.settings-form').count(), 0, 'no settings form');

    await page.goto('/#/dev/jobs');
    await page.getByText(/for Guildhall's operators/).waitFor();

    // The server refuses too, not just the UI.
    assert.equal((await page.request.get(`/api/v1/guilds/${DEMO}`)).status(), 403);
    assert.equal((await page.request.get('/api/v1/jobs/stats')).status(), 403);

    assert.deepEqual(unexpectedErrors(page, [BOOT_401, [403, `/guilds/${DEMO}`]]), [], 'no console errors');
    assert.deepEqual(page.dialogs, [], 'no dialog');
  } finally {
    await fake.setOAuthUser(null);
  }
});

browserTest('a guild named <img src=x onerror=alert(1)> renders as text', 'xss', async (page, t) => {
  const g = makeGuild({ name: XSS_NAME, ids: { guild: snowflake() }, botUserId: stack.DISCORD_APPLICATION_ID });
  t.after(() => {
    const errors = cleanupGuild(stack, g.guild.id);
    if (errors.length) process.stderr.write(`# cleanup of guild ${g.guild.id}: ${errors.join('; ')}\n`);
  });
  await fake.addGuild(g);
  const installed = await fake.install(g.guild.id, users.owner.id);
  assert.ok(installed.status >= 200 && installed.status < 300, `APPLICATION_AUTHORIZED accepted: ${JSON.stringify(installed).slice(0, 300)}`);

  await login(page);
  const card = page.locator(`.cards a[href="#/g/${g.guild.id}"]`);
  await card.waitFor();
  assert.equal(await card.locator('.name').innerText(), XSS_NAME, 'the picker shows the name literally');
  await screenshot(page, 'xss-guild');

  await card.click();
  await page.locator('.features').waitFor();
  assert.equal(await page.locator('main h1').innerText(), XSS_NAME, 'the overview heading shows the name literally');
  assert.equal(await page.locator('#nav .crumb').innerText(), XSS_NAME, 'and so does the navigation');

  const imgs = await page.evaluate(() => [...document.images].map((i) => i.getAttribute('src')));
  assert.ok(!imgs.includes('x'), `no <img src=x> was created (images: ${imgs.join(', ')})`);
  assert.equal(await page.evaluate(() => document.querySelectorAll('[onerror]').length), 0, 'no element carries an onerror attribute');
  assert.deepEqual(page.dialogs, [], 'no dialog fired');
  assert.deepEqual(unexpectedErrors(page, [BOOT_401]), [], 'no console errors');
});

browserTest('the Cases page: two cases, filter by type, open one, edit its reason', 'cases', async (page, t) => {
  // exec is not in this file's imports (this test is added at the end, on its own)
  const { exec } = await import('../lib/store.mjs');
  const g = makeGuild({ name: 'Cases Test', ids: { guild: snowflake() }, botUserId: stack.DISCORD_APPLICATION_ID });
  t.after(() => {
    const errors = cleanupGuild(stack, g.guild.id);
    if (errors.length) process.stderr.write(`# cleanup of guild ${g.guild.id}: ${errors.join('; ')}\n`);
  });
  await fake.addGuild(g);
  const installed = await fake.install(g.guild.id, users.owner.id);
  assert.ok(installed.status >= 200 && installed.status < 300, `APPLICATION_AUTHORIZED accepted: ${JSON.stringify(installed).slice(0, 300)}`);
  exec(stack.DATABASE_URL, `
INSERT INTO mod_cases (guild_id, number, type, status, target_id, moderator_id, reason, error, created_at) VALUES
  (:'g', 1, 'WARN', 'active', :'t', :'m', 'spam in #general', NULL, now() - interval '2 days'),
  (:'g', 2, 'BAN', 'failed', :'t', :'m', 'scam links', 'Missing Permissions', now() - interval '1 day');
INSERT INTO mod_case_counters (guild_id, last_number) VALUES (:'g', 2);`,
  { g: g.guild.id, t: users.member.id, m: users.moderator.id });
  const caseRow = (n) => query(stack.DATABASE_URL, "SELECT reason FROM mod_cases WHERE guild_id = :'g' AND number = :'n'", { g: g.guild.id, n: String(n) })[0];

  await login(page);
  await page.goto(`/#/g/${g.guild.id}`);
  await page.locator('.features').waitFor();
  await page.locator('nav.tabs').getByRole('link', { name: 'Cases' }).click();
  await page.waitForURL(new RegExp(`#/g/${g.guild.id}/cases$`));
  const rows = page.locator('.cases-list tbody tr');
  await waitFor(async () => (await rows.count()) === 2, { message: 'both cases listed' });
  const failed = page.locator('tr.failed');
  assert.equal(await failed.getAttribute('data-case'), '2', 'the failed ban is the row marked failed');
  assert.match(await failed.innerText(), /Discord refused: Missing Permissions/);

  await page.getByLabel('Type').selectOption('WARN');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await waitFor(async () => (await rows.count()) === 1 && (await rows.first().getAttribute('data-case')) === '1',
    { message: 'only the warning left after filtering by type' });
  assert.match(page.url(), /#\/g\/[0-9]+\/cases\?type=WARN$/, 'the filter is kept in the address');

  await page.getByRole('button', { name: 'Open case 1' }).click();
  await page.getByRole('heading', { name: 'Case #1' }).waitFor();
  await page.getByLabel('Edit the reason').fill('spam in #general, edited in the browser');
  await page.getByRole('button', { name: 'Save reason' }).click();
  await page.getByText('Case #1: reason saved.').waitFor();
  assert.equal(caseRow(1).reason, 'spam in #general, edited in the browser', 'mod_cases holds the new reason');
  await page.locator('.case-detail dd').getByText('edited in the browser').waitFor();
  assert.doesNotMatch(await page.locator('.case-detail').innerText(), /\bnull\b|undefined/, 'no empty value printed');
  await screenshot(page, 'cases');

  assert.deepEqual(unexpectedErrors(page, [BOOT_401]), [], 'no console errors');
  assert.deepEqual(page.dialogs, [], 'no dialog');
});
