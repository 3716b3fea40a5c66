// api_ratelimit.test.mjs - the API's rate limits (lib/api/limits.c, docs/security.md): per IP
// (read 1200/min), per user (write 120/min), per guild (write 240/min), X-RateLimit-* headers,
// 429 with Retry-After and the error JSON, and the developer bypass.
//
// The windows are clock minutes, so a burst may straddle a minute boundary and see its counter
// reset midway. Every burst therefore runs until the first 429 or twice the limit (plus the
// batch), and the assertions are about the responses (a 429 happened, with the right limit and
// scope, and Remaining reached 0 before it), not about the exact request that tripped it.
import assert from 'node:assert/strict';
import { after, beforeEach, test } from 'node:test';
import { users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { ApiClient, freshIp, installGuild, loginAs } from '../lib/api.mjs';
import { redis, redisKeys } from '../lib/store.mjs';

const h = harness();

// Counters are per clock minute and shared by every test file (the fixture users are the same),
// so each test starts from empty counters, and the file leaves none behind for the next files.
function resetCounters() {
  for (const pattern of ['bot:{global}:api:rl:*', 'bot:{*}:api:rl:*']) {
    const keys = redisKeys(h.stack.REDIS_URL, pattern);
    for (let i = 0; i < keys.length; i += 100) redis(h.stack.REDIS_URL, 'DEL', ...keys.slice(i, i + 100));
  }
}
beforeEach(resetCounters);
after(resetCounters);
const OWNER = users.owner.id;
const DEVELOPER = '444455556666777788';
const BATCH = 50;

/** The X-RateLimit-* headers of an answer. */
function rl(r) {
  const num = (k) => (r.headers.get(k) === null ? null : Number(r.headers.get(k)));
  return {
    limit: num('x-ratelimit-limit'), remaining: num('x-ratelimit-remaining'), reset: num('x-ratelimit-reset'),
    scope: r.headers.get('x-ratelimit-scope'), retryAfter: num('retry-after'),
  };
}

/** Sends send(i) in parallel batches until an answer is 429 or max requests were sent. */
async function burst(send, max) {
  const out = [];
  for (let i = 0; i < max;) {
    const n = Math.min(BATCH, max - i);
    const batch = await Promise.all(Array.from({ length: n }, (_, k) => send(i + k)));
    out.push(...batch);
    i += n;
    if (batch.some((r) => r.status === 429)) break;
  }
  return out;
}

/** The same session as c, from another address. */
function sameSession(c, ip = freshIp()) {
  const d = new ApiClient(h.stack, { ip });
  for (const [k, v] of c.jar) d.jar.set(k, v);
  d.csrf = c.csrf;
  return d;
}

/**
 * A burst's answers: a 429 happened, every 429 is the documented error with Retry-After, the
 * first 429s name the expected limit and scope, and an allowed answer reached Remaining 0 in that
 * scope before it.
 */
function assertTripped(answers, { limit, scope, what }) {
  const limited = answers.filter((r) => r.status === 429);
  assert.ok(limited.length > 0, `${what}: no 429 after ${answers.length} requests ` +
    `(last headers ${JSON.stringify(rl(answers.at(-1)))})`);
  for (const r of limited) {
    assert.deepEqual(Object.keys(r.body ?? {}), ['error'], r.text);
    assert.equal(r.body.error.code, 'rate_limited', r.text);
    assert.ok(r.body.error.message.length > 0);
    const h429 = rl(r);
    assert.ok(Number.isInteger(h429.retryAfter) && h429.retryAfter >= 1 && h429.retryAfter <= 60,
      `Retry-After ${r.headers.get('retry-after')}`);
    assert.equal(h429.remaining, 0, `a 429 says Remaining 0 (${JSON.stringify(h429)})`);
    assert.ok(h429.reset >= 1 && h429.reset <= 60, `X-RateLimit-Reset ${h429.reset}`);
  }
  const over = limited.map(rl).filter((x) => x.scope === scope && x.limit === limit);
  assert.ok(over.length > 0, `${what}: a 429 names the ${scope} limit ${limit}: ` +
    `${JSON.stringify(limited.slice(0, 3).map(rl))}`);
  const allowed = answers.filter((r) => r.status !== 429).map(rl);
  assert.ok(allowed.some((x) => x.scope === scope && x.limit === limit && x.remaining === 0),
    `${what}: an allowed answer reached Remaining 0 in the ${scope} scope`);
  return limited;
}

/** Whether the window of the last 429 still has a few seconds left (else a check after it could
 * land in the next minute, where the counter starts again). */
function windowStillOpen(limited) {
  return rl(limited.at(-1)).reset >= 3;
}

test('per IP: read class, 1200 per minute per address, whoever the users are', async () => {
  const ip = freshIp();
  const clients = [];
  for (const u of [OWNER, users.admin.id, users.moderator.id, users.member.id, users.muted.id]) {
    clients.push(await loginAs(h.stack, u, { ip }));
  }

  // sequential answers: the headers are there and Remaining goes down (unless a new minute began)
  const seq = [];
  for (let i = 0; i < 4; i++) seq.push(await clients[0].get('/auth/me'));
  for (const r of seq) {
    assert.equal(r.status, 200, r.text);
    const x = rl(r);
    assert.ok([600, 1200].includes(x.limit), `X-RateLimit-Limit ${x.limit} (read: 600 per user, 1200 per IP)`);
    assert.ok(Number.isInteger(x.remaining) && x.remaining >= 0 && x.remaining < x.limit, JSON.stringify(x));
    assert.ok(Number.isInteger(x.reset) && x.reset >= 1 && x.reset <= 60, `X-RateLimit-Reset ${x.reset}`);
    assert.ok(['user', 'ip'].includes(x.scope), `scope ${x.scope}`);
    assert.ok(r.headers.get('x-request-id'), 'X-Request-Id');
  }
  for (let i = 1; i < seq.length; i++) {
    const [a, b] = [rl(seq[i - 1]), rl(seq[i])];
    if (b.reset > a.reset || a.scope !== b.scope) continue; // a new minute began in between
    assert.ok(b.remaining < a.remaining, `Remaining decreases: ${a.remaining} then ${b.remaining}`);
  }

  // five users on one address: the address trips before any user's 600
  const answers = await burst((i) => clients[i % clients.length].get('/auth/me'), 2 * 1200 + BATCH);
  const limited = assertTripped(answers, { limit: 1200, scope: 'ip', what: 'per-IP read limit' });

  // every user on that address is refused now; the same session from another address is not
  if (windowStillOpen(limited)) {
    const blocked = await clients[1].get('/auth/me');
    assert.equal(blocked.status, 429, `another user on the limited address: ${blocked.status}`);
  }
  const elsewhere = await sameSession(clients[1]).get('/auth/me');
  assert.equal(elsewhere.status, 200, `the same user elsewhere: ${elsewhere.text}`);
  assert.equal(elsewhere.body.user.id, users.admin.id);
});

test('per user: write class, 120 per minute per user across addresses (muted, granted user)', async (t) => {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, OWNER);
  const owner = await loginAs(h.stack, OWNER);
  const grant = await owner.post(`/guilds/${g.guild.id}/authorized-users`, { user_id: users.muted.id });
  assert.equal(grant.status, 201, grant.text);
  const muted = await loginAs(h.stack, users.muted.id);
  const seats = [muted, sameSession(muted), sameSession(muted), sameSession(muted), sameSession(muted)];
  const path = `/guilds/${g.guild.id}/settings/utility`;

  // a body without a document: 400, changes nothing, but counts as a write
  const first = await seats[0].put(path, {});
  assert.equal(first.status, 400, first.text);
  const x = rl(first);
  assert.equal(x.limit, 120, `the per-user write limit is the tightest: ${JSON.stringify(x)}`);
  assert.equal(x.scope, 'user');

  const answers = await burst((i) => seats[i % seats.length].put(path, {}), 2 * 120 + BATCH);
  for (const r of answers.filter((a) => a.status !== 429)) assert.equal(r.status, 400, r.text);
  const limited = assertTripped(answers, { limit: 120, scope: 'user', what: 'per-user write limit' });

  // the user is limited from a new address too; another user on the same guild is not
  if (windowStillOpen(limited)) {
    const fresh = await sameSession(muted).put(path, {});
    assert.equal(fresh.status, 429, `muted from a new address: ${fresh.status}`);
  }
  const other = await owner.put(path, {});
  assert.equal(other.status, 400, `the owner on the same guild: ${other.status} ${other.text}`);
  // reads are another class
  const read = await muted.get(path);
  assert.equal(read.status, 200, read.text);
});

