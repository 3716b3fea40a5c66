// api_toggle_e2e.test.mjs - a feature toggled from the dashboard API takes effect in
// Discord: PUT /guilds/{id}/settings/utility {enabled:false} makes /serverinfo answer
// "disabled in this server" (ephemeral) until it is enabled again. Who may toggle: the
// owner and a granted user; a plain member may not.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { chatInput, users } from '../lib/fixtures.mjs';
import { EPHEMERAL, messageText } from '../lib/gh.mjs';
import { harness } from '../lib/harness.mjs';
import { query, redis } from '../lib/store.mjs';

const h = harness();

const q = (sql, params) => query(h.stack.DATABASE_URL, sql, params);

async function setup(t) {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, g.guild.id);
  return { g, gid: g.guild.id, owner };
}

async function serverinfo(g, user = 'member') {
  const r = await h.send(chatInput('serverinfo', { guild: g, user }));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.type, 4);
  return { data: r.body.data, text: messageText(r.body.data) };
}

const utilityRow = (gid) =>
  q("SELECT document, version, updated_by::text AS updated_by FROM guild_settings WHERE guild_id = :'g' AND feature = 'utility'", { g: gid })[0];
const toggleAudit = (gid) =>
  q("SELECT actor_id::text AS actor_id, before, after FROM audit_log WHERE guild_id = :'g' AND action = 'settings.update' AND target = 'utility' ORDER BY id",
    { g: gid });

async function featureState(c, gid) {
  const r = await c.get(`/guilds/${gid}`);
  assert.equal(r.status, 200, r.text);
  return r.body.features.find((f) => f.name === 'utility')?.enabled;
}

async function toggle(c, gid, enabled) {
  const cur = await c.get(`/guilds/${gid}/settings/utility`);
  assert.equal(cur.status, 200, cur.text);
  return c.put(`/guilds/${gid}/settings/utility`, { document: { ...cur.body.document, enabled }, version: cur.body.version });
}

test('the owner disables utility through the API; /serverinfo says so until it is enabled again', async (t) => {
  const { g, gid, owner } = await setup(t);
  const baseline = await serverinfo(g);
  assert.doesNotMatch(baseline.text, /disabled in this server/i, 'baseline: /serverinfo works');
  assert.match(baseline.text, new RegExp(gid), 'it describes the server');
  assert.equal(await featureState(owner, gid), true);

  const off = await toggle(owner, gid, false);
  assert.equal(off.status, 200, off.text);
  assert.equal(off.body.enabled, false);
  assert.equal(off.body.version, 1);
  const row = utilityRow(gid);
  assert.equal(row.document.enabled, false);
  assert.equal(row.updated_by, users.owner.id);
  assert.equal(toggleAudit(gid).length, 1);
  assert.equal(await featureState(owner, gid), false);

  const disabled = await serverinfo(g);
  assert.equal(disabled.data.flags & EPHEMERAL, EPHEMERAL, 'the refusal is ephemeral');
  assert.match(disabled.text, /disabled in this server/i);
  assert.doesNotMatch(disabled.text, new RegExp(gid));
  const key = `bot:{${gid}}:settings:utility`;
  const cached = redis(h.stack.REDIS_URL, 'GET', key);
  if (cached) assert.equal(JSON.parse(cached).doc.enabled, false, `${key} holds the new document`);

  const on = await toggle(owner, gid, true);
  assert.equal(on.status, 200, on.text);
  assert.equal(on.body.enabled, true);
  assert.equal(on.body.version, 2);
  assert.equal(utilityRow(gid).document.enabled, true);
  const audit = toggleAudit(gid);
  assert.equal(audit.length, 2);
  assert.equal(audit[1].before.enabled, false);
  assert.equal(audit[1].after.enabled, true);
  assert.equal(await featureState(owner, gid), true);

  const again = await serverinfo(g);
  assert.doesNotMatch(again.text, /disabled in this server/i, '/serverinfo works again');
  assert.match(again.text, new RegExp(gid));
});

test('a granted user can toggle; a plain member cannot (403) and nothing changes', async (t) => {
  const { g, gid, owner } = await setup(t);
  assert.equal((await owner.post(`/guilds/${gid}/authorized-users`, { user_id: users.moderator.id })).status, 201);
  const mod = await sessionFor(h.stack, users.moderator.id);
  const member = await sessionFor(h.stack, users.member.id);
  await refreshGuilds(member, gid); // bob's fresh list holds the guild, without Manage Server

  // the plain member: no access at all
  const refused = await member.put(`/guilds/${gid}/settings/utility`, { document: { enabled: false }, version: 0 });
  assert.equal(refused.status, 403, refused.text);
  assert.equal(refused.body.error.code, 'forbidden');
  assert.equal(utilityRow(gid), undefined, 'nothing saved');
  assert.doesNotMatch((await serverinfo(g)).text, /disabled in this server/i);
  const ev = q("SELECT count(*)::int AS n FROM security_events WHERE guild_id = :'g' AND user_id = :'u' AND kind = 'guild.forbidden'",
    { g: gid, u: users.member.id });
  assert.equal(ev[0].n, 1, 'the refusal is a security event');

  // the granted moderator
  const off = await toggle(mod, gid, false);
  assert.equal(off.status, 200, off.text);
  assert.equal(off.body.enabled, false);
  assert.equal(utilityRow(gid).updated_by, users.moderator.id);
  assert.equal(toggleAudit(gid)[0].actor_id, users.moderator.id);
  const disabled = await serverinfo(g);
  assert.equal(disabled.data.flags & EPHEMERAL, EPHEMERAL);
  assert.match(disabled.text, /disabled in this server/i);

  // the member still cannot turn it back on
  const refused2 = await member.put(`/guilds/${gid}/settings/utility`, { document: { enabled: true }, version: 1 });
  assert.equal(refused2.status, 403, refused2.text);
  assert.equal(utilityRow(gid).document.enabled, false);

  const on = await toggle(mod, gid, true);
  assert.equal(on.status, 200, on.text);
  assert.doesNotMatch((await serverinfo(g)).text, /disabled in this server/i);
});

test('toggling utility in one guild leaves another guild alone', async (t) => {
  const a = await h.newGuild(t);
  const b = await h.newGuild(t);
  await installGuild(h.fake, a.guild.id, users.owner.id);
  await installGuild(h.fake, b.guild.id, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, [a.guild.id, b.guild.id]);
  const off = await toggle(owner, a.guild.id, false);
  assert.equal(off.status, 200, off.text);
  assert.match((await serverinfo(a)).text, /disabled in this server/i);
  assert.doesNotMatch((await serverinfo(b)).text, /disabled in this server/i);
  assert.equal(utilityRow(b.guild.id), undefined);
  assert.equal(await featureState(owner, b.guild.id), true);
});
