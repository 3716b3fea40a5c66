// api_settings.test.mjs - the settings API end to end (docs/api.md): listing and reading
// each feature's settings with its schema, saving (version, audit_log, the Redis copy),
// schema errors per field, version conflicts, the core toggle, unknown features, bad and
// oversized bodies, the role hierarchy of "role" settings, and premium fields
// (x-premium) across free, premium, expired and grace.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { cleanupGuild, exec, query, redis } from '../lib/store.mjs';

const h = harness();
const DEVELOPER = '444455556666777788';

const q = (sql, params) => query(h.stack.DATABASE_URL, sql, params);
const x = (sql, params) => exec(h.stack.DATABASE_URL, sql, params);

/** A fresh guild in the fake, installed by its owner, and the owner logged in (after the
 * guild exists, so that the owner's guild list holds it). */
async function setup(t) {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, g.guild.id);
  return { g, gid: g.guild.id, owner };
}

function expectError(r, status, code) {
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status}: ${r.text}`);
  assert.equal(r.body?.error?.code, code, r.text);
  assert.equal(typeof r.body.error.message, 'string');
  assert.ok(r.body.error.message.length > 0, 'a message for the person');
}

/** Paths of error.fields; a field path names the setting, with or without /document. */
const fieldPaths = (r) => (r.body?.error?.fields ?? []).map((f) => f.path);
function expectField(r, name) {
  const re = new RegExp(`^(?:/document)?/${name}$`);
  const f = (r.body?.error?.fields ?? []).find((e) => re.test(e.path));
  assert.ok(f, `error.fields names /${name}: ${JSON.stringify(fieldPaths(r))}`);
  assert.equal(typeof f.message, 'string');
  assert.ok(f.message.length > 0);
  return f;
}

const settingsRow = (gid, feature) =>
  q("SELECT document, version, updated_by::text AS updated_by FROM guild_settings WHERE guild_id = :'g' AND feature = :'f'",
    { g: gid, f: feature })[0];
const auditRows = (gid, action) =>
  q("SELECT actor_id::text AS actor_id, target, before, after, corr FROM audit_log WHERE guild_id = :'g' AND action = :'a' ORDER BY id",
    { g: gid, a: action });
const denials = (gid) =>
  q("SELECT user_id::text AS user_id, required_tier::text AS required_tier, effective_tier::text AS effective_tier, what FROM premium_denials WHERE guild_id = :'g' ORDER BY id",
    { g: gid });
const settingsKey = (gid, feature) => `bot:{${gid}}:settings:${feature}`;

const put = (c, gid, feature, document, version) => c.put(`/guilds/${gid}/settings/${feature}`, { document, version });

// ------------------------------------------------------------------ premium helpers
/** Codes issued by the developer through the API; their rows are deleted after the test
 * (a redeemed code holds a RESTRICT key on the guild). */
async function issueCodes(t, { tier = 'premium', days = 30, count = 1 } = {}) {
  const dev = await sessionFor(h.stack, DEVELOPER);
  const r = await dev.post('/premium/codes', { tier, days, count });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.codes.length, count);
  const hashes = r.body.codes.map((c) => crypto.createHash('sha256').update(c).digest('hex'));
  t.after(() => {
    for (const hash of hashes) x("DELETE FROM premium_codes WHERE code_hash = :'h'", { h: hash });
  });
  return r.body.codes;
}

/** Premium for the guild through a code redeemed by its owner. */
async function makePremium(t, owner, gid) {
  const [code] = await issueCodes(t);
  const r = await owner.post(`/guilds/${gid}/premium/redeem`, { code });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 'active');
  t.after(() => {
    const errors = cleanupGuild(h.stack, gid); // again, now that the code row is gone
    if (errors.length) process.stderr.write(`# cleanup of guild ${gid}: ${errors.join('; ')}\n`);
  });
}

/** Moves the guild's subscription into the past (expired, or in grace) and drops the
 * cached status so the next read sees it. */
function setPremiumTimes(gid, { expiresAgo, graceIn }) {
  x(`UPDATE premium_subscriptions SET starts_at = now() - interval '60 days',
       expires_at = now() - (:'ea')::interval, grace_until = now() + (:'gi')::interval
     WHERE guild_id = :'g'`, { g: gid, ea: expiresAgo, gi: graceIn });
  assert.equal(q("SELECT count(*)::int AS n FROM premium_subscriptions WHERE guild_id = :'g'", { g: gid })[0].n, 1);
  redis(h.stack.REDIS_URL, 'DEL', `bot:{${gid}}:premium:status`);
}

