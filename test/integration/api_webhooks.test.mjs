// api_webhooks.test.mjs - POST /webhooks/discord (lib/api/webhooks.c): Discord's signed webhook
// events as the fake Discord sends them. PING -> 204; a bad signature -> 401, a security event,
// nothing recorded; APPLICATION_AUTHORIZED records the guild, its installer (once) and an audit
// row; ENTITLEMENT_CREATE / DELETE drive the guild's premium tier, and a downgrade deletes no
// setting; an event for another application is refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { installGuild, lastSecurityEventId, loginAs, securityEvents } from '../lib/api.mjs';
import { query } from '../lib/store.mjs';

const h = harness();
const OWNER = users.owner.id;
const PREMIUM_SKU = '1300000000000000001';
const WEBHOOK_URL = `${h.stack.GH_HTTP_URL.replace(/\/$/, '')}/webhooks/discord`;

const db = (sql, params) => query(h.stack.DATABASE_URL, sql, params);
const guildRow = (gid) => db("SELECT name, is_active, added_by::text FROM guilds WHERE id = :'g'", { g: gid })[0];
const installers = (gid) => db(
  "SELECT user_id::text, is_installer, deleted_at FROM authorized_users WHERE guild_id = :'g' ORDER BY id", { g: gid });

test('PING answers 204 with an empty body', async () => {
  const r = await h.fake.webhookEvent('PING');
  assert.equal(r.status, 204, JSON.stringify(r.body));
  assert.ok(r.body === null || r.body === '', JSON.stringify(r.body));
  assert.equal(r.sent.type, 0);
});

for (const [what, opts] of [['tampered body', { tamper: true }], ['wrong key', { wrong_key: true }],
  ['no signature headers', { omit_headers: true }], ['stale timestamp', { timestamp: Math.floor(Date.now() / 1000) - 3600 }]]) {
  test(`a bad signature (${what}) is refused with 401, recorded, and changes nothing`, async (t) => {
    const g = await h.newGuild(t);
    const since = lastSecurityEventId(h.stack);
    const r = await h.fake.webhookEvent('APPLICATION_AUTHORIZED', undefined, { guild_id: g.guild.id, user_id: OWNER, ...opts });
    assert.equal(r.status, 401, JSON.stringify(r.body));
    assert.equal(r.body?.error?.code, 'unauthorized', JSON.stringify(r.body));
    const ev = securityEvents(h.stack, since, { kind: 'webhook.bad_signature' });
    assert.equal(ev.length, 1, JSON.stringify(ev));
    assert.equal(ev[0].method, 'POST');
    assert.equal(ev[0].path, '/webhooks/discord');
    assert.equal(guildRow(g.guild.id), undefined, 'no guilds row');
    assert.deepEqual(installers(g.guild.id), [], 'no authorized_users row');
    assert.deepEqual(db("SELECT id FROM audit_log WHERE guild_id = :'g'", { g: g.guild.id }), []);
  });
}

test('APPLICATION_AUTHORIZED records the guild, grants its installer once, audits the install', async (t) => {
  const g = await h.newGuild(t);
  const first = await installGuild(h.fake, g.guild.id, OWNER);
  assert.equal(first.sent.event.type, 'APPLICATION_AUTHORIZED');
  const row = guildRow(g.guild.id);
  assert.ok(row, 'a guilds row');
  assert.equal(row.is_active, true);
  assert.equal(row.name, g.guild.name);
  assert.equal(row.added_by, OWNER);
  assert.deepEqual(installers(g.guild.id), [{ user_id: OWNER, is_installer: true, deleted_at: null }]);
  const audit = db("SELECT actor_id::text, action, after FROM audit_log WHERE guild_id = :'g' AND action = 'guild.install'",
    { g: g.guild.id });
  assert.equal(audit.length, 1, JSON.stringify(audit));
  assert.equal(audit[0].actor_id, OWNER);
  assert.equal(audit[0].after.name, g.guild.name);

  // Discord retries: the same event again leaves one installer row
  const again = await h.fake.webhookEvent('APPLICATION_AUTHORIZED', first.sent.event.data);
  assert.equal(again.status, 204, JSON.stringify(again.body));
  assert.deepEqual(installers(g.guild.id), [{ user_id: OWNER, is_installer: true, deleted_at: null }]);
  assert.equal(guildRow(g.guild.id).is_active, true);

  // the installer reaches the guild in the dashboard, and sees itself as the installer
  const owner = await loginAs(h.stack, OWNER);
  const access = await owner.get(`/guilds/${g.guild.id}/authorized-users`);
  assert.equal(access.status, 200, access.text);
  assert.deepEqual(access.body.users.map((u) => [u.user_id, u.is_installer]), [[OWNER, true]]);
});

test('APPLICATION_AUTHORIZED by a non-owner installer grants that user (cannot be revoked)', async (t) => {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, users.moderator.id);
  assert.deepEqual(installers(g.guild.id), [{ user_id: users.moderator.id, is_installer: true, deleted_at: null }]);
  const mod = await loginAs(h.stack, users.moderator.id);
  const overview = await mod.get(`/guilds/${g.guild.id}`);
  assert.equal(overview.status, 200, overview.text);
  assert.equal(overview.body.access, 'granted');
  const owner = await loginAs(h.stack, OWNER);
  const revoke = await owner.del(`/guilds/${g.guild.id}/authorized-users/${users.moderator.id}`);
  assert.equal(revoke.status, 409, revoke.text);
  assert.equal(revoke.body.error.code, 'conflict');
  assert.equal(installers(g.guild.id)[0].deleted_at, null);
});

