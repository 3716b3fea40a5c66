// moderation_outage.test.mjs - moderation when something fails (issue 6): Discord refuses
// (case failed with the error, the moderator told), Discord rate limits the ban route (retried,
// or failed and told), Redis down (counts rebuilt from PostgreSQL, escalation still right),
// PostgreSQL down (a clear error, nothing acted on), timed lifts by the worker (a tempban of a
// few seconds is lifted) and a lift that keeps failing (retried, then failed and visible in
// the API).
// Stops shared services: run this file alone or with --test-concurrency=1 (scripts/test.sh does).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { modHelpers } from '../lib/moderation.mjs';
import { redis, redisKeys } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();
const m = modHelpers(h);
const O = { reason: 'reason', duration: 'duration' };

const banPath = (g, who) => `/api/v10/guilds/${g.guild.id}/bans/${m.id(g, who)}`;

test('Discord refuses the ban (500): case failed with the error, the moderator told, nothing claimed', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  t.after(() => h.fake.clearFails());
  await h.fake.fail({ method: 'PUT', path_re: `${banPath(g, 't1')}$`, status: 500, count: 20 });
  const a = await m.cmd('ban', g, { target: 't1', options: { [O.reason]: 'will fail' } });
  const cs = await waitFor(() => { const c = m.cases(g); return c.length && c[0].status !== 'pending' ? c : null; },
    { message: 'the case settled' });
  assert.equal(cs.length, 1);
  assert.equal(cs[0].type, 'BAN');
  assert.equal(cs[0].status, 'failed');
  assert.ok(cs[0].error && cs[0].error.length > 0, 'the error is kept');
  assert.equal(a.ephemeral, true, 'the failure is answered privately');
  assert.match(a.text, /fail|error|could not|couldn't|Discord/i, a.text);
  assert.ok('allowed_mentions' in a.data);
  assert.equal(await m.fakeBanned(g, 't1'), false, 'not banned');
  // a 403 from Discord (Missing Permissions): failed as well, with Discord's message
  await h.fake.fail({ method: 'DELETE', path_re: `/members/${g.extra.t2.id}$`, status: 403, count: 1 });
  const k = await m.cmd('kick', g, { target: 't2', options: { [O.reason]: 'x' } });
  const c2 = await waitFor(() => { const c = m.cases(g)[1]; return c && c.status !== 'pending' ? c : null; }, { message: 'kick settled' });
  assert.equal(c2.status, 'failed');
  assert.match(k.text, /permission|fail|error|could not|couldn't/i);
});

test('rate limited by Discord once (429 on the ban route): retried after retry_after, case active', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  t.after(() => h.fake.clearFails());
  await h.fake.fail({ method: 'PUT', path_re: `${banPath(g, 't1')}$`, status: 429, retry_after: 0.5, count: 1 });
  const since = await h.fake.seq();
  const a = await m.cmd('ban', g, { target: 't1', options: { [O.reason]: 'rl' } });
  const c = await waitFor(() => { const x = m.cases(g)[0]; return x && x.status !== 'pending' ? x : null; }, { message: 'ban settled' });
  const puts = (await m.actions(g, since)).filter((r) => r.method === 'PUT');
  if (c.status === 'active') {
    assert.ok(puts.length >= 2, 'the 429 was retried');
    assert.equal(puts[0].status, 429);
    assert.equal(puts.at(-1).status, 204);
  } else {
    assert.equal(c.status, 'failed');
    assert.match(a.text, /rate|limit|try again|later|busy/i, 'the moderator is told');
  }
});

test('rate limited by Discord for good (429 every time): case failed and the moderator told', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  t.after(() => h.fake.clearFails());
  await h.fake.fail({ method: 'PUT', path_re: `${banPath(g, 't1')}$`, status: 429, retry_after: 30, count: 50 });
  const a = await m.cmd('ban', g, { target: 't1', options: { [O.reason]: 'rl' } });
  const c = await waitFor(() => { const x = m.cases(g)[0]; return x && x.status !== 'pending' ? x : null; },
    { timeout: 30000, message: 'ban settled' });
  assert.equal(c.status, 'failed');
  assert.ok(c.error);
  assert.match(a.text, /rate|limit|try again|later|busy|fail/i, a.text);
});

