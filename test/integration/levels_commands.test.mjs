// levels_commands.test.mjs - the levels feature through the stack (issue 7, item 5): /rank,
// /leaderboard and /xp reset through signed interactions (answers, allowed_mentions, the reset in
// Redis, PostgreSQL and audit_log, the refusal without Manage Server), the levels:levelup job run
// by the worker (the reward role PUT on the fake Discord, the notification with allowed_mentions
// naming only the member, the free-tier reward limit), the dashboard API (leaderboard paged,
// reset as admin, cross-guild isolation) and the settings API with the levels schema.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { chatInput, PERMS, users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { snowflake } from '../lib/snowflake.mjs';
import { exec, query, redis } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();
const db = h.stack.DATABASE_URL;
const R = (...a) => redis(h.stack.REDIS_URL, ...a);

/** MEE6's curve (features/levels/curve.c). */
const xpForLevel = (l) => { let s = 0; for (let k = 0; k < l; k++) s += 5 * k * k + 50 * k + 100; return s; };

/** Saves the guild's levels settings directly (as the settings API would) and drops the cached copy. */
function settings(gid, doc) {
  exec(db, `INSERT INTO guilds (id) VALUES (:'g') ON CONFLICT (id) DO NOTHING;
            INSERT INTO guild_settings (guild_id, feature, document) VALUES (:'g', 'levels', :'d'::jsonb)
            ON CONFLICT (guild_id, feature) DO UPDATE SET document = EXCLUDED.document, version = guild_settings.version + 1;`,
  { g: gid, d: JSON.stringify(doc) });
  R('DEL', `bot:{${gid}}:settings:levels`);
}

/** Totals in Redis as the inline handler leaves them (seeded guild). */
function seedXp(gid, totals) {
  R('SET', `bot:{${gid}}:levels:seeded`, '1');
  for (const [u, xp] of Object.entries(totals)) {
    R('SET', `bot:{${gid}}:levels:xp:${u}`, String(xp));
    R('ZADD', `bot:{${gid}}:levels:lb`, String(xp), u);
  }
}

function fnv1a(s) {
  let h32 = 2166136261;
  for (const c of Buffer.from(s)) { h32 ^= c; h32 = Math.imul(h32, 16777619) >>> 0; }
  return h32 >>> 0;
}

/** Queues a job on the default queue the way lib/store/queue.c does (ready list + seen key). */
function enqueue(id, kind, guild, payload) {
  const p = fnv1a('default') % 4;
  const job = { attempt: 1, id, kind, guild, payload, deadline_ms: 0, enqueued_ms: Date.now(), due_ms: 0 };
  R('SET', `bot:{q${p}}:jobs:default:seen:${id}`, 'queued', 'EX', '86400');
  R('LPUSH', `bot:{q${p}}:jobs:default:ready`, JSON.stringify(job));
}

async function cmd(name, g, { user = 'member', perms, options } = {}) {
  const r = await h.send(chatInput(name, { guild: g, user, perms, options }));
  assert.equal(r.status, 200, JSON.stringify(r));
  assert.equal(r.body.type, 4, JSON.stringify(r.body));
  return r.body.data;
}

function assertNoPings(data) {
  assert.ok(data && data.allowed_mentions, 'allowed_mentions set');
  assert.deepEqual(data.allowed_mentions.parse ?? [], [], 'parse nothing');
  assert.ok(!(data.allowed_mentions.roles ?? []).length, 'no role pings');
}

