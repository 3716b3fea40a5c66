// api_dev.test.mjs - the operator pages' API (shards, job statistics, dead letters, premium codes)
// and the login paths that end in an error page: Discord failing the code exchange, a missing
// code, the bot install through the same callback.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { apiClient, installGuild, loginAs } from '../lib/api.mjs';
import { users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { query, redis } from '../lib/store.mjs';

const h = harness();
const DEV = '444455556666777788';

/** gh_queue_partition: FNV-1a of the queue name, 4 partitions. */
function queueKey(queue, suffix) {
  let hash = 2166136261;
  for (const ch of Buffer.from(queue)) {
    hash ^= ch;
    hash = Math.imul(hash, 16777619) >>> 0;
  }
  return `bot:{q${hash % 4}}:jobs:${queue}:${suffix}`;
}

test('shards: the monitor lists what gateway-lite reports, and finds a guild\'s shard', async (t) => {
  const dev = await loginAs(h.stack, DEV);
  const url = h.stack.REDIS_URL;
  const now = Date.now();
  t.after(() => {
    redis(url, 'SREM', 'bot:{global}:shards', '0', '1');
    redis(url, 'DEL', 'bot:{global}:shards:0', 'bot:{global}:shards:1');
  });
  redis(url, 'SADD', 'bot:{global}:shards', '0', '1');
  redis(url, 'HSET', 'bot:{global}:shards:0', 'state', 'ready', 'guilds', '12', 'latency_ms', '41',
    'last_heartbeat_ms', String(now - 3000), 'started_ms', String(now - 3600000), 'owner', 'host-a:123', 'shard_count', '2');
  redis(url, 'HSET', 'bot:{global}:shards:1', 'state', 'resuming', 'guilds', '9', 'shard_count', '2');

  const list = await dev.get('/shards');
  assert.equal(list.status, 200, list.text);
  assert.deepEqual(list.body.shards.map((s) => s.id), [0, 1]);
  const s0 = list.body.shards[0];
  assert.equal(s0.state, 'ready');
  assert.equal(s0.guilds, 12);
  assert.equal(s0.latency_ms, 41);
  assert.equal(s0.owner, 'host-a:123');
  assert.ok(s0.uptime_s >= 3599 && s0.uptime_s < 3700, `uptime ${s0.uptime_s}`);
  assert.ok(s0.heartbeat_age_s >= 2 && s0.heartbeat_age_s < 60);
  assert.equal(list.body.shards[1].state, 'resuming');
  assert.equal(list.body.shards[1].latency_ms, null);

  const gid = '1098765432109876543';
  const expected = Number((BigInt(gid) >> 22n) % 2n);
  const one = await dev.get(`/shards/${gid}`);
  assert.equal(one.status, 200, one.text);
  assert.equal(one.body.shard_id, expected);
  assert.equal(one.body.shard_count, 2);
  assert.equal(one.body.shard.id, expected);
  const bad = await dev.get('/shards/not-a-guild');
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.fields[0].path, '/guild_id');

  const member = await loginAs(h.stack, users.member.id);
  assert.equal((await member.get('/shards')).status, 403);
});

test('shards: none reporting is an empty list, and a guild\'s shard is unknown', async () => {
  const dev = await loginAs(h.stack, DEV);
  redis(h.stack.REDIS_URL, 'DEL', 'bot:{global}:shards');
  const list = await dev.get('/shards');
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.shards, []);
  const one = await dev.get('/shards/1098765432109876543');
  assert.equal(one.status, 200);
  assert.equal(one.body.shard_id, null);
});