test('Redis down: /warn still records, counts rebuilt from PostgreSQL, the threshold fires', async (t) => {
  const g = await m.guild(t);
  m.settings(g, {
    dm_on_action: false, escalation_enabled: true, thresholds: [{ warnings: 3, action: 'timeout', duration: '1h' }],
  });
  await m.cmd('warn', g, { target: 't1', options: { [O.reason]: 'one' } });
  await m.cmd('warn', g, { target: 't1', options: { [O.reason]: 'two' } });
  let stopped = false;
  t.after(() => { if (stopped) h.stackScript('redis-start'); });
  h.stackScript('redis-stop');
  stopped = true;
  const a = await m.cmd('warn', g, { target: 't1', options: { [O.reason]: 'three' } });
  assert.ok(!/error|unavailable/i.test(a.text) || m.cases(g).length >= 3, a.text);
  const cs = await m.waitCases(g, 4, { message: 'the 3rd warning and its escalation with Redis down' });
  assert.deepEqual(cs.map((c) => c.type), ['WARN', 'WARN', 'WARN', 'TIMEOUT']);
  assert.equal(cs[3].refs_case, 3);
  h.stackScript('redis-start');
  stopped = false;
  await untilRedisWritten(g);
  // the next warning of t1 brings the Redis count to what PostgreSQL says: 4
  await m.cmd('warn', g, { target: 't1', options: { [O.reason]: 'four' } });
  await waitFor(() => m.warnCount(g, 't1') === 4, { message: 'the count 4 in Redis' });
});

/** Waits until Guildhall writes warning counts to Redis again after a restart (its connections
 * reconnect on their own schedule): warns a probe member until that member's count appears. */
async function untilRedisWritten(g) {
  await waitFor(async () => {
    await m.cmd('warn', g, { target: 't6', options: { [O.reason]: 'probe' } });
    return m.warnCount(g, 't6') !== null;
  }, { timeout: 30000, interval: 500, message: 'Guildhall writing to Redis again' });
}

test('after a Redis outage the cached count is not stale (warnings made while it was down count)', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  await m.cmd('warn', g, { target: 't1', options: { [O.reason]: 'one' } });
  await m.cmd('warn', g, { target: 't1', options: { [O.reason]: 'two' } });
  assert.equal(m.warnCount(g, 't1'), 2);
  let stopped = false;
  t.after(() => { if (stopped) h.stackScript('redis-start'); });
  h.stackScript('redis-stop');
  stopped = true;
  await m.cmd('warn', g, { target: 't1', options: { [O.reason]: 'three, Redis down' } });
  assert.equal(m.cases(g).length, 3);
  h.stackScript('redis-start');
  stopped = false;
  await untilRedisWritten(g);
  // Redis keeps its data across the restart (appendonly): the 2 there is stale until the durable
  // recount (scheduled in PostgreSQL when Redis refused the write) runs on the worker
  const v = await waitFor(() => {
    const n = m.warnCount(g, 't1');
    return n === null || n === 3 ? { n } : null;
  }, { timeout: 30000, interval: 250, message: 'the recount job correcting the stale count' });
  assert.ok(v.n === null || v.n === 3, `the cached count is absent or 3 (PostgreSQL), not ${v.n}`);
});

test('PostgreSQL down: a clear error, no Discord call, no case afterwards', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  await m.cmd('warn', g, { target: 't2', options: { [O.reason]: 'warm' } }); // settings and roles cached
  let stopped = false;
  t.after(() => { if (stopped) h.stackScript('pg-start'); });
  const since = await h.fake.seq();
  h.stackScript('pg-stop');
  stopped = true;
  const a = await m.cmd('ban', g, { target: 't1', options: { [O.reason]: 'db down' } });
  assert.equal(a.ephemeral, true);
  assert.match(a.text, /database|unavailable|try again|later|storage|could not/i, a.text);
  assert.ok('allowed_mentions' in a.data);
  const w = await m.cmd('warn', g, { target: 't1', options: { [O.reason]: 'db down' } });
  assert.match(w.text, /database|unavailable|try again|later|storage|could not/i, w.text);
  h.stackScript('pg-start');
  stopped = false;
  assert.deepEqual((await m.actions(g, since)).map((r) => `${r.method} ${r.path}`), [], 'nothing acted on');
  const cs = await waitFor(() => m.cases(g), { timeout: 30000, message: 'PostgreSQL answers again' });
  assert.equal(cs.length, 1, `only the warm-up case: ${JSON.stringify(cs.map((c) => c.type))}`);
  assert.equal(await m.fakeBanned(g, 't1'), false);
});