// ================================================================== reading

test('GET settings lists every feature with its schema; GET one feature answers the same', async (t) => {
  const { gid, owner } = await setup(t);
  const r = await owner.get(`/guilds/${gid}/settings`);
  assert.equal(r.status, 200, r.text);
  const list = r.body.settings;
  assert.ok(Array.isArray(list));
  const names = list.map((s) => s.feature);
  for (const f of ['core', 'utility', 'premium']) assert.ok(names.includes(f), `${f} listed: ${names}`);
  for (const s of list) {
    assert.equal(typeof s.title, 'string', s.feature);
    assert.equal(typeof s.description, 'string', s.feature);
    assert.equal(typeof s.enabled, 'boolean', s.feature);
    assert.equal(typeof s.can_disable, 'boolean', s.feature);
    assert.equal(s.version, 0, `${s.feature}: no settings yet`);
    assert.deepEqual(s.document, {}, s.feature);
    assert.ok(s.schema && typeof s.schema === 'object' && !Array.isArray(s.schema), `${s.feature} has a schema object`);
    assert.equal(typeof s.premium_tier, 'string', s.feature);
  }
  const core = list.find((s) => s.feature === 'core');
  assert.equal(core.can_disable, false);
  assert.equal(core.enabled, true);
  assert.equal(core.schema.type, 'object');
  assert.equal(core.schema.properties.alert_channel_id.format, 'channel');
  assert.equal(core.schema.properties.embed_color['x-premium'], 'premium');
  const utility = list.find((s) => s.feature === 'utility');
  assert.equal(utility.can_disable, true);
  assert.equal(utility.enabled, true);
  assert.equal(utility.schema.properties.enabled.type, 'boolean');

  const one = await owner.get(`/guilds/${gid}/settings/core`);
  assert.equal(one.status, 200, one.text);
  assert.equal(one.body.feature, 'core');
  assert.equal(one.body.version, 0);
  assert.equal(one.body.enabled, true);
  assert.deepEqual(one.body.document, {});
  assert.deepEqual(one.body.schema, core.schema);
});

test('an unknown feature is 404 for GET and PUT, and nothing is saved', async (t) => {
  const { gid, owner } = await setup(t);
  expectError(await owner.get(`/guilds/${gid}/settings/no_such_feature`), 404, 'not_found');
  expectError(await put(owner, gid, 'no_such_feature', { enabled: false }, 0), 404, 'not_found');
  assert.equal(q("SELECT count(*)::int AS n FROM guild_settings WHERE guild_id = :'g'", { g: gid })[0].n, 0);
});

// ================================================================== saving

test('PUT valid settings: 200, version +1, audit_log row, Redis copy dropped then refreshed', async (t) => {
  const { g, gid, owner } = await setup(t);
  const key = settingsKey(gid, 'core');

  // a read fills the cache with version 0
  assert.equal((await owner.get(`/guilds/${gid}/settings/core`)).status, 200);
  const cached0 = redis(h.stack.REDIS_URL, 'GET', key);
  assert.ok(cached0, `${key} is filled by a read`);
  assert.equal(JSON.parse(cached0).v, 0);

  const doc1 = { alert_channel_id: g.channels.modLog.id };
  const r1 = await put(owner, gid, 'core', doc1, 0);
  assert.equal(r1.status, 200, r1.text);
  assert.equal(r1.body.feature, 'core');
  assert.equal(r1.body.version, 1);
  assert.equal(r1.body.enabled, true);
  assert.deepEqual(r1.body.document, doc1);
  assert.equal(redis(h.stack.REDIS_URL, 'EXISTS', key), '0', 'the write dropped the cached copy');

  const row1 = settingsRow(gid, 'core');
  assert.deepEqual(row1.document, doc1);
  assert.equal(row1.version, 1);
  assert.equal(row1.updated_by, users.owner.id);
  let audit = auditRows(gid, 'settings.update');
  assert.equal(audit.length, 1);
  assert.equal(audit[0].actor_id, users.owner.id);
  assert.equal(audit[0].target, 'core');
  assert.equal(audit[0].before, null);
  assert.deepEqual(audit[0].after, doc1);

  // the next read sees version 1 and caches it
  const read = await owner.get(`/guilds/${gid}/settings/core`);
  assert.equal(read.body.version, 1);
  assert.deepEqual(read.body.document, doc1);
  const cached1 = JSON.parse(redis(h.stack.REDIS_URL, 'GET', key));
  assert.equal(cached1.v, 1);
  assert.deepEqual(cached1.doc, doc1);
  assert.ok(Number(redis(h.stack.REDIS_URL, 'TTL', key)) > 0, `${key} has a TTL`);

  const doc2 = { alert_channel_id: g.channels.general.id };
  const r2 = await put(owner, gid, 'core', doc2, 1);
  assert.equal(r2.status, 200, r2.text);
  assert.equal(r2.body.version, 2);
  assert.equal(redis(h.stack.REDIS_URL, 'EXISTS', key), '0');
  assert.equal(settingsRow(gid, 'core').version, 2);
  audit = auditRows(gid, 'settings.update');
  assert.equal(audit.length, 2);
  assert.deepEqual(audit[1].before, doc1);
  assert.deepEqual(audit[1].after, doc2);
  assert.equal(audit[1].actor_id, users.owner.id);
});

