// api_premium.test.mjs - premium through the API (docs/api.md, docs/features/premium.md):
// a fresh guild's status and tier table, the one trial, codes (developer only, shown once,
// stored hashed), redeeming (once, unknown codes), isolation between guilds, and the
// /premium slash command.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { chatInput, users } from '../lib/fixtures.mjs';
import { EPHEMERAL, messageText } from '../lib/gh.mjs';
import { harness } from '../lib/harness.mjs';
import { cleanupGuild, exec, query } from '../lib/store.mjs';

const h = harness();
const DEVELOPER = '444455556666777788';
const CODE_RE = /^GH-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}$/;

const q = (sql, params) => query(h.stack.DATABASE_URL, sql, params);
const x = (sql, params) => exec(h.stack.DATABASE_URL, sql, params);
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

/** Fresh guilds in the fake, installed by the owner, then the owner logged in. Redeemed
 * codes hold a RESTRICT key on their guild: codes issued in the test are deleted after it,
 * and then the guilds cleaned again. */
async function setup(t, n = 1) {
  const gs = [];
  for (let i = 0; i < n; i++) gs.push(await h.newGuild(t));
  const hashes = [];
  t.after(() => {
    for (const hash of hashes) x("DELETE FROM premium_codes WHERE code_hash = :'h'", { h: hash });
    for (const g of gs) {
      const errors = cleanupGuild(h.stack, g.guild.id);
      if (errors.length) process.stderr.write(`# cleanup of guild ${g.guild.id}: ${errors.join('; ')}\n`);
    }
  });
  for (const g of gs) await installGuild(h.fake, g.guild.id, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, gs.map((g) => g.guild.id));
  return { gs, owner, hashes };
}

async function issueCodes(hashes, { tier = 'premium', days = 30, count = 1 } = {}) {
  const dev = await sessionFor(h.stack, DEVELOPER);
  const r = await dev.post('/premium/codes', { tier, days, count });
  assert.equal(r.status, 201, r.text);
  for (const c of r.body.codes ?? []) hashes.push(sha256(c));
  return r;
}