test('per guild: write class, 240 per minute per guild across users and addresses', async (t) => {
  const g = await h.newGuild(t);
  const other = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, OWNER);
  await installGuild(h.fake, other.guild.id, OWNER);
  const owner = await loginAs(h.stack, OWNER);
  for (const u of [users.moderator.id, users.member.id]) {
    const r = await owner.post(`/guilds/${g.guild.id}/authorized-users`, { user_id: u });
    assert.equal(r.status, 201, r.text);
  }
  const people = [owner, await loginAs(h.stack, users.admin.id), await loginAs(h.stack, users.moderator.id),
    await loginAs(h.stack, users.member.id)];
  // two addresses per user: eight seats, none near 240 per address or 120 per user at 240 in all
  const seats = people.flatMap((c) => [c, sameSession(c)]);
  const path = `/guilds/${g.guild.id}/settings/utility`;

  const answers = await burst((i) => seats[i % seats.length].put(path, {}), 2 * 240 + BATCH);
  for (const r of answers.filter((a) => a.status !== 429)) assert.equal(r.status, 400, r.text);
  const limited = assertTripped(answers, { limit: 240, scope: 'guild', what: 'per-guild write limit' });
  assert.ok(limited.every((r) => rl(r).scope === 'guild'), 'only the guild counter refused');

  // the guild is limited for everyone; the same users on another guild are not
  if (windowStillOpen(limited)) {
    const again = await sameSession(people[1]).put(path, {});
    assert.equal(again.status, 429, `another address, same guild: ${again.status}`);
  }
  const elsewhere = await people[1].put(`/guilds/${other.guild.id}/settings/utility`, {});
  assert.equal(elsewhere.status, 400, `the same user on another guild: ${elsewhere.status} ${elsewhere.text}`);
});

test('developers bypass the limits: /jobs/stats past the per-IP limit never answers 429', async () => {
  const dev = await loginAs(h.stack, DEVELOPER);
  // twice the per-IP read limit from one address: whatever minute boundary falls inside the
  // burst, one window saw more than 1200 of these
  const total = 2 * 1200 + BATCH;
  const answers = await burst(() => dev.get('/jobs/stats'), total);
  assert.equal(answers.length, total);
  const statuses = new Map();
  for (const r of answers) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
  assert.deepEqual([...statuses.keys()], [200], `statuses ${JSON.stringify([...statuses])}`);
  assert.ok(Array.isArray(answers.at(-1).body.queues), answers.at(-1).text);

  // the bypass is the developer's: another user is counted as usual
  const owner = await loginAs(h.stack, OWNER);
  const r = await owner.get('/auth/me');
  assert.equal(r.status, 200, r.text);
  assert.ok(rl(r).limit > 0 && rl(r).remaining >= 0, 'a non-developer gets X-RateLimit-* headers');
});
