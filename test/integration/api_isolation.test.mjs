// api_isolation.test.mjs - no one reaches a guild they do not manage, for every route of the API's
// route table (`guildhall-api --routes`, so a route added later is covered without editing this
// file): a user who manages another guild gets 403 + a guild.forbidden security event on each
// guild route of the victim's guild; a granted (non-admin) user gets 403 on guild_admin routes; a
// non-developer gets 403 on developer routes and the developer does not; every route that needs a
// session answers 401 without one. And one guild's settings, access list and premium never show
// up in another guild's answers, for a user who manages both.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeGuild, users } from '../lib/fixtures.mjs';
import { harness, newGuildId } from '../lib/harness.mjs';
import {
  apiClient, apiRoutes, effectiveNeeds, installGuild, lastSecurityEventId, loginAs, securityEvents,
} from '../lib/api.mjs';
import { cleanupGuild, query } from '../lib/store.mjs';

const h = harness();
const OWNER = users.owner.id;
const DEVELOPER = '444455556666777788';
const PREMIUM_SKU = '1300000000000000001';
const ROUTES = apiRoutes(h.stack);
const WRITE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** A fresh guild in the fake whose Discord owner is users[ownerKey]; cleaned up after the test. */
async function guildOwnedBy(t, ownerKey) {
  const g = makeGuild({ ids: { guild: newGuildId() }, ownerKey, botUserId: h.stack.DISCORD_APPLICATION_ID });
  await h.fake.addGuild(g);
  t.after(() => {
    const errors = cleanupGuild(h.stack, g.guild.id);
    if (errors.length) process.stderr.write(`# cleanup of guild ${g.guild.id}: ${errors.join('; ')}\n`);
  });
  return g;
}

/** The route's path with {id} = guildId and plausible values for the other parameters. */
function concretePath(route, guildId) {
  const values = {
    id: guildId, guild_id: guildId, feature: 'core', user_id: users.member.id, job_id: 'isolation-test-job',
  };
  let p = route.path.replace(/\{([a-z_]+)\}/g, (_, name) => values[name] ?? '1234567890123456789');
  if (/\/members$/.test(p)) p += '?query=a';
  if (/\/jobs\/dead$/.test(p)) p += '?limit=5';
  return p;
}

/** Sends the route's request for guildId as client c (CSRF and a JSON body {} on writes). */
function call(c, route, guildId) {
  return c.raw(route.method, concretePath(route, guildId), WRITE.has(route.method) ? { body: {} } : {});
}

const guildRoutes = ROUTES.filter((r) => effectiveNeeds(r).has('guild'));
const adminRoutes = ROUTES.filter((r) => effectiveNeeds(r).has('guild_admin'));
const devRoutes = ROUTES.filter((r) => effectiveNeeds(r).has('developer'));
const sessionRoutes = ROUTES.filter((r) => effectiveNeeds(r).has('session'));
const show = (r) => `${r.method} ${r.path}`;

