// api_outage.test.mjs - the API when a store goes away (DESIGN.md: "If Redis is down, read
// PostgreSQL and carry on"; errors are the standard JSON). Redis down: a logged-in user still
// reads /auth/me and settings, and rate limits fail open. PostgreSQL down: settings answer 500
// database_unavailable, a PUT changes nothing, and everything works again once it is back.
// Stops shared services: run this file alone or with --test-concurrency=1 (scripts/test.sh does).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { installGuild, jwtClaims, loginAs } from '../lib/api.mjs';
import { exec, query, redis } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();
const OWNER = users.owner.id;
const base = h.stack.GH_HTTP_URL.replace(/\/$/, '');

async function health() {
  const r = await fetch(`${base}/api/v1/health`);
  return r.json();
}

test('Redis down: sessions and settings come from PostgreSQL, rate limits fail open', async (t) => {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, OWNER);
  const c = await loginAs(h.stack, OWNER);
  const gid = g.guild.id;
  const util = await c.get(`/guilds/${gid}/settings/utility`);
  const put = await c.put(`/guilds/${gid}/settings/utility`, { document: { enabled: false }, version: util.body.version });
  assert.equal(put.status, 200, put.text);
  const { jti } = jwtClaims(c.jar.get('gh_session'));

  let stopped = false;
  t.after(() => { if (stopped) h.stackScript('redis-start'); });
  h.stackScript('redis-stop');
  stopped = true;
  assert.equal((await health()).redis, 'down', 'Redis is really down');

  const me = await c.get('/auth/me');
  assert.equal(me.status, 200, `/auth/me with Redis down: ${me.text}`);
  assert.equal(me.body.user.id, OWNER);
  const all = await c.get(`/guilds/${gid}/settings`);
  assert.equal(all.status, 200, `/settings with Redis down: ${all.text}`);
  const u = all.body.settings.find((s) => s.feature === 'utility');
  assert.equal(u.enabled, false, 'the value saved before the outage, read from PostgreSQL');
  assert.equal(u.version, put.body.version);
  const overview = await c.get(`/guilds/${gid}`);
  assert.equal(overview.status, 200, overview.text);

  // 130 writes by one user, more than the 120 per minute it may make: none refused with 429
  const statuses = [];
  for (let i = 0; i < 130; i += 26) {
    const batch = await Promise.all(Array.from({ length: 26 }, () => c.put(`/guilds/${gid}/settings/utility`, {})));
    statuses.push(...batch.map((r) => r.status));
  }
  assert.equal(statuses.length, 130);
  assert.ok(statuses.every((s) => s === 400), `every write answered by the handler: ${[...new Set(statuses)]}`);

  // a new login works without Redis (the session is checked in PostgreSQL)
  const other = await loginAs(h.stack, users.admin.id);
  const otherMe = await other.get('/auth/me');
  assert.equal(otherMe.status, 200, `a session started while Redis is down: ${otherMe.text}`);
  assert.equal(otherMe.body.user.id, users.admin.id);

  // a revoked session stays revoked: PostgreSQL decides when the marker cannot be read
  exec(h.stack.DATABASE_URL, "UPDATE dashboard_sessions SET revoked_at = now() WHERE jti = :'j'", { j: jti });
  const revoked = await c.get('/auth/me');
  assert.equal(revoked.status, 401, `a session revoked in PostgreSQL while Redis is down: ${revoked.text}`);
  assert.equal(revoked.body.error.code, 'session_revoked');

  h.stackScript('redis-start');
  stopped = false;
  assert.equal(redis(h.stack.REDIS_URL, 'PING'), 'PONG', 'Redis itself is back');
  // the API's connections must recover on their own (DESIGN.md: "carry on"), within seconds
  await waitFor(async () => (await health()).redis === 'ok',
    { timeout: 30000, interval: 250, message: 'the API\'s /health to report Redis ok once Redis is back' });
  const c2 = await loginAs(h.stack, OWNER);
  const back = await waitFor(async () => {
    const r = await c2.get(`/guilds/${gid}/settings/utility`);
    return r.status === 200 && r.headers.get('x-ratelimit-limit') ? r : null;
  }, { timeout: 30000, interval: 250, message: 'settings with rate-limit headers after Redis is back' });
  assert.equal(back.body.enabled, false);
  assert.equal(redis(h.stack.REDIS_URL, 'EXISTS', `bot:{global}:dash:session:${jwtClaims(c2.jar.get('gh_session')).jti}`), '1');
});

test('PostgreSQL down: 500 database_unavailable, a PUT changes nothing; all works again after', async (t) => {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, OWNER);
  const c = await loginAs(h.stack, OWNER);
  const gid = g.guild.id;
  const util = await c.get(`/guilds/${gid}/settings/utility`);
  const put = await c.put(`/guilds/${gid}/settings/utility`, { document: { enabled: false }, version: util.body.version });
  assert.equal(put.status, 200, put.text);
  const version = put.body.version;

  let stopped = false;
  t.after(() => { if (stopped) h.stackScript('pg-start'); });
  h.stackScript('pg-stop');
  stopped = true;

  const r = await c.get(`/guilds/${gid}/settings`);
  assert.equal(r.status, 500, `settings with PostgreSQL down: ${r.status} ${r.text}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(Object.keys(r.body), ['error'], r.text);
  assert.deepEqual(Object.keys(r.body.error).sort(), ['code', 'message'], r.text);
  assert.equal(r.body.error.code, 'database_unavailable');
  assert.ok(r.body.error.message.length > 0);
  assert.ok(r.headers.get('x-request-id'), 'X-Request-Id for the support request');

  const w = await c.put(`/guilds/${gid}/settings/utility`, { document: { enabled: true }, version });
  assert.equal(w.status, 500, `PUT with PostgreSQL down: ${w.status} ${w.text}`);
  assert.equal(w.body?.error?.code, 'database_unavailable', w.text);

  h.stackScript('pg-start');
  stopped = false;
  const back = await waitFor(async () => {
    const x = await c.get(`/guilds/${gid}/settings/utility`);
    return x.status === 200 ? x : null;
  }, { timeout: 60000, interval: 250, message: 'settings answering 200 after PostgreSQL is back' });
  assert.equal(back.body.enabled, false, 'the PUT made while PostgreSQL was down changed nothing');
  assert.equal(back.body.version, version);
  const [row] = query(h.stack.DATABASE_URL,
    "SELECT document->>'enabled' AS enabled, version FROM guild_settings WHERE guild_id = :'g' AND feature = 'utility'", { g: gid });
  assert.deepEqual(row, { enabled: 'false', version });

  // everything works again: a write, the overview, a new login
  const again = await c.put(`/guilds/${gid}/settings/utility`, { document: { enabled: true }, version });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.body.version, version + 1);
  assert.equal((await c.get(`/guilds/${gid}`)).status, 200);
  const fresh = await loginAs(h.stack, users.admin.id);
  assert.equal((await fresh.get(`/guilds/${gid}/settings`)).status, 200);
});