test('jobs: statistics, dead letters listed and retried (audited), unknown ids 404', async (t) => {
  const dev = await loginAs(h.stack, DEV);
  const id = `test-dead-${crypto.randomBytes(6).toString('hex')}`;
  const dead = queueKey('default', 'dead');
  const entry = {
    id, kind: 'core:followup', guild: null, attempt: 3, payload: {}, enqueued_ms: Date.now() - 5000,
    error: 'Discord answered 500 (test)', failed_ms: Date.now() - 1000,
  };
  t.after(() => redis(h.stack.REDIS_URL, 'LREM', dead, '0', JSON.stringify(entry)));
  redis(h.stack.REDIS_URL, 'LPUSH', dead, JSON.stringify(entry));

  const stats = await dev.get('/jobs/stats');
  assert.equal(stats.status, 200, stats.text);
  const q = stats.body.queues.find((x) => x.name === 'default');
  assert.ok(q.dead >= 1, `dead count ${q.dead}`);
  assert.ok(Array.isArray(stats.body.kinds));

  const list = await dev.get('/jobs/dead?limit=50');
  assert.equal(list.status, 200, list.text);
  const mine = list.body.jobs.find((j) => j.id === id);
  assert.ok(mine, 'the dead letter is listed');
  assert.equal(mine.kind, 'core:followup');
  assert.equal(mine.error, 'Discord answered 500 (test)');
  assert.ok(mine.failed_at);
  assert.equal((await dev.get('/jobs/dead?limit=0')).status, 400);

  const retry = await dev.post(`/jobs/dead/${id}/retry`);
  assert.equal(retry.status, 202, retry.text);
  assert.equal(retry.body.retried, 1);
  // back in the queue: the worker may already have run it again (an empty payload fails at once and
  // dies again), but never with the error it had
  const after = await dev.get('/jobs/dead?limit=500');
  const back = after.body.jobs.find((j) => j.id === id);
  assert.ok(!back || back.error !== 'Discord answered 500 (test)', `retried: ${JSON.stringify(back)}`);
  const audit = query(h.stack.DATABASE_URL, "SELECT actor_id::text AS a FROM audit_log WHERE action = 'jobs.retry' AND target = :'t'", { t: id });
  assert.equal(audit.length, 1);
  assert.equal(audit[0].a, DEV);

  const unknown = await dev.post(`/jobs/dead/no-such-${crypto.randomBytes(6).toString('hex')}/retry`);
  assert.equal(unknown.status, 404, unknown.text);
  const noCsrf = await dev.api('POST', `/jobs/dead/${id}/retry`, { csrf: false });
  assert.equal(noCsrf.status, 403);
});

test('premium codes: developer only, validated, shown once', async () => {
  const dev = await loginAs(h.stack, DEV);
  for (const [body, path] of [[{ tier: 'gold', days: 30 }, '/tier'], [{ tier: 'premium', days: 0 }, '/days'],
    [{ tier: 'pro', days: 30, count: 101 }, '/count']]) {
    const r = await dev.post('/premium/codes', body);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.body.error.fields[0].path, path);
  }
  const ok = await dev.post('/premium/codes', { tier: 'pro', days: 7, count: 2 });
  assert.equal(ok.status, 201, ok.text);
  assert.equal(ok.body.codes.length, 2);
});

test('login: Discord failing the code exchange, a missing code, and the error pages', async (t) => {
  const c = apiClient(h.stack);
  await h.fake.fail({ method: 'POST', path_re: '/oauth2/token$', status: 500, count: 4 });
  t.after(() => h.fake.clearFails?.());
  const r = await c.login({ user: users.owner.id });
  assert.equal(r.status, 302);
  assert.equal(r.headers.get('location'), '/#/login?error=discord_unavailable');
  assert.ok(!c.jar.has('gh_session'));

  await h.fake.fail({ method: 'POST', path_re: '/oauth2/token$', status: 401, count: 1 });
  const r2 = await apiClient(h.stack).login({ user: users.owner.id });
  assert.equal(r2.headers.get('location'), '/#/login?error=exchange_failed');

  const c3 = apiClient(h.stack);
  const start = await c3.get('/auth/discord/login');
  const state = new URL(start.headers.get('location')).searchParams.get('state');
  const noCode = await c3.get(`/auth/discord/callback?state=${state}`);
  assert.equal(noCode.status, 302);
  assert.equal(noCode.headers.get('location'), '/#/login?error=exchange_failed');
});

test('install: the bot install URL, and its callback records the guild and the installer', async (t) => {
  const g = await h.newGuild(t);
  const gid = g.guild.id;
  const c = apiClient(h.stack);
  const start = await c.get(`/auth/discord/install?guild_id=${gid}`);
  assert.equal(start.status, 302);
  const loc = new URL(start.headers.get('location'));
  assert.match(loc.searchParams.get('scope'), /\bbot\b/);
  assert.equal(loc.searchParams.get('guild_id'), gid);
  assert.ok(loc.searchParams.get('permissions'));
  assert.equal((await c.get('/auth/discord/install?guild_id=abc')).status, 400);

  const res = await apiClient(h.stack).login({ user: users.owner.id, guildId: gid });
  assert.equal(res.status, 302, res.text);
  const rows = query(h.stack.DATABASE_URL,
    "SELECT g.is_active, a.is_installer, a.user_id::text AS u FROM guilds g JOIN authorized_users a ON a.guild_id = g.id WHERE g.id = :'g'", { g: gid });
  assert.equal(rows.length, 1, 'the guild and its installer are recorded');
  assert.equal(rows[0].u, users.owner.id);
  assert.equal(rows[0].is_installer, true);
  await installGuild(h.fake, gid, users.owner.id); // the webhook for the same install changes nothing
  const again = query(h.stack.DATABASE_URL, "SELECT count(*)::int AS n FROM authorized_users WHERE guild_id = :'g'", { g: gid });
  assert.equal(again[0].n, 1);
});