test('the route table is what this file walks', () => {
  assert.ok(ROUTES.length >= 20, `${ROUTES.length} routes`);
  for (const r of ROUTES) {
    assert.match(r.path, /^\/api\/v1\//, show(r));
    assert.ok(['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(r.method), show(r));
    for (const n of r.needs) assert.ok(['session', 'guild', 'guild_admin', 'developer'].includes(n), `${show(r)}: ${n}`);
  }
  // every route with {id} in its path names a guild and must be guarded by guild access
  for (const r of ROUTES.filter((x) => x.path.includes('{id}'))) {
    assert.ok(effectiveNeeds(r).has('guild'), `${show(r)} names a guild but does not need guild access`);
  }
  assert.ok(guildRoutes.length >= 12 && adminRoutes.length >= 3 && devRoutes.length >= 5, 'the groups are populated');
});

test('every route needing a session answers 401 unauthorized without a cookie', async () => {
  const c = apiClient(h.stack);
  const gid = newGuildId();
  for (const r of sessionRoutes) {
    const res = await call(c, r, gid);
    assert.equal(res.status, 401, `${show(r)}: ${res.status} ${res.text}`);
    assert.equal(res.body?.error?.code, 'unauthorized', `${show(r)}: ${res.text}`);
  }
});

test('a user who manages another guild gets 403 on every guild route of this one, recorded', async (t) => {
  // the attacker (the fixture moderator) owns guild A; the victim guild V is owned by the fixture
  // owner, where the attacker is only a member without Manage Server
  const attackerId = users.moderator.id;
  const a = await guildOwnedBy(t, 'moderator');
  const v = await h.newGuild(t);
  await installGuild(h.fake, a.guild.id, attackerId);
  await installGuild(h.fake, v.guild.id, OWNER);
  const attacker = await loginAs(h.stack, attackerId);

  const list = await attacker.get('/guilds');
  assert.equal(list.status, 200, list.text);
  const ids = list.body.guilds.map((g) => g.id);
  assert.ok(ids.includes(a.guild.id), 'the attacker manages A');
  assert.ok(!ids.includes(v.guild.id), 'V is not in the attacker\'s guild list');

  const since = lastSecurityEventId(h.stack);
  const refused = [];
  for (const r of guildRoutes) {
    // control: the same request on the attacker's own guild passes the access check
    const own = await call(attacker, r, a.guild.id);
    assert.ok(own.status !== 401 && !(own.status === 403 && own.body?.error?.code === 'forbidden'),
      `${show(r)} on the attacker's own guild: ${own.status} ${own.text}`);
    const res = await call(attacker, r, v.guild.id);
    assert.equal(res.status, 403, `${show(r)} on the victim guild: ${res.status} ${res.text}`);
    assert.equal(res.body?.error?.code, 'forbidden', `${show(r)}: ${res.text}`);
    assert.ok(!res.text.includes(v.guild.name), `${show(r)}: the refusal does not leak the guild's name`);
    refused.push(concretePath(r, v.guild.id).split('?')[0]);
  }
  const ev = securityEvents(h.stack, since, { kind: 'guild.forbidden', guildId: v.guild.id });
  assert.equal(ev.length, guildRoutes.length, JSON.stringify(ev.map((e) => `${e.method} ${e.path}`)));
  for (const [i, r] of guildRoutes.entries()) {
    const e = ev.find((x) => x.method === r.method && x.path === `${refused[i]}`);
    assert.ok(e, `a guild.forbidden event for ${r.method} ${refused[i]}`);
    assert.equal(e.user_id, attackerId);
    assert.equal(e.ip, attacker.ip);
  }

  // nothing was done to V: no grant, no settings, no premium change
  const [rows] = query(h.stack.DATABASE_URL, `SELECT
      (SELECT count(*) FROM authorized_users WHERE guild_id = :'g' AND NOT is_installer)::int AS grants,
      (SELECT count(*) FROM guild_settings WHERE guild_id = :'g')::int AS settings,
      (SELECT count(*) FROM premium_history WHERE guild_id = :'g')::int AS premium,
      (SELECT count(*) FROM audit_log WHERE guild_id = :'g' AND actor_id = :'u')::int AS audit`,
  { g: v.guild.id, u: attackerId });
  assert.deepEqual(rows, { grants: 0, settings: 0, premium: 0, audit: 0 });
});

test('a user with only granted access gets 403 on every guild_admin route, recorded', async (t) => {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, OWNER);
  const owner = await loginAs(h.stack, OWNER);
  const granted = await owner.post(`/guilds/${g.guild.id}/authorized-users`, { user_id: users.member.id });
  assert.equal(granted.status, 201, granted.text);
  const member = await loginAs(h.stack, users.member.id);
  const overview = await member.get(`/guilds/${g.guild.id}`);
  assert.equal(overview.status, 200, `a granted user reaches the guild: ${overview.text}`);
  assert.equal(overview.body.access, 'granted');

  const since = lastSecurityEventId(h.stack);
  for (const r of adminRoutes) {
    const res = await call(member, r, g.guild.id);
    assert.equal(res.status, 403, `${show(r)} as a granted user: ${res.status} ${res.text}`);
    assert.equal(res.body?.error?.code, 'forbidden', res.text);
  }
  const ev = securityEvents(h.stack, since, { kind: 'guild.admin_required', guildId: g.guild.id, userId: users.member.id });
  assert.equal(ev.length, adminRoutes.length, JSON.stringify(ev));
  const [row] = query(h.stack.DATABASE_URL,
    "SELECT count(*)::int AS n FROM authorized_users WHERE guild_id = :'g' AND deleted_at IS NULL", { g: g.guild.id });
  assert.equal(row.n, 2, 'the installer and the one grant, nothing added or revoked');
});

test('developer routes: 403 for a logged-in non-developer (recorded), not 403 for the developer', async (t) => {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, OWNER);
  const owner = await loginAs(h.stack, OWNER);
  const dev = await loginAs(h.stack, DEVELOPER);
  const since = lastSecurityEventId(h.stack);
  for (const r of devRoutes) {
    const res = await call(owner, r, g.guild.id);
    assert.equal(res.status, 403, `${show(r)} as a guild owner who is no developer: ${res.status} ${res.text}`);
    assert.equal(res.body?.error?.code, 'forbidden', res.text);
    const ok = await call(dev, r, g.guild.id);
    assert.ok(![401, 403].includes(ok.status), `${show(r)} as the developer: ${ok.status} ${ok.text}`);
  }
  const ev = securityEvents(h.stack, since, { kind: 'developer.forbidden', userId: OWNER });
  assert.equal(ev.length, devRoutes.length, JSON.stringify(ev));
  const [codes] = query(h.stack.DATABASE_URL,
    "SELECT count(*)::int AS n FROM premium_codes WHERE created_by = :'u'", { u: OWNER });
  assert.equal(codes.n, 0, 'no premium code was issued by the non-developer');
});

test('developers get no guild access through being developers', async (t) => {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, OWNER);
  const dev = await loginAs(h.stack, DEVELOPER);
  for (const r of guildRoutes.filter((x) => x.method === 'GET')) {
    const res = await call(dev, r, g.guild.id);
    assert.equal(res.status, 403, `${show(r)} as the developer: ${res.status} ${res.text}`);
  }
});