test('ENTITLEMENT_CREATE gives premium; ENTITLEMENT_DELETE downgrades to free and deletes no setting', async (t) => {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, OWNER);
  const owner = await loginAs(h.stack, OWNER);
  const gid = g.guild.id;

  const free = await owner.get(`/guilds/${gid}/premium`);
  assert.equal(free.status, 200, free.text);
  assert.equal(free.body.effective_tier, 'free');

  const created = await h.fake.createEntitlement({ guild_id: gid, sku_id: PREMIUM_SKU });
  assert.equal(created.delivery.status, 204, JSON.stringify(created.delivery));
  const eid = created.entitlement.id;
  const prem = await owner.get(`/guilds/${gid}/premium`);
  assert.equal(prem.status, 200, prem.text);
  assert.equal(prem.body.tier, 'premium', prem.text);
  assert.equal(prem.body.effective_tier, 'premium');
  assert.equal(prem.body.status, 'active');
  assert.equal(prem.body.source, 'entitlement');
  assert.ok(Date.parse(prem.body.expires_at) > Date.now(), prem.body.expires_at);
  const stored = db("SELECT tier::text, deleted, sku_id::text FROM premium_entitlements WHERE entitlement_id = :'e'", { e: eid });
  assert.deepEqual(stored, [{ tier: 'premium', deleted: false, sku_id: PREMIUM_SKU }]);
  // replayed by Discord: no second history row
  const historyCount = () => db("SELECT count(*)::int AS n FROM premium_history WHERE guild_id = :'g'", { g: gid })[0].n;
  const n1 = historyCount();
  const replay = await h.fake.webhookEvent('ENTITLEMENT_CREATE', created.entitlement);
  assert.equal(replay.status, 204, JSON.stringify(replay.body));
  assert.equal(historyCount(), n1, 'a replayed ENTITLEMENT_CREATE changes nothing');

  // a premium setting saved while premium, and an ordinary one
  const core = await owner.get(`/guilds/${gid}/settings/core`);
  const put = await owner.put(`/guilds/${gid}/settings/core`,
    { document: { embed_color: 0x123456, alert_channel_id: g.channels.modLog.id }, version: core.body.version });
  assert.equal(put.status, 200, put.text);
  const settingsBefore = db("SELECT feature, document::text, version FROM guild_settings WHERE guild_id = :'g' ORDER BY feature", { g: gid });

  const deleted = await h.fake.deleteEntitlement(eid);
  assert.equal(deleted.delivery.status, 204, JSON.stringify(deleted.delivery));
  const after = await owner.get(`/guilds/${gid}/premium`);
  assert.equal(after.status, 200, after.text);
  assert.equal(after.body.effective_tier, 'free', after.text);
  assert.notEqual(after.body.status, 'active');
  assert.ok(after.body.history.length >= 2, 'the grant and the end are both in the history');
  assert.deepEqual(db("SELECT deleted FROM premium_entitlements WHERE entitlement_id = :'e'", { e: eid }), [{ deleted: true }]);
  assert.deepEqual(
    db("SELECT feature, document::text, version FROM guild_settings WHERE guild_id = :'g' ORDER BY feature", { g: gid }),
    settingsBefore, 'the downgrade deleted or changed no setting');
  const kept = await owner.get(`/guilds/${gid}/settings/core`);
  assert.equal(kept.body.document.embed_color, 0x123456);
  assert.equal(kept.body.document.alert_channel_id, g.channels.modLog.id);
});

test('an event for another application_id is refused with 400 and recorded, nothing stored', async (t) => {
  const g = await h.newGuild(t);
  // a correctly signed APPLICATION_AUTHORIZED, but for another application
  const event = (applicationId) => ({
    version: 1, application_id: applicationId, type: 1,
    event: {
      type: 'APPLICATION_AUTHORIZED', timestamp: new Date().toISOString(),
      data: { integration_type: 0, user: users.owner, scopes: ['applications.commands', 'bot'], guild: g.guild },
    },
  });
  const body = event('1111111111111111111');
  const raw = JSON.stringify(body);
  const { signature, timestamp } = await h.fake.sign(raw);
  const since = lastSecurityEventId(h.stack);
  const res = await fetch(WEBHOOK_URL, {
    method: 'POST', body: raw,
    headers: { 'Content-Type': 'application/json', 'X-Signature-Ed25519': signature, 'X-Signature-Timestamp': timestamp },
  });
  const text = await res.text();
  assert.equal(res.status, 400, text);
  assert.equal(JSON.parse(text).error.code, 'invalid_input', text);
  assert.equal(securityEvents(h.stack, since, { kind: 'webhook.wrong_application' }).length, 1);
  assert.equal(guildRow(g.guild.id), undefined, 'no guilds row');
  assert.deepEqual(installers(g.guild.id), []);

  // control: the same bytes for our application, signed the same way, are accepted
  const ours = JSON.stringify(event(h.stack.DISCORD_APPLICATION_ID));
  const sig2 = await h.fake.sign(ours);
  const ok = await fetch(WEBHOOK_URL, {
    method: 'POST', body: ours,
    headers: { 'Content-Type': 'application/json', 'X-Signature-Ed25519': sig2.signature, 'X-Signature-Timestamp': sig2.timestamp },
  });
  assert.equal(ok.status, 204, await ok.text());
  assert.equal(guildRow(g.guild.id)?.is_active, true);
});

test('a webhook event that is not JSON, or GET, is refused', async () => {
  const raw = 'not json';
  const { signature, timestamp } = await h.fake.sign(raw);
  const bad = await fetch(WEBHOOK_URL, {
    method: 'POST', body: raw,
    headers: { 'Content-Type': 'application/json', 'X-Signature-Ed25519': signature, 'X-Signature-Timestamp': timestamp },
  });
  assert.equal(bad.status, 400, await bad.text());
  const get = await fetch(WEBHOOK_URL);
  assert.equal(get.status, 405);
});
