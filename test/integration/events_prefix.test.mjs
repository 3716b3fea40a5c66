// events_prefix.test.mjs - legacy prefix commands end to end, and a removed guild deactivated.
//
// These tests enqueue by hand the exact jobs gateway-lite sends (the same path through the
// gateway itself is events_gateway.test.mjs), which lets them pick the message's author freely:
// "events:prefix" (id prefix:<guild>:<message>, payload {message, received_ms}) as the inline
// MESSAGE_CREATE detection queues it, and "gateway:event" ({t, d, shard, seq, received_ms}, id
// ev:<session>:<seq>). The stack's worker runs them; the fake Discord records the replies.
// Prefix commands are enabled through the settings API, like a server manager would.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { snowflake } from '../lib/snowflake.mjs';
import { query, redis } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();

/** gh_queue_partition: FNV-1a of the queue name, 4 partitions. */
function queueKey(queue, suffix) {
  let hash = 2166136261;
  for (const ch of Buffer.from(queue)) {
    hash ^= ch;
    hash = Math.imul(hash, 16777619) >>> 0;
  }
  return `bot:{q${hash % 4}}:jobs:${queue}:${suffix}`;
}

/** What gh_queue_enqueue writes: the seen mark, then the job on the ready list. */
function enqueue(id, kind, guild, payload) {
  const url = h.stack.REDIS_URL;
  const job = { attempt: 1, id, kind, guild, payload, deadline_ms: 0, enqueued_ms: Date.now(), due_ms: 0 };
  redis(url, 'SET', queueKey('default', `seen:${id}`), 'queued', 'NX', 'EX', '86400');
  redis(url, 'LPUSH', queueKey('default', 'ready'), JSON.stringify(job));
}

/** Waits until the worker finished the job (its seen state is done, or dead). */
async function jobDone(id) {
  return waitFor(() => {
    const s = redis(h.stack.REDIS_URL, 'GET', queueKey('default', `seen:${id}`)).trim();
    return s === 'done' || s === 'dead' ? s : null;
  }, { timeout: 30000, message: `job ${id} run by the worker` });
}

async function setup(t) {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, g.guild.id);
  return { g, gid: g.guild.id, owner };
}

async function putSettings(c, gid, feature, patch) {
  const cur = await c.get(`/guilds/${gid}/settings/${feature}`);
  assert.equal(cur.status, 200, cur.text);
  const r = await c.put(`/guilds/${gid}/settings/${feature}`,
    { document: { ...cur.body.document, ...patch }, version: cur.body.version });
  assert.equal(r.status, 200, r.text);
  return r;
}

/** A MESSAGE_CREATE as Discord sends it (guild message with a partial member). */
function messageFrom(g, who, content) {
  const m = g.members.find((x) => x.fixture_key === who);
  return {
    id: snowflake(), type: 0, guild_id: g.guild.id, channel_id: g.channels.general.id, content,
    author: { ...m.user }, member: { roles: m.roles, joined_at: m.joined_at, nick: null },
    attachments: [], embeds: [], mentions: [], mention_roles: [], pinned: false, tts: false,
    timestamp: new Date().toISOString(),
  };
}

/** Sends a prefix command through the job; resolves with the reply the fake received. */
async function prefix(g, who, content) {
  const msg = messageFrom(g, who, content);
  const id = `prefix:${g.guild.id}:${msg.id}`;
  enqueue(id, 'events:prefix', g.guild.id, { message: msg, received_ms: Date.now() });
  const path = `/api/v10/channels/${g.channels.general.id}/messages`;
  const found = await waitFor(async () => {
    const reqs = await h.fake.requests({ method: 'POST', path });
    return reqs.find((r) => r.body?.message_reference?.message_id === msg.id) ?? null;
  }, { timeout: 30000, message: `the reply to ${content}` });
  return { msg, reply: found.body };
}

test('!ping answers in the channel as a reply without pings; a disabled feature and a missing permission are refused', async (t) => {
  const { g, gid, owner } = await setup(t);
  await putSettings(owner, gid, 'events', { prefix_enabled: true, prefix: '!' });

  const ping = await prefix(g, 'member', '!ping');
  assert.match(ping.reply.content, /^Pong!/);
  assert.deepEqual(ping.reply.allowed_mentions, { parse: [], replied_user: false });
  assert.equal(ping.reply.message_reference.channel_id, g.channels.general.id);
  assert.equal(ping.reply.flags ?? 0, 0, 'no ephemeral flag in a channel');

  await putSettings(owner, gid, 'utility', { enabled: false });
  const info = await prefix(g, 'member', '!serverinfo');
  assert.match(info.reply.content, /disabled in this server/);

  const t1 = g.members.find((x) => x.fixture_key === 'muted').user.id;
  const warn = await prefix(g, 'member', `!warn <@${t1}> spamming links`);
  assert.match(warn.reply.content, /You need the Moderate Members permission to use `!warn`/);
  const cases = query(h.stack.DATABASE_URL, "SELECT count(*)::int AS n FROM mod_cases WHERE guild_id = :'g'", { g: gid });
  assert.equal(cases[0].n, 0, 'no case was created');

  const bad = await prefix(g, 'moderator', '!warn bob');
  assert.match(bad.reply.content, /`user` must be a user mention/);
  assert.match(bad.reply.content, /Usage: `!warn <user> <reason>`/);
});