test('guild A\'s settings, access list and premium never appear in guild B\'s answers', async (t) => {
  const a = await h.newGuild(t);
  const b = await h.newGuild(t);
  await installGuild(h.fake, a.guild.id, OWNER);
  await installGuild(h.fake, b.guild.id, OWNER);
  const owner = await loginAs(h.stack, OWNER);

  // make both caches warm first, so a leak through a shared cache key would show
  for (const g of [a, b]) {
    assert.equal((await owner.get(`/guilds/${g.guild.id}/settings`)).status, 200);
    assert.equal((await owner.get(`/guilds/${g.guild.id}/premium`)).status, 200);
  }
  // distinctive values in A: a core setting, the utility toggle, a grant, premium by entitlement
  const coreA = await owner.get(`/guilds/${a.guild.id}/settings/core`);
  const putCore = await owner.put(`/guilds/${a.guild.id}/settings/core`,
    { document: { alert_channel_id: a.channels.modLog.id }, version: coreA.body.version });
  assert.equal(putCore.status, 200, putCore.text);
  const utilA = await owner.get(`/guilds/${a.guild.id}/settings/utility`);
  const putUtil = await owner.put(`/guilds/${a.guild.id}/settings/utility`,
    { document: { enabled: false }, version: utilA.body.version });
  assert.equal(putUtil.status, 200, putUtil.text);
  const grant = await owner.post(`/guilds/${a.guild.id}/authorized-users`, { user_id: users.muted.id });
  assert.equal(grant.status, 201, grant.text);
  const ent = await h.fake.createEntitlement({ guild_id: a.guild.id, sku_id: PREMIUM_SKU });
  assert.equal(ent.delivery.status, 204, JSON.stringify(ent.delivery));
  const premA = await owner.get(`/guilds/${a.guild.id}/premium`);
  assert.equal(premA.body.effective_tier, 'premium', premA.text);

  // B's answers: none of A's ids or values
  const aMarkers = [a.guild.id, a.channels.modLog.id, ent.entitlement.id];
  for (const path of ['', '/settings', '/settings/core', '/settings/utility', '/authorized-users', '/premium', '/roles', '/channels']) {
    const r = await owner.get(`/guilds/${b.guild.id}${path}`);
    assert.equal(r.status, 200, `GET /guilds/B${path}: ${r.text}`);
    for (const m of aMarkers) assert.ok(!r.text.includes(m), `GET /guilds/B${path} mentions ${m} of guild A: ${r.text.slice(0, 400)}`);
  }
  const coreB = await owner.get(`/guilds/${b.guild.id}/settings/core`);
  assert.equal(coreB.body.document.alert_channel_id, undefined);
  const utilB = await owner.get(`/guilds/${b.guild.id}/settings/utility`);
  assert.equal(utilB.body.enabled, true, 'B\'s utility stays enabled');
  const accessB = await owner.get(`/guilds/${b.guild.id}/authorized-users`);
  assert.deepEqual(accessB.body.users.map((u) => u.user_id), [OWNER], 'only B\'s installer');
  const premB = await owner.get(`/guilds/${b.guild.id}/premium`);
  assert.equal(premB.body.tier, 'free');
  assert.equal(premB.body.effective_tier, 'free');
  assert.deepEqual(premB.body.history, []);
  const overviewB = await owner.get(`/guilds/${b.guild.id}`);
  assert.equal(overviewB.body.premium.tier, 'free');
  assert.equal(overviewB.body.features.find((f) => f.name === 'utility')?.enabled, true);

  // and the reverse: A still says what was set in A
  const again = await owner.get(`/guilds/${a.guild.id}/settings/core`);
  assert.equal(again.body.document.alert_channel_id, a.channels.modLog.id);
  // the granted user of A reaches A but not B
  const muted = await loginAs(h.stack, users.muted.id);
  assert.equal((await muted.get(`/guilds/${a.guild.id}/settings`)).status, 200);
  assert.equal((await muted.get(`/guilds/${b.guild.id}/settings`)).status, 403);
});