test('schema errors: 400 invalid_settings naming each bad field, nothing saved', async (t) => {
  const { gid, owner } = await setup(t);
  const r = await put(owner, gid, 'core', {
    alert_channel_id: 12345, // ids are strings
    manager_role_id: 'not-a-snowflake',
    embed_color: 16777216, // above 0xffffff
    bogus: true, // not in the schema
  }, 0);
  expectError(r, 400, 'invalid_settings');
  for (const f of ['alert_channel_id', 'manager_role_id', 'embed_color', 'bogus']) expectField(r, f);

  const r2 = await put(owner, gid, 'core', { alert_channel_id: '123456789012345678' }, 0);
  expectError(r2, 400, 'invalid_settings');
  expectField(r2, 'alert_channel_id'); // a snowflake, but no channel of this guild

  const r3 = await put(owner, gid, 'utility', { enabled: 'no' }, 0);
  assert.equal(r3.status, 400, r3.text);
  expectField(r3, 'enabled');

  assert.equal(q("SELECT count(*)::int AS n FROM guild_settings WHERE guild_id = :'g'", { g: gid })[0].n, 0);
  assert.equal(auditRows(gid, 'settings.update').length, 0);
  assert.equal(denials(gid).length, 0, 'a schema error is not a premium refusal');
});

test('a PUT without document or version is 400 invalid_input', async (t) => {
  const { gid, owner } = await setup(t);
  const r1 = await owner.put(`/guilds/${gid}/settings/core`, { version: 0 });
  expectError(r1, 400, 'invalid_input');
  assert.ok(fieldPaths(r1).includes('/document'), JSON.stringify(fieldPaths(r1)));
  const r2 = await owner.put(`/guilds/${gid}/settings/core`, { document: {} });
  expectError(r2, 400, 'invalid_input');
  assert.ok(fieldPaths(r2).includes('/version'), JSON.stringify(fieldPaths(r2)));
  assert.equal(settingsRow(gid, 'core'), undefined);
});

test('a wrong or old version is 409 version_conflict and changes nothing', async (t) => {
  const { g, gid, owner } = await setup(t);
  const doc1 = { alert_channel_id: g.channels.general.id };
  assert.equal((await put(owner, gid, 'core', doc1, 0)).status, 200);

  expectError(await put(owner, gid, 'core', { alert_channel_id: g.channels.modLog.id }, 0), 409, 'version_conflict');
  expectError(await put(owner, gid, 'core', { alert_channel_id: g.channels.modLog.id }, 7), 409, 'version_conflict');

  const row = settingsRow(gid, 'core');
  assert.equal(row.version, 1);
  assert.deepEqual(row.document, doc1);
  assert.equal(auditRows(gid, 'settings.update').length, 1);
});

test('"enabled": false on core (cannot be disabled) is 400 and nothing is saved', async (t) => {
  const { gid, owner } = await setup(t);
  const r = await put(owner, gid, 'core', { enabled: false }, 0);
  assert.equal(r.status, 400, r.text);
  assert.ok(['invalid_input', 'invalid_settings'].includes(r.body?.error?.code), r.text);
  expectField(r, 'enabled');
  assert.equal(settingsRow(gid, 'core'), undefined);
  const one = await owner.get(`/guilds/${gid}/settings/core`);
  assert.equal(one.body.enabled, true);
});

test('a body that is not JSON (or not an object) is 400 invalid_json', async (t) => {
  const { gid, owner } = await setup(t);
  for (const body of ['{"document": {', 'not json at all', '[1, 2]']) {
    const r = await owner.api('PUT', `/guilds/${gid}/settings/utility`, { body });
    expectError(r, 400, 'invalid_json');
  }
  assert.equal(settingsRow(gid, 'utility'), undefined);
});