function expectError(r, status, code) {
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status}: ${r.text}`);
  assert.equal(r.body?.error?.code, code, r.text);
  assert.equal(typeof r.body.error.message, 'string');
  assert.ok(r.body.error.message.length > 0);
}

const subscription = (gid) =>
  q(`SELECT tier::text AS tier, source::text AS source, source_ref, expires_at, grace_until
       FROM premium_subscriptions WHERE guild_id = :'g'`, { g: gid })[0];
const historyCount = (gid) => q("SELECT count(*)::int AS n FROM premium_history WHERE guild_id = :'g'", { g: gid })[0].n;
const auditRows = (gid, action) =>
  q("SELECT actor_id::text AS actor_id, target, before, after FROM audit_log WHERE guild_id = :'g' AND action = :'a' ORDER BY id",
    { g: gid, a: action });

async function premiumCommand(g) {
  const r = await h.send(chatInput('premium', { guild: g, user: 'owner' }));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.type, 4);
  assert.equal(r.body.data.flags & EPHEMERAL, EPHEMERAL, '/premium is ephemeral');
  assert.ok('allowed_mentions' in r.body.data);
  return messageText(r.body.data);
}

const DAY = 86400e3;

test('GET premium of a fresh guild: free, none, the trial available, the tier table', async (t) => {
  const { gs: [g], owner } = await setup(t);
  const r = await owner.get(`/guilds/${g.guild.id}/premium`);
  assert.equal(r.status, 200, r.text);
  const p = r.body;
  assert.equal(p.tier, 'free');
  assert.equal(p.effective_tier, 'free');
  assert.equal(p.status, 'none');
  assert.equal(p.trial_available, true);
  assert.equal(p.expires_at, null);
  assert.equal(typeof p.upgrade_url, 'string');
  assert.match(p.upgrade_url, /^https?:\/\//);
  assert.deepEqual(p.history, []);
  assert.deepEqual(p.tiers.map((x) => [x.name, x.rank]), [['free', 0], ['premium', 1], ['pro', 2]]);
  for (const tier of p.tiers) {
    assert.equal(typeof tier.title, 'string');
    assert.ok(Array.isArray(tier.unlocks) && tier.unlocks.length > 0, `${tier.name} lists what it unlocks`);
  }
  // docs/features/premium.md's table
  assert.deepEqual(p.tiers[0].limits, { role_panels: 3, triggers: 10, giveaways: 2 });
  assert.deepEqual(p.tiers[1].limits, { role_panels: 25, triggers: 100, giveaways: 20 });
  assert.deepEqual(p.tiers[2].limits, { role_panels: null, triggers: null, giveaways: null });
  assert.equal(subscription(g.guild.id), undefined);

  const overview = await owner.get(`/guilds/${g.guild.id}`);
  assert.deepEqual(overview.body.premium, { tier: 'free', status: 'none' });
});

test('the trial: 200 with status trial once, then 409; recorded in premium_trials and audit_log', async (t) => {
  const { gs: [g], owner } = await setup(t);
  const gid = g.guild.id;
  const r = await owner.post(`/guilds/${gid}/premium/trial`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 'trial');
  assert.equal(r.body.tier, 'premium');
  assert.equal(r.body.effective_tier, 'premium');
  assert.equal(r.body.source, 'trial');
  assert.equal(r.body.trial_available, false);
  const days = (Date.parse(r.body.expires_at) - Date.now()) / DAY;
  assert.ok(days > 6 && days <= 7.01, `a 7-day trial, expires ${r.body.expires_at}`);

  const trials = q("SELECT started_by::text AS started_by FROM premium_trials WHERE guild_id = :'g'", { g: gid });
  assert.equal(trials.length, 1);
  assert.equal(trials[0].started_by, users.owner.id);
  assert.equal(subscription(gid).source, 'trial');
  assert.equal(auditRows(gid, 'premium.trial').length, 1);
  assert.equal(historyCount(gid), 1);

  const again = await owner.post(`/guilds/${gid}/premium/trial`);
  expectError(again, 409, 'conflict');
  assert.equal(historyCount(gid), 1, 'the refused trial wrote nothing');
  assert.equal(auditRows(gid, 'premium.trial').length, 1);
  assert.equal((await owner.get(`/guilds/${gid}/premium`)).body.status, 'trial');
});

test('a granted user cannot start the trial or redeem (guild admin routes)', async (t) => {
  const { gs: [g], owner } = await setup(t);
  const gid = g.guild.id;
  assert.equal((await owner.post(`/guilds/${gid}/authorized-users`, { user_id: users.moderator.id })).status, 201);
  const mod = await sessionFor(h.stack, users.moderator.id);
  assert.equal((await mod.get(`/guilds/${gid}/premium`)).status, 200, 'a granted user reads premium');
  expectError(await mod.post(`/guilds/${gid}/premium/trial`), 403, 'forbidden');
  expectError(await mod.post(`/guilds/${gid}/premium/redeem`, { code: 'GH-00000-00000-00000-00000' }), 403, 'forbidden');
  assert.equal(q("SELECT count(*)::int AS n FROM premium_trials WHERE guild_id = :'g'", { g: gid })[0].n, 0);
});

test('codes: only developers issue them; shown once, stored only as hashes', async (t) => {
  const { owner, hashes } = await setup(t);
  const denied = await owner.post('/premium/codes', { tier: 'premium', days: 30, count: 2 });
  expectError(denied, 403, 'forbidden');
  assert.ok(q("SELECT count(*)::int AS n FROM security_events WHERE kind = 'developer.forbidden' AND user_id = :'u'",
    { u: users.owner.id })[0].n >= 1);

  const r = await issueCodes(hashes, { tier: 'premium', days: 30, count: 2 });
  const codes = r.body.codes;
  assert.equal(codes.length, 2);
  for (const c of codes) assert.match(c, CODE_RE);
  assert.notEqual(codes[0], codes[1]);

  const rows = q(`SELECT id::text AS id, code_hash, tier::text AS tier, days, created_by::text AS created_by,
                         redeemed_guild_id, redeemed_at, premium_codes::text AS whole
                    FROM premium_codes WHERE code_hash IN (:'h1', :'h2')`, { h1: hashes[0], h2: hashes[1] });
  assert.equal(rows.length, 2, 'each code is stored as sha256(code)');
  for (const row of rows) {
    assert.equal(row.tier, 'premium');
    assert.equal(row.days, 30);
    assert.equal(row.created_by, DEVELOPER);
    assert.equal(row.redeemed_guild_id, null);
    assert.equal(row.redeemed_at, null);
  }
  for (const c of codes) {
    const bare = c.replace(/-/g, '');
    const hits = q(`SELECT count(*)::int AS n FROM premium_codes
                     WHERE premium_codes::text ILIKE '%' || :'c' || '%' OR premium_codes::text ILIKE '%' || :'b' || '%'`,
    { c, b: bare })[0].n;
    assert.equal(hits, 0, 'no code text in premium_codes');
    const audit = q(`SELECT count(*)::int AS n FROM audit_log
                      WHERE action = 'premium.codes' AND (audit_log::text ILIKE '%' || :'c' || '%' OR audit_log::text ILIKE '%' || :'b' || '%')`,
    { c, b: bare })[0].n;
    assert.equal(audit, 0, 'no code text in audit_log');
  }
  const audit = q(`SELECT after FROM audit_log WHERE action = 'premium.codes' AND actor_id = :'u'
                    AND after->'ids' ?| :'ids'::text[]`, { u: DEVELOPER, ids: `{${rows.map((x) => x.id).join(',')}}` });
  assert.equal(audit.length, 1, 'one premium.codes audit row lists the new ids');

  const bad = await (await sessionFor(h.stack, DEVELOPER)).post('/premium/codes', { tier: 'gold', days: 30 });
  expectError(bad, 400, 'invalid_input');
  const badDays = await (await sessionFor(h.stack, DEVELOPER)).post('/premium/codes', { tier: 'premium', days: 0 });
  expectError(badDays, 400, 'invalid_input');
});

test('redeem: active; the same code again (other guild) 409; unknown code 400; guilds stay apart', async (t) => {
  const { gs: [a, b], owner, hashes } = await setup(t, 2);
  const A = a.guild.id;
  const B = b.guild.id;
  const [code1, code2] = (await issueCodes(hashes, { count: 2 })).body.codes;

  const bBefore = await owner.get(`/guilds/${B}/premium`);
  assert.equal(bBefore.body.status, 'none');

  // redeem in A, typed loosely (lower case, spaces): still the same code
  const typed = code1.toLowerCase().replace(/-/g, ' ');
  const r = await owner.post(`/guilds/${A}/premium/redeem`, { code: typed });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 'active');
  assert.equal(r.body.tier, 'premium');
  assert.equal(r.body.effective_tier, 'premium');
  assert.equal(r.body.source, 'code');
  const days = (Date.parse(r.body.expires_at) - Date.now()) / DAY;
  assert.ok(days > 29 && days <= 30.01, `30 days: ${r.body.expires_at}`);
  assert.ok(Date.parse(r.body.grace_until) > Date.parse(r.body.expires_at), 'a grace period follows');
  assert.ok(r.body.history.length >= 1);
  assert.equal(r.body.history[0].tier, 'premium');
  assert.equal(r.body.history[0].source, 'code');

  const row = q(`SELECT redeemed_guild_id::text AS gid, redeemed_by::text AS by FROM premium_codes WHERE code_hash = :'h'`,
    { h: sha256(code1) })[0];
  assert.equal(row.gid, A);
  assert.equal(row.by, users.owner.id);
  assert.equal(subscription(A).tier, 'premium');
  assert.equal(subscription(A).source, 'code');
  assert.equal(auditRows(A, 'premium.redeem').length, 1);
  assert.equal(auditRows(A, 'premium.redeem')[0].actor_id, users.owner.id);
  const overview = await owner.get(`/guilds/${A}`);
  assert.deepEqual(overview.body.premium, { tier: 'premium', status: 'active' });

  // the same code in B: 409, and B is untouched
  expectError(await owner.post(`/guilds/${B}/premium/redeem`, { code: code1 }), 409, 'conflict');
  // unknown (well shaped) and malformed codes: 400
  for (const code of ['GH-00000-00000-00000-00000', 'hello', '']) {
    const bad = await owner.post(`/guilds/${B}/premium/redeem`, { code });
    expectError(bad, 400, 'invalid_input');
  }
  const bAfter = await owner.get(`/guilds/${B}/premium`);
  assert.equal(bAfter.body.status, 'none', 'A\'s code changed nothing in B');
  assert.equal(bAfter.body.effective_tier, 'free');
  assert.deepEqual(bAfter.body.history, []);
  assert.equal(subscription(B), undefined);
  assert.equal(historyCount(B), 0);
  assert.equal(auditRows(B, 'premium.redeem').length, 0);
  const picker = await owner.get('/guilds');
  assert.equal(picker.body.guilds.find((x) => x.id === A)?.premium_tier, 'premium');
  assert.equal(picker.body.guilds.find((x) => x.id === B)?.premium_tier, 'free');

  // the second code is still good, in B
  const rb = await owner.post(`/guilds/${B}/premium/redeem`, { code: code2 });
  assert.equal(rb.status, 200, rb.text);
  assert.equal(rb.body.status, 'active');
  assert.equal(historyCount(A), 1, 'B\'s redemption wrote nothing for A');
  assert.equal(auditRows(A, 'premium.redeem').length, 1);
});

test('/premium answers the tier in force, per guild', async (t) => {
  const { gs: [a, b], owner, hashes } = await setup(t, 2);
  const freeText = await premiumCommand(a);
  assert.match(freeText, /\bFree\b/);
  assert.match(freeText, /free tier/i);

  const [code] = (await issueCodes(hashes)).body.codes;
  assert.equal((await owner.post(`/guilds/${a.guild.id}/premium/redeem`, { code })).status, 200);

  const aText = await premiumCommand(a);
  assert.match(aText, /Guildhall Premium/);
  assert.match(aText, /\bactive\b/i);
  assert.doesNotMatch(aText, /free tier/i);
  const bText = await premiumCommand(b);
  assert.match(bText, /free tier/i, 'guild B is still free');
  assert.doesNotMatch(bText, /Guildhall Premium is active/);
});