test('/rank: level, XP, progress and rank from Redis; another member by option; no pings', async (t) => {
  const g = await h.newGuild(t);
  const gid = g.guild.id;
  settings(gid, { enabled: true });
  seedXp(gid, { [users.member.id]: 300, [users.admin.id]: 5000, [users.moderator.id]: 120 });
  const d = await cmd('rank', g, { user: 'member' });
  assertNoPings(d);
  assert.match(d.content, new RegExp(`<@${users.member.id}>`));
  assert.match(d.content, /level \*\*2\*\*/);
  assert.match(d.content, /\*\*300\*\* XP/);
  assert.match(d.content, /rank #2/);
  assert.match(d.content, new RegExp(`${300 - xpForLevel(2)}/${xpForLevel(3) - xpForLevel(2)} XP`));
  const o = await cmd('rank', g, { user: 'member', options: { user: { type: 6, value: users.admin.id } } });
  assert.match(o.content, /rank #1/);
  assert.match(o.content, new RegExp(`<@${users.admin.id}>`));
  assertNoPings(o);
});

test('/rank after a Redis loss reads the PostgreSQL totals back (seed once)', async (t) => {
  const g = await h.newGuild(t);
  const gid = g.guild.id;
  settings(gid, { enabled: true });
  exec(db, `INSERT INTO levels_members (guild_id, user_id, xp, level) VALUES (:'g', :'u', 1234, 5)`, { g: gid, u: users.member.id });
  R('SET', `bot:{${gid}}:levels:xp:${users.member.id}`, '20'); // counted since the loss, no seeded marker
  const d = await cmd('rank', g, { user: 'member' });
  assert.match(d.content, /\*\*1254\*\* XP/);
  assert.equal(R('GET', `bot:{${gid}}:levels:seeded`), '1');
  const again = await cmd('rank', g, { user: 'member' });
  assert.match(again.content, /\*\*1254\*\* XP/);
});

test('/leaderboard: ordered pages of 10, page out of range answered', async (t) => {
  const g = await h.newGuild(t);
  const gid = g.guild.id;
  settings(gid, { enabled: true });
  const totals = {};
  const ids = Array.from({ length: 12 }, () => snowflake());
  ids.forEach((u, i) => { totals[u] = 1000 - i * 10; });
  seedXp(gid, totals);
  const p1 = await cmd('leaderboard', g);
  assertNoPings(p1);
  const lines = p1.content.split('\n').filter((l) => /^\d+\. /.test(l));
  assert.equal(lines.length, 10);
  assert.match(lines[0], new RegExp(`^1\\. <@${ids[0]}> .*1000 XP`));
  assert.match(lines[9], new RegExp(`^10\\. <@${ids[9]}>`));
  const p2 = await cmd('leaderboard', g, { options: { page: 2 } });
  assert.equal(p2.content.split('\n').filter((l) => /^\d+\. /.test(l)).length, 2);
  const p9 = await cmd('leaderboard', g, { options: { page: 9 } });
  assert.match(p9.content, /empty/i);
});

test('/xp reset: refused without Manage Server (nothing changes); an admin resets Redis, PostgreSQL and audit_log', async (t) => {
  const g = await h.newGuild(t);
  const gid = g.guild.id;
  settings(gid, { enabled: true });
  seedXp(gid, { [users.member.id]: 777 });
  const target = { user: { type: 6, value: users.member.id } };
  const no = await h.send(chatInput('xp', { guild: g, user: 'member', perms: PERMS.MEMBER, options: [{ type: 1, name: 'reset', options: [{ type: 6, name: 'user', value: users.member.id }] }] }));
  assert.equal(no.body.type, 4);
  assert.equal(no.body.data.flags & 64, 64, 'ephemeral refusal');
  assert.match(no.body.data.content, /Manage Server/);
  assert.equal(R('GET', `bot:{${gid}}:levels:xp:${users.member.id}`), '777');
  const sec = await waitFor(() => {
    const r = query(db, `SELECT user_id::text AS u, detail->>'target_id' AS target FROM security_events WHERE guild_id = :'g' AND kind = 'levels.refused'`, { g: gid });
    return r.length ? r : null;
  }, { message: 'the security event of the refusal' });
  assert.deepEqual(sec, [{ u: users.member.id, target: users.member.id }]);
  void target;
  const yes = await h.send(chatInput('xp', { guild: g, user: 'admin', options: [{ type: 1, name: 'reset', options: [{ type: 6, name: 'user', value: users.member.id }] }] }));
  assertNoPings(yes.body.data);
  assert.match(yes.body.data.content, /was 777/);
  assert.equal(R('GET', `bot:{${gid}}:levels:xp:${users.member.id}`), '0');
  const rows = query(db, `SELECT xp::text FROM levels_members WHERE guild_id = :'g' AND user_id = :'u'`, { g: gid, u: users.member.id });
  assert.deepEqual(rows, [{ xp: '0' }]);
  const audit = query(db, `SELECT actor_id::text, before->>'xp' AS before FROM audit_log WHERE guild_id = :'g' AND action = 'levels.reset'`, { g: gid });
  assert.deepEqual(audit, [{ actor_id: users.admin.id, before: '777' }]);
});

test('levels:levelup job: reward roles (stack), the notification with only the member pingable', async (t) => {
  const g = await h.newGuild(t);
  const gid = g.guild.id;
  const ch = g.channels.general.id;
  // rewards: level 2 -> Member-ish low role (muted role, position 2, below the bot's 4), level 5 -> admin (above: refused)
  settings(gid, {
    enabled: true, notify_mode: 'current', notify_template: 'GG {user} ({username}) level {level}, {xp} XP',
    role_rewards: [{ level: 2, role_id: g.roles.muted.id }, { level: 5, role_id: g.roles.admin.id }],
  });
  const since = await h.fake.seq();
  const u = users.member.id;
  enqueue(`levels:up:${gid}:${u}:5:${Date.now()}`, 'levels:levelup', gid,
    { user_id: u, channel_id: ch, level: 5, old_level: 4, xp: 1200, username: '**bob** @everyone' });
  const puts = await h.fake.waitForRequests({ method: 'PUT', path: `/api/v10/guilds/${gid}/members/${u}/roles/`, since },
    { message: 'the reward role PUT' });
  assert.equal(puts.length, 1, 'only the role below the bot is given');
  assert.ok(puts[0].path.endsWith(`/roles/${g.roles.muted.id}`), puts[0].path);
  const posts = await h.fake.waitForRequests({ method: 'POST', path: `/api/v10/channels/${ch}/messages`, since },
    { message: 'the level-up message' });
  const body = posts[0].body;
  assert.deepEqual(body.allowed_mentions, { parse: [], users: [u] });
  assert.match(body.content, new RegExp(`GG <@${u}> \\(`));
  assert.match(body.content, /level 5, 1200 XP/);
  assert.ok(!body.content.includes('**bob**'), 'the username is escaped');
  assert.ok(!body.content.includes('@everyone'), '@everyone neutralised');
});

test('levels:levelup job run twice (at-least-once): one notification, the repeat answered by its nonce', async (t) => {
  const g = await h.newGuild(t);
  const gid = g.guild.id;
  const ch = g.channels.general.id;
  settings(gid, { enabled: true, notify_mode: 'current' });
  const since = await h.fake.seq();
  const u = users.member.id;
  const id = `levels:up:${gid}:${u}:3:${Date.now()}`;
  const seen = `bot:{q${fnv1a('default') % 4}}:jobs:default:seen:${id}`;
  const payload = { user_id: u, channel_id: ch, level: 3, old_level: 2, xp: 600 };
  enqueue(id, 'levels:levelup', gid, payload);
  await h.fake.waitForRequests({ method: 'POST', path: `/api/v10/channels/${ch}/messages`, since }, { message: 'the first run posted' });
  await waitFor(() => R('GET', seen) === 'done', { message: 'the first run acked' });
  // the same job again, as when a worker lost its lease after posting: same id, run once more
  R('DEL', seen);
  enqueue(id, 'levels:levelup', gid, payload);
  const posts = await h.fake.waitForRequests({ method: 'POST', path: `/api/v10/channels/${ch}/messages`, since },
    { count: 2, message: 'the second run posted too' });
  assert.equal(posts.length, 2);
  const nonce = posts[0].body.nonce;
  assert.equal(typeof nonce, 'string');
  assert.ok(nonce.length > 0 && nonce.length <= 25, `nonce ${nonce}`);
  assert.equal(posts[0].body.enforce_nonce, true);
  assert.equal(posts[1].body.nonce, nonce, 'the same job, the same nonce');
  assert.equal(posts[1].body.enforce_nonce, true);
  const msgs = (await h.fake.state()).messages[ch] ?? [];
  assert.equal(msgs.length, 1, `one message in the channel: ${JSON.stringify(msgs.map((m) => m.content))}`);
  // another job (another level) gets another nonce
  const id2 = `levels:up:${gid}:${u}:4:${Date.now()}`;
  enqueue(id2, 'levels:levelup', gid, { ...payload, level: 4, old_level: 3, xp: 900 });
  const more = await h.fake.waitForRequests({ method: 'POST', path: `/api/v10/channels/${ch}/messages`, since },
    { count: 3, message: 'the level 4 notification' });
  assert.notEqual(more[2].body.nonce, nonce);
  assert.equal(((await h.fake.state()).messages[ch] ?? []).length, 2);
});

test('levels:levelup job: notification off, replace mode removes the lower reward', async (t) => {
  const g = await h.newGuild(t);
  const gid = g.guild.id;
  const u = users.moderator.id; // has member + moderator roles
  const low = g.roles.member.id;   // position 1, the member already has it
  const mid = g.roles.muted.id;    // position 2
  const rewards = [{ level: 1, role_id: low }, { level: 2, role_id: mid }];
  settings(gid, { enabled: true, notify_mode: 'off', reward_mode: 'replace', role_rewards: rewards });
  const since = await h.fake.seq();
  enqueue(`levels:up:${gid}:${u}:2:${Date.now()}`, 'levels:levelup', gid, { user_id: u, channel_id: g.channels.general.id, level: 2, old_level: 1, xp: 300 });
  const put = await h.fake.waitForRequests({ method: 'PUT', path: `/api/v10/guilds/${gid}/members/${u}/roles/${mid}`, since });
  assert.equal(put.length, 1);
  const del = await h.fake.waitForRequests({ method: 'DELETE', path: `/api/v10/guilds/${gid}/members/${u}/roles/${low}`, since });
  assert.equal(del.length, 1, 'replace: the lower reward is removed');
  // no message
  const msgs = await h.fake.requests({ method: 'POST', path: `/api/v10/channels/`, since });
  assert.equal(msgs.filter((m) => m.path.includes(gid) || m.path.includes(g.channels.general.id)).length, 0);
});

test('levels:levelup job: a free guild gets its 5 lowest rewards only', async (t) => {
  const g = await h.newGuild(t);
  const gid = g.guild.id;
  const u = users.member.id;
  const rewards = [];
  for (let l = 1; l <= 5; l++) rewards.push({ level: l, role_id: snowflake() }); // not roles of the guild: skipped
  rewards.push({ level: 6, role_id: g.roles.muted.id });                         // the 6th: premium only
  settings(gid, { enabled: true, notify_mode: 'current', role_rewards: rewards });
  const since = await h.fake.seq();
  enqueue(`levels:up:${gid}:${u}:6:${Date.now()}`, 'levels:levelup', gid, { user_id: u, channel_id: g.channels.general.id, level: 6, old_level: 5, xp: 1700 });
  await h.fake.waitForRequests({ method: 'POST', path: `/api/v10/channels/${g.channels.general.id}/messages`, since }, { message: 'the level-up message (the job ran)' });
  const puts = await h.fake.requests({ method: 'PUT', path: `/api/v10/guilds/${gid}/members/${u}/roles/`, since });
  assert.equal(puts.length, 0, 'the 6th reward needs premium');
});

test('API: leaderboard paged from Redis, reset as admin, another guild unreachable', async (t) => {
  const g = await h.newGuild(t);
  const other = await h.newGuild(t);
  const gid = g.guild.id;
  await installGuild(h.fake, gid, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, gid);
  settings(gid, { enabled: true });
  seedXp(gid, { [users.member.id]: 500, [users.admin.id]: 900, [users.moderator.id]: 100 });
  seedXp(other.guild.id, { [users.member.id]: 99999 });
  const r = await owner.get(`/guilds/${gid}/levels/leaderboard?page=1&size=2`);
  assert.equal(r.status, 200, r.text);
  assert.equal(Number(r.body.total), 3);
  assert.deepEqual(r.body.entries.map((e) => [e.user_id, Number(e.xp), Number(e.rank)]),
    [[users.admin.id, 900, 1], [users.member.id, 500, 2]]);
  assert.equal(Number(r.body.entries[0].level), 4);
  const p2 = await owner.get(`/guilds/${gid}/levels/leaderboard?page=2&size=2`);
  assert.deepEqual(p2.body.entries.map((e) => e.user_id), [users.moderator.id]);
  const bad = await owner.get(`/guilds/${gid}/levels/leaderboard?size=0`);
  assert.equal(bad.status, 400);
  // the other guild (not the user's): refused, its data untouched
  const x = await owner.get(`/guilds/${other.guild.id}/levels/leaderboard`);
  assert.ok(x.status === 403 || x.status === 404, `cross-guild read refused: ${x.status}`);
  const xr = await owner.post(`/guilds/${other.guild.id}/levels/reset/${users.member.id}`, {});
  assert.ok(xr.status === 403 || xr.status === 404, `cross-guild reset refused: ${xr.status}`);
  assert.equal(R('GET', `bot:{${other.guild.id}}:levels:xp:${users.member.id}`), '99999');
  // reset as admin (owner)
  const rs = await owner.post(`/guilds/${gid}/levels/reset/${users.member.id}`, {});
  assert.equal(rs.status, 200, rs.text);
  assert.equal(Number(rs.body.before), 500);
  assert.equal(R('GET', `bot:{${gid}}:levels:xp:${users.member.id}`), '0');
  await waitFor(() => query(db, `SELECT 1 FROM audit_log WHERE guild_id = :'g' AND action = 'levels.reset'`, { g: gid }).length === 1,
    { message: 'the audit row' });
});

test('settings API: the levels schema takes rules, rewards and multipliers, refuses bad values and roles above the bot', async (t) => {
  const g = await h.newGuild(t);
  const gid = g.guild.id;
  await installGuild(h.fake, gid, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, gid);
  const doc = {
    enabled: true, multiplier: 1.5, cooldown_seconds: 30, notify_mode: 'channel', notify_channel_id: g.channels.general.id,
    role_multipliers: [{ role_id: g.roles.member.id, multiplier: 2 }],
    channel_multipliers: [{ channel_id: g.channels.general.id, multiplier: 0.5 }],
    ignored_channels: [g.channels.modLog.id], blacklisted_roles: [g.roles.muted.id],
    role_rewards: [{ level: 5, role_id: g.roles.muted.id }], reward_mode: 'replace', voice_xp_per_minute: 12,
  };
  const ok = await owner.put(`/guilds/${gid}/settings/levels`, { document: doc, version: 0 });
  assert.equal(ok.status, 200, ok.text);
  const read = await owner.get(`/guilds/${gid}/settings/levels`);
  assert.equal(read.status, 200, read.text);
  assert.equal(JSON.stringify(read.body).includes(g.roles.muted.id), true);
  const version = Number(read.body.version);
  const bad = await owner.put(`/guilds/${gid}/settings/levels`, { document: { ...doc, multiplier: 6, cooldown_seconds: 1 }, version });
  assert.equal(bad.status, 400, bad.text);
  const paths = (bad.body.error.fields ?? []).map((f) => f.path).sort();
  assert.deepEqual(paths, ['/cooldown_seconds', '/multiplier'], bad.text);
  // a reward role above Guildhall's highest role (Admin, position 5 > bot 4): refused by the hierarchy check
  const high = await owner.put(`/guilds/${gid}/settings/levels`, { document: { ...doc, role_rewards: [{ level: 1, role_id: g.roles.admin.id }] }, version });
  assert.equal(high.status, 403, high.text);
  assert.equal(high.body.error.code, 'role_hierarchy');
});

test('/xp give and /xp remove: totals in Redis and PostgreSQL, audit rows, a level reached notifies; never below 0', async (t) => {
  const g = await h.newGuild(t);
  const gid = g.guild.id;
  const u = users.member.id;
  settings(gid, { enabled: true, notify_template: 'Level {level} for {user}' });
  seedXp(gid, { [u]: 90 });
  const sub = (name, amount) => [{ type: 1, name, options: [{ type: 6, name: 'user', value: u }, { type: 4, name: 'amount', value: amount }] }];
  const since = await h.fake.seq();
  const give = await h.send(chatInput('xp', { guild: g, user: 'admin', options: sub('give', 200) }));
  assertNoPings(give.body.data);
  assert.match(give.body.data.content, /now has 290 XP \(level 2; was 90, level 0\)/);
  assert.equal(R('GET', `bot:{${gid}}:levels:xp:${u}`), '290');
  assert.equal(R('ZSCORE', `bot:{${gid}}:levels:lb`, u), '290');
  assert.deepEqual(query(db, `SELECT xp::text, level FROM levels_members WHERE guild_id = :'g' AND user_id = :'u'`, { g: gid, u }),
    [{ xp: '290', level: 2 }]);
  const msg = await h.fake.waitForRequests({ method: 'POST', path: `/api/v10/channels/${g.channels.general.id}/messages`, since },
    { message: 'the level-up message of /xp give' });
  assert.equal(msg[0].body.content, `Level 2 for <@${u}>`);
  assert.deepEqual(msg[0].body.allowed_mentions, { parse: [], users: [u] });
  const rm = await h.send(chatInput('xp', { guild: g, user: 'admin', options: sub('remove', 1000) }));
  assert.match(rm.body.data.content, /now has 0 XP/);
  assert.equal(R('GET', `bot:{${gid}}:levels:xp:${u}`), '0');
  const audit = query(db, `SELECT action, before->>'xp' AS b, after->>'xp' AS a FROM audit_log WHERE guild_id = :'g' AND action LIKE 'levels.%' ORDER BY id`, { g: gid });
  assert.deepEqual(audit, [{ action: 'levels.give', b: '90', a: '290' }, { action: 'levels.remove', b: '290', a: '0' }]);
  // a member without Manage Server cannot
  const no = await h.send(chatInput('xp', { guild: g, user: 'member', perms: PERMS.MEMBER, options: sub('give', 5) }));
  assert.match(no.body.data.content, /Manage Server/);
  assert.equal(R('GET', `bot:{${gid}}:levels:xp:${u}`), '0');
});