test('a body over the size limit is 413 body_too_large', async (t) => {
  const { gid, owner } = await setup(t);
  const body = JSON.stringify({ document: { enabled: true, padding: 'x'.repeat(300 * 1024) }, version: 0 });
  const r = await owner.api('PUT', `/guilds/${gid}/settings/utility`, { body });
  assert.equal(r.status, 413, r.text.slice(0, 300));
  assert.ok(r.body, `413 answer is JSON: ${r.text.slice(0, 300)}`);
  assert.equal(r.body.error.code, 'body_too_large', `docs/api.md names the code body_too_large: ${r.text.slice(0, 300)}`);
  assert.equal(settingsRow(gid, 'utility'), undefined);
});

// ================================================================== role hierarchy

/** The owner grants the moderator access; returns the moderator's client. */
async function grantModerator(owner, gid) {
  const r = await owner.post(`/guilds/${gid}/authorized-users`, { user_id: users.moderator.id });
  assert.equal(r.status, 201, r.text);
  return sessionFor(h.stack, users.moderator.id);
}

function hierarchyEvents(gid, userId) {
  return q(`SELECT kind, user_id::text AS user_id, detail FROM security_events
             WHERE guild_id = :'g' AND kind = 'settings.role_hierarchy' AND user_id = :'u' ORDER BY id`, { g: gid, u: userId });
}

test('core schema has the role setting manager_role_id (format role)', async (t) => {
  const { gid, owner } = await setup(t);
  const r = await owner.get(`/guilds/${gid}/settings/core`);
  assert.equal(r.body.schema?.properties?.manager_role_id?.format, 'role',
    'features/core/schema.json lacks "manager_role_id" with "format": "role"; the role hierarchy tests depend on it');
});

test('a granted moderator (highest role 3) cannot choose a role at or above it; a lower role saves', async (t) => {
  const { g, gid, owner } = await setup(t);
  const mod = await grantModerator(owner, gid);

  const above = await put(mod, gid, 'core', { manager_role_id: g.roles.admin.id }, 0);
  expectError(above, 403, 'role_hierarchy');
  expectField(above, 'manager_role_id');
  assert.equal(settingsRow(gid, 'core'), undefined, 'nothing saved');
  const ev = hierarchyEvents(gid, users.moderator.id);
  assert.equal(ev.length, 1, 'one security_events row settings.role_hierarchy');

  const own = await put(mod, gid, 'core', { manager_role_id: g.roles.moderator.id }, 0);
  expectError(own, 403, 'role_hierarchy'); // equal to the highest role is not below it
  expectField(own, 'manager_role_id');
  assert.equal(hierarchyEvents(gid, users.moderator.id).length, 2);

  const below = await put(mod, gid, 'core', { manager_role_id: g.roles.member.id }, 0);
  assert.equal(below.status, 200, below.text);
  assert.equal(below.body.version, 1);
  assert.equal(settingsRow(gid, 'core').document.manager_role_id, g.roles.member.id);
  const audit = auditRows(gid, 'settings.update');
  assert.equal(audit.length, 1);
  assert.equal(audit[0].actor_id, users.moderator.id);
});

test('a role the owner chose stays savable by a lower member; only changed roles are checked', async (t) => {
  const { g, gid, owner } = await setup(t);
  const mod = await grantModerator(owner, gid);
  // the owner picks the Moderator role (3: below the bot's 4)
  const r1 = await put(owner, gid, 'core', { manager_role_id: g.roles.moderator.id }, 0);
  assert.equal(r1.status, 200, r1.text);
  // the moderator saves the form with that role unchanged plus another change
  const r2 = await put(mod, gid, 'core', { manager_role_id: g.roles.moderator.id, alert_channel_id: g.channels.general.id }, 1);
  assert.equal(r2.status, 200, r2.text);
  assert.equal(settingsRow(gid, 'core').version, 2);
  assert.equal(hierarchyEvents(gid, users.moderator.id).length, 0);
});

test('the owner may choose any role below the bot role, never one above it', async (t) => {
  const { g, gid, owner } = await setup(t);
  const above = await put(owner, gid, 'core', { manager_role_id: g.roles.admin.id }, 0);
  expectError(above, 403, 'role_hierarchy'); // Admin 5 > Guildhall 4, even for the owner
  expectField(above, 'manager_role_id');
  assert.equal(settingsRow(gid, 'core'), undefined);
  assert.equal(hierarchyEvents(gid, users.owner.id).length, 1);

  const r1 = await put(owner, gid, 'core', { manager_role_id: g.roles.moderator.id }, 0);
  assert.equal(r1.status, 200, r1.text);
  const r2 = await put(owner, gid, 'core', { manager_role_id: g.roles.muted.id }, 1);
  assert.equal(r2.status, 200, r2.text);
  const row = settingsRow(gid, 'core');
  assert.equal(row.version, 2);
  assert.equal(row.document.manager_role_id, g.roles.muted.id);
});

