// api_access.test.mjs - who may manage a guild from the dashboard (docs/api.md,
// docs/security.md): the installer, grants and revocations (authorized_users and their
// audit_log rows), what a granted user may and may not do, the guild picker
// (installed and not_installed), member search (and Discord failing), roles and channels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { query } from '../lib/store.mjs';

const h = harness();

const q = (sql, params) => query(h.stack.DATABASE_URL, sql, params);

async function setup(t, { install = true } = {}) {
  const g = await h.newGuild(t);
  if (install) await installGuild(h.fake, g.guild.id, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, g.guild.id);
  return { g, gid: g.guild.id, owner };
}

function expectError(r, status, code) {
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status}: ${r.text}`);
  assert.equal(r.body?.error?.code, code, r.text);
  assert.equal(typeof r.body.error.message, 'string');
  assert.ok(r.body.error.message.length > 0);
}

const accessRows = (gid) =>
  q(`SELECT user_id::text AS user_id, is_installer, granted_by::text AS granted_by, deleted_at
       FROM authorized_users WHERE guild_id = :'g' ORDER BY id`, { g: gid });
const auditRows = (gid, action) =>
  q("SELECT actor_id::text AS actor_id, target, before, after FROM audit_log WHERE guild_id = :'g' AND action = :'a' ORDER BY id",
    { g: gid, a: action });
const securityEvents = (gid, kind) =>
  q("SELECT user_id::text AS user_id, method, path FROM security_events WHERE guild_id = :'g' AND kind = :'k' ORDER BY id",
    { g: gid, k: kind });

test('authorized-users lists the installer first, marked is_installer', async (t) => {
  const { gid, owner } = await setup(t);
  const r = await owner.get(`/guilds/${gid}/authorized-users`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.users.length, 1);
  const u = r.body.users[0];
  assert.equal(u.user_id, users.owner.id);
  assert.equal(u.is_installer, true);
  assert.equal(u.username, users.owner.username);
  assert.match(u.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
  const rows = accessRows(gid);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].is_installer, true);
});

test('grant, use and revoke access: rows, audit_log, and what the granted user can do', async (t) => {
  const { g, gid, owner } = await setup(t);
  const mod = await sessionFor(h.stack, users.moderator.id);
  await refreshGuilds(mod, gid); // the moderator's list holds the guild (he is a member)

  // before the grant the moderator (no Manage Server) has no access
  expectError(await mod.get(`/guilds/${gid}/settings`), 403, 'forbidden');
  assert.ok(!(await mod.get('/guilds')).body.guilds.some((x) => x.id === gid));

  const grant = await owner.post(`/guilds/${gid}/authorized-users`, { user_id: users.moderator.id });
  assert.equal(grant.status, 201, grant.text);
  assert.equal(grant.body.user_id, users.moderator.id);
  assert.equal(grant.body.is_installer, false);
  assert.equal(grant.body.granted_by, users.owner.id);
  let rows = accessRows(gid).filter((r) => r.user_id === users.moderator.id);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].granted_by, users.owner.id);
  assert.equal(rows[0].deleted_at, null);
  const grants = auditRows(gid, 'access.grant');
  assert.equal(grants.length, 1);
  assert.equal(grants[0].actor_id, users.owner.id);
  assert.equal(grants[0].target, users.moderator.id);

  const listed = await owner.get(`/guilds/${gid}/authorized-users`);
  assert.deepEqual(listed.body.users.map((u) => [u.user_id, u.is_installer]),
    [[users.owner.id, true], [users.moderator.id, false]]);

  // the granted user sees the guild with access "granted" and reads its settings
  const picker = await mod.get('/guilds');
  assert.equal(picker.status, 200, picker.text);
  const entry = picker.body.guilds.find((x) => x.id === gid);
  assert.ok(entry, `granted guild listed: ${picker.text}`);
  assert.equal(entry.access, 'granted');
  const overview = await mod.get(`/guilds/${gid}`);
  assert.equal(overview.status, 200, overview.text);
  assert.equal(overview.body.access, 'granted');
  assert.equal(overview.body.can_manage_access, false);
  const settings = await mod.get(`/guilds/${gid}/settings`);
  assert.equal(settings.status, 200, settings.text);
  assert.ok(settings.body.settings.some((s) => s.feature === 'core'));

  // ... but does not manage access
  expectError(await mod.post(`/guilds/${gid}/authorized-users`, { user_id: users.member.id }), 403, 'forbidden');
  expectError(await mod.del(`/guilds/${gid}/authorized-users/${users.moderator.id}`), 403, 'forbidden');
  expectError(await mod.del(`/guilds/${gid}/authorized-users/${users.owner.id}`), 403, 'forbidden');
  assert.equal(accessRows(gid).filter((r) => r.deleted_at === null).length, 2, 'nothing changed');
  assert.ok(!accessRows(gid).some((r) => r.user_id === users.member.id));
  assert.equal(securityEvents(gid, 'guild.admin_required').filter((e) => e.user_id === users.moderator.id).length, 3);

  // revoke
  const del = await owner.del(`/guilds/${gid}/authorized-users/${users.moderator.id}`);
  assert.equal(del.status, 204, del.text);
  assert.equal(del.text, '');
  rows = accessRows(gid).filter((r) => r.user_id === users.moderator.id);
  assert.equal(rows.length, 1);
  assert.notEqual(rows[0].deleted_at, null, 'revoked (deleted_at set)');
  const revokes = auditRows(gid, 'access.revoke');
  assert.equal(revokes.length, 1);
  assert.equal(revokes[0].actor_id, users.owner.id);
  assert.equal(revokes[0].target, users.moderator.id);

  expectError(await mod.get(`/guilds/${gid}/settings`), 403, 'forbidden');
  expectError(await mod.get(`/guilds/${gid}`), 403, 'forbidden');
  assert.ok(!(await mod.get('/guilds')).body.guilds.some((x) => x.id === gid), 'no longer listed');
  assert.ok(securityEvents(gid, 'guild.forbidden').some((e) => e.user_id === users.moderator.id));
  const after = await owner.get(`/guilds/${gid}/authorized-users`);
  assert.deepEqual(after.body.users.map((u) => u.user_id), [users.owner.id]);

  // a second revoke finds nothing to revoke
  assert.equal((await owner.del(`/guilds/${gid}/authorized-users/${users.moderator.id}`)).status, 404);
  void g;
});

test('an admin (Administrator role) manages access too', async (t) => {
  const { gid } = await setup(t);
  const admin = await sessionFor(h.stack, users.admin.id);
  await refreshGuilds(admin, gid);
  const grant = await admin.post(`/guilds/${gid}/authorized-users`, { user_id: users.member.id });
  assert.equal(grant.status, 201, grant.text);
  assert.equal(grant.body.granted_by, users.admin.id);
  assert.equal(auditRows(gid, 'access.grant')[0].actor_id, users.admin.id);
  assert.equal((await admin.del(`/guilds/${gid}/authorized-users/${users.member.id}`)).status, 204);
});

test('the installer cannot be revoked (409)', async (t) => {
  const { gid, owner } = await setup(t);
  expectError(await owner.del(`/guilds/${gid}/authorized-users/${users.owner.id}`), 409, 'conflict');
  const rows = accessRows(gid);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].deleted_at, null);
  assert.equal(auditRows(gid, 'access.revoke').length, 0);
});

test('granting a non-member is 404; a bad user_id is 400; nothing is written', async (t) => {
  const { gid, owner } = await setup(t);
  // the developer user (dora) is in no fixture guild
  expectError(await owner.post(`/guilds/${gid}/authorized-users`, { user_id: '444455556666777788' }), 404, 'not_found');
  for (const body of [{ user_id: 'abc' }, { user_id: '0' }, { user_id: 42 }, {}]) {
    const r = await owner.post(`/guilds/${gid}/authorized-users`, body);
    expectError(r, 400, 'invalid_input');
    assert.ok(r.body.error.fields?.some((f) => f.path === '/user_id'), r.text);
  }
  assert.equal(accessRows(gid).length, 1, 'only the installer');
  assert.equal(auditRows(gid, 'access.grant').length, 0);
});

test('a guild the user manages without Guildhall is listed under not_installed with an install_url', async (t) => {
  const { gid, owner } = await setup(t, { install: false });
  const r = await owner.get('/guilds');
  assert.equal(r.status, 200, r.text);
  assert.ok(!r.body.guilds.some((x) => x.id === gid), 'not among the installed guilds');
  const entry = r.body.not_installed.find((x) => x.id === gid);
  assert.ok(entry, `not_installed lists ${gid}: ${r.text.slice(0, 500)}`);
  assert.equal(typeof entry.name, 'string');
  assert.match(entry.install_url, new RegExp(`guild_id=${gid}(?:&|$)`));
  expectError(await owner.get(`/guilds/${gid}`), 403, 'forbidden');

  // a member without Manage Server does not get it offered
  const member = await sessionFor(h.stack, users.member.id);
  const m = await refreshGuilds(member, gid); // his list holds it, without Manage Server
  assert.equal(m.status, 200);
  assert.ok(!m.body.not_installed.some((x) => x.id === gid));
});

test('the installed guild is listed for its owner with access "owner" and a premium tier', async (t) => {
  const { gid, owner } = await setup(t);
  const r = await owner.get('/guilds');
  const entry = r.body.guilds.find((x) => x.id === gid);
  assert.ok(entry, r.text.slice(0, 500));
  assert.equal(entry.access, 'owner');
  assert.equal(entry.premium_tier, 'free');
  assert.ok(!r.body.not_installed.some((x) => x.id === gid));
});

test('member search finds bob by "bo"', async (t) => {
  const { gid, owner } = await setup(t);
  const since = await h.fake.seq();
  const r = await owner.get(`/guilds/${gid}/members?query=bo`);
  assert.equal(r.status, 200, r.text);
  const ids = r.body.members.map((m) => m.id);
  assert.ok(ids.includes(users.member.id), `bob found: ${r.text}`);
  assert.ok(!ids.includes(users.admin.id), 'adam does not match "bo"');
  const bob = r.body.members.find((m) => m.id === users.member.id);
  assert.equal(bob.username, 'bob');
  assert.equal(bob.global_name, 'Bob');
  assert.ok(Array.isArray(bob.roles));
  const seen = await h.fake.requests({ since, path: `/api/v10/guilds/${gid}/members/search` });
  assert.ok(seen.length >= 1, 'the search went to Discord');

  expectError(await owner.get(`/guilds/${gid}/members?query=bo&limit=0`), 400, 'invalid_input');
  expectError(await owner.get(`/guilds/${gid}/members?query=bo&limit=101`), 400, 'invalid_input');
});

test('member search with Discord failing is 500 discord_unavailable', async (t) => {
  const { gid, owner } = await setup(t);
  t.after(() => h.fake.clearFails());
  await h.fake.fail({ method: 'GET', path_re: `/guilds/${gid}/members/search`, status: 500, count: 20 });
  const since = await h.fake.seq();
  const r = await owner.get(`/guilds/${gid}/members?query=bo`);
  expectError(r, 500, 'discord_unavailable');
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  const seen = await h.fake.requests({ since, path: `/api/v10/guilds/${gid}/members/search` });
  assert.ok(seen.length >= 1 && seen.every((s) => s.injected), 'the failing search reached the fake');
});

test('roles carry positions, bot_position and user_position; channels are listed', async (t) => {
  const { g, gid, owner } = await setup(t);
  const r = await owner.get(`/guilds/${gid}/roles`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.bot_position, 4);
  assert.ok(r.body.user_position > r.body.bot_position, 'the owner is above every role');
  const positions = r.body.roles.map((x) => x.position);
  assert.deepEqual(positions, [...positions].sort((a, b) => b - a), 'highest first');
  const admin = r.body.roles.find((x) => x.id === g.roles.admin.id);
  assert.equal(admin.position, 5);
  assert.equal(admin.name, 'Admin');
  const bot = r.body.roles.find((x) => x.id === g.roles.bot.id);
  assert.equal(bot.managed, true);

  const adminUser = await sessionFor(h.stack, users.admin.id);
  await refreshGuilds(adminUser, gid);
  const ra = await adminUser.get(`/guilds/${gid}/roles`);
  assert.equal(ra.status, 200, ra.text);
  assert.equal(ra.body.user_position, 5);
  assert.equal(ra.body.bot_position, 4);

  assert.equal((await owner.post(`/guilds/${gid}/authorized-users`, { user_id: users.moderator.id })).status, 201);
  const mod = await sessionFor(h.stack, users.moderator.id);
  const rm = await mod.get(`/guilds/${gid}/roles`);
  assert.equal(rm.status, 200, rm.text);
  assert.equal(rm.body.user_position, 3);

  const ch = await owner.get(`/guilds/${gid}/channels`);
  assert.equal(ch.status, 200, ch.text);
  const general = ch.body.channels.find((c) => c.id === g.channels.general.id);
  assert.ok(general, ch.text);
  assert.equal(general.name, 'general');
  assert.equal(general.type, 0);
  assert.equal(general.parent_id, g.channels.category.id);
});

test('a guild of one owner is not reachable from another guild\'s grant', async (t) => {
  const a = await h.newGuild(t);
  const b = await h.newGuild(t);
  await installGuild(h.fake, a.guild.id, users.owner.id);
  await installGuild(h.fake, b.guild.id, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, [a.guild.id, b.guild.id]);
  assert.equal((await owner.post(`/guilds/${a.guild.id}/authorized-users`, { user_id: users.member.id })).status, 201);
  const member = await sessionFor(h.stack, users.member.id);
  await refreshGuilds(member, [a.guild.id, b.guild.id]);
  assert.equal((await member.get(`/guilds/${a.guild.id}/settings`)).status, 200);
  expectError(await member.get(`/guilds/${b.guild.id}/settings`), 403, 'forbidden');
  expectError(await member.get(`/guilds/${b.guild.id}/authorized-users`), 403, 'forbidden');
  assert.equal(accessRows(b.guild.id).length, 1, 'guild B still has only its installer');
});