test('a prefix job run twice (at-least-once) replies once: the repeat is answered by its nonce', async (t) => {
  const { g, gid, owner } = await setup(t);
  await putSettings(owner, gid, 'events', { prefix_enabled: true, prefix: '!' });
  const ch = g.channels.general.id;
  const before = ((await h.fake.state()).messages[ch] ?? []).length;
  const { msg, reply } = await prefix(g, 'member', '!ping');
  assert.equal(typeof reply.nonce, 'string');
  assert.ok(reply.nonce.length > 0 && reply.nonce.length <= 25, `nonce ${reply.nonce}`);
  assert.equal(reply.enforce_nonce, true);
  const id = `prefix:${gid}:${msg.id}`;
  await jobDone(id);
  // the same job again, as when a worker lost its lease after replying
  redis(h.stack.REDIS_URL, 'DEL', queueKey('default', `seen:${id}`));
  enqueue(id, 'events:prefix', gid, { message: msg, received_ms: Date.now() });
  const path = `/api/v10/channels/${ch}/messages`;
  const posts = await waitFor(async () => {
    const reqs = (await h.fake.requests({ method: 'POST', path })).filter((r) => r.body?.message_reference?.message_id === msg.id);
    return reqs.length >= 2 ? reqs : null;
  }, { timeout: 30000, message: 'the second run posted too' });
  assert.equal(posts[1].body.nonce, reply.nonce, 'the same job, the same nonce');
  const after = (await h.fake.state()).messages[ch] ?? [];
  assert.equal(after.length, before + 1, 'one reply in the channel');
});

test('prefix commands disabled: nothing is posted', async (t) => {
  const { g, gid, owner } = await setup(t);
  await putSettings(owner, gid, 'events', { prefix_enabled: false });
  const since = await h.fake.seq();
  const msg = messageFrom(g, 'member', '!ping');
  const id = `prefix:${gid}:${msg.id}`;
  enqueue(id, 'events:prefix', gid, { message: msg, received_ms: Date.now() });
  assert.equal(await jobDone(id), 'done');
  const reqs = await h.fake.requests({ method: 'POST', path: `/api/v10/channels/${g.channels.general.id}/messages`, since });
  assert.equal(reqs.filter((r) => r.body?.message_reference?.message_id === msg.id).length, 0);
});

test('GUILD_DELETE of a removed bot deactivates the guild; GUILD_CREATE activates it again', async (t) => {
  const { g, gid } = await setup(t);
  const active = () => query(h.stack.DATABASE_URL, "SELECT is_active FROM guilds WHERE id = :'g'", { g: gid })[0]?.is_active;
  assert.equal(active(), true);
  const session = `test${Date.now()}`;

  enqueue(`ev:${session}:1`, 'gateway:event', gid,
    { t: 'GUILD_DELETE', d: { id: gid, unavailable: true }, shard: 0, seq: 1, received_ms: Date.now() });
  assert.equal(await jobDone(`ev:${session}:1`), 'done');
  assert.equal(active(), true, 'an outage keeps the guild active');

  enqueue(`ev:${session}:2`, 'gateway:event', gid,
    { t: 'GUILD_DELETE', d: { id: gid }, shard: 0, seq: 2, received_ms: Date.now() });
  await waitFor(() => active() === false, { timeout: 30000, message: 'guild deactivated' });
  const audit = query(h.stack.DATABASE_URL,
    "SELECT count(*)::int AS n FROM audit_log WHERE guild_id = :'g' AND action = 'guild.removed'", { g: gid });
  assert.equal(audit[0].n, 1);

  enqueue(`ev:${session}:3`, 'gateway:event', gid,
    { t: 'GUILD_CREATE', d: { ...g.guild, roles: Object.values(g.roles), channels: Object.values(g.channels) }, shard: 0, seq: 3, received_ms: Date.now() });
  await waitFor(() => active() === true, { timeout: 30000, message: 'guild active again' });

  // a malformed event is dead-lettered at once
  enqueue(`ev:${session}:4`, 'gateway:event', gid, { t: 'GUILD_MEMBER_ADD', d: { guild_id: gid }, shard: 0, seq: 4 });
  assert.equal(await jobDone(`ev:${session}:4`), 'dead');
});