test('@everyone, the managed bot role and a role of no guild are 400 invalid_settings', async (t) => {
  const { g, gid, owner } = await setup(t);
  for (const [what, id] of [['@everyone', gid], ['the managed bot role', g.roles.bot.id], ['an unknown role', '123456789012345679']]) {
    const r = await put(owner, gid, 'core', { manager_role_id: id }, 0);
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.equal(r.body.error.code, 'invalid_settings', `${what}: ${r.text}`);
    expectField(r, 'manager_role_id');
  }
  assert.equal(settingsRow(gid, 'core'), undefined);
});

// ================================================================== premium fields

test('embed_color (x-premium) on a free guild is 403 premium_required; after a redeemed code it saves', async (t) => {
  const { gid, owner } = await setup(t);
  const r = await put(owner, gid, 'core', { embed_color: 0x3366ff }, 0);
  expectError(r, 403, 'premium_required');
  assert.equal(typeof r.body.error.upgrade_url, 'string');
  assert.ok(r.body.error.upgrade_url.length > 0, 'upgrade_url is set');
  expectField(r, 'embed_color');
  assert.equal(settingsRow(gid, 'core'), undefined, 'nothing saved');
  let d = denials(gid);
  assert.equal(d.length, 1, 'the refusal wrote a premium_denials row');
  assert.equal(d[0].user_id, users.owner.id);
  assert.equal(d[0].required_tier, 'premium');
  assert.equal(d[0].effective_tier, null);

  await makePremium(t, owner, gid);
  const ok = await put(owner, gid, 'core', { embed_color: 0x3366ff }, 0);
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.body.version, 1);
  assert.equal(settingsRow(gid, 'core').document.embed_color, 0x3366ff);
  d = denials(gid);
  assert.equal(d.length, 1, 'an allowed change writes no denial');
});

test('after premium expires, a stored premium value stays savable but cannot change; grace allows changes', async (t) => {
  const { g, gid, owner } = await setup(t);
  await makePremium(t, owner, gid);
  assert.equal((await put(owner, gid, 'core', { embed_color: 0x112233 }, 0)).status, 200);

  // expired: expires_at and grace_until in the past
  setPremiumTimes(gid, { expiresAgo: '10 days', graceIn: '-3 days' });
  const st = await owner.get(`/guilds/${gid}/premium`);
  assert.equal(st.status, 200, st.text);
  assert.equal(st.body.status, 'expired');
  assert.equal(st.body.effective_tier, 'free');

  const change = await put(owner, gid, 'core', { embed_color: 0x445566 }, 1);
  expectError(change, 403, 'premium_required');
  expectField(change, 'embed_color');
  assert.equal(typeof change.body.error.upgrade_url, 'string');
  let row = settingsRow(gid, 'core');
  assert.equal(row.version, 1);
  assert.equal(row.document.embed_color, 0x112233, 'the downgrade deleted nothing');
  assert.equal(denials(gid).length, 1, 'the refusal wrote a premium_denials row');

  const same = await put(owner, gid, 'core', { embed_color: 0x112233, alert_channel_id: g.channels.general.id }, 1);
  assert.equal(same.status, 200, `an unrelated edit with the stored premium value saves: ${same.text}`);
  assert.equal(same.body.version, 2);
  row = settingsRow(gid, 'core');
  assert.equal(row.document.embed_color, 0x112233);
  assert.equal(row.document.alert_channel_id, g.channels.general.id);
  assert.equal(denials(gid).length, 1);

  // in grace: expired, but grace_until is ahead
  setPremiumTimes(gid, { expiresAgo: '2 days', graceIn: '5 days' });
  const grace = await owner.get(`/guilds/${gid}/premium`);
  assert.equal(grace.body.status, 'grace');
  assert.equal(grace.body.effective_tier, 'premium');
  const inGrace = await put(owner, gid, 'core', { embed_color: 0x778899, alert_channel_id: g.channels.general.id }, 2);
  assert.equal(inGrace.status, 200, inGrace.text);
  assert.equal(settingsRow(gid, 'core').document.embed_color, 0x778899);
  assert.equal(denials(gid).length, 1, 'grace refuses nothing');
});