test('timed lift: a tempban of 3 s is lifted by the worker (DELETE ban, lift done, case inactive)', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  const a = await m.cmd('tempban', g, { target: 't1', options: { [O.duration]: '3s', [O.reason]: 'short' } });
  assert.ok(!a.ephemeral || m.cases(g).length === 1, a.text);
  const c0 = m.cases(g)[0];
  assert.equal(c0.type, 'TEMPBAN');
  assert.equal(c0.status, 'active', c0.error);
  assert.equal(c0.lift, 'pending');
  const [del] = await h.fake.waitForRequests({ method: 'DELETE', path: banPath(g, 't1') },
    { timeout: 60000, message: 'the worker\'s unban' });
  assert.equal(del.status, 204, JSON.stringify(del.response));
  const c = await waitFor(() => { const x = m.cases(g)[0]; return x.lift === 'done' ? x : null; },
    { timeout: 30000, message: 'lift done' });
  assert.equal(c.status, 'inactive');
  assert.equal(await m.fakeBanned(g, 't1'), false, 'unbanned');
});

test('worker failure during a tempban lift: retried, then lift failed and visible through the API', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  t.after(() => h.fake.clearFails());
  await h.fake.fail({ method: 'DELETE', path_re: `${banPath(g, 't1')}$`, status: 500, count: 1000 });
  await m.cmd('tempban', g, { target: 't1', options: { [O.duration]: '2s', [O.reason]: 'lift fails' } });
  assert.equal(m.cases(g)[0].status, 'active', m.cases(g)[0].error);
  await h.fake.waitForRequests({ method: 'DELETE', path: banPath(g, 't1') },
    { count: 2, timeout: 120000, message: 'the lift tried more than once' });
  assert.equal(m.cases(g)[0].lift, 'pending', 'still pending while it retries');
  // The lift retries with backoff for about 20 minutes (10 attempts from 5 s): the test moves each
  // scheduled retry of this job to "now" in the queue's delayed set instead of waiting.
  const timer = m.q("SELECT id::text FROM scheduled_actions WHERE guild_id = :'g' AND idempotency_key = :'k'",
    { g: g.guild.id, k: `lift:${g.guild.id}:1` })[0];
  assert.ok(timer, 'the lift is a durable timer');
  const c = await waitFor(() => {
    const x = m.cases(g)[0];
    if (x.lift === 'failed') return x;
    for (const key of redisKeys(h.stack.REDIS_URL, 'bot:{q*}:jobs:*:delayed')) {
      const members = redis(h.stack.REDIS_URL, 'ZRANGE', key, '0', '-1').split('\n').filter(Boolean);
      for (const j of members) {
        if (j.includes(`"timer:${timer.id}"`)) redis(h.stack.REDIS_URL, 'ZADD', key, 'XX', String(Date.now()), j);
      }
    }
    return null;
  }, { timeout: 240000, interval: 500, message: 'the lift marked failed after its retries' });
  assert.ok(c.lift_error && c.lift_error.length > 0, 'the lift error is kept');
  assert.equal(c.status, 'active', 'still banned: the case stays active');

  await installGuild(h.fake, g.guild.id, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, [g.guild.id]);
  const r = await owner.get(`/guilds/${g.guild.id}/moderation/cases/1`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.lift, 'failed');
  assert.ok(r.body.lift_error);
  const l = await owner.get(`/guilds/${g.guild.id}/moderation/cases?type=TEMPBAN`);
  assert.equal(l.body.cases[0].lift, 'failed');
});
