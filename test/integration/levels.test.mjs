// levels.test.mjs - XP end to end through gateway-lite (issue 7, item 5): MESSAGE_CREATE events
// dispatched by the fake gateway earn XP once per cooldown (Redis totals, leaderboard, the shard's
// dirty set); two gateway processes with two shards (0-0/2 and 1-1/2) each award XP for their own
// guilds, each shard's dirty set holds only its guilds, and the cooldown holds when one user's
// messages reach both processes; then the flush job (run by the worker) writes the totals to
// PostgreSQL. Needs gateway-lite (gw-core) and the fake gateway (gw-fake).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startGateway } from '../lib/gateway.mjs';
import { harness, newGuildId } from '../lib/harness.mjs';
import { exec, query, redis, redisKeys } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();
const R = h.stack.REDIS_URL;
const db = h.stack.DATABASE_URL;
const gw = (method, path, body) => h.fake.call(method, `/_fake/gateway${path}`, body);
const shardOf = (guildId, n) => Number((BigInt(guildId) >> 22n) % BigInt(n));

async function fresh(config = {}) {
  await gw('POST', '/reset');
  await gw('POST', '/config', { heartbeat_interval: 41250, withhold_acks: false, ...config });
  const keys = [...redisKeys(R, 'bot:{global}:gateway:*'), ...redisKeys(R, 'bot:{global}:shards:*'),
    ...redisKeys(R, 'bot:{global}:levels:*')];
  if (keys.length) redis(R, 'DEL', ...keys);
  redis(R, 'DEL', 'bot:{global}:shards');
}

async function start(t, shards) {
  const g = await startGateway({ shards, env: { GATEWAY_STATUS_INTERVAL_MS: '200', GATEWAY_SETTINGS_TTL_MS: '0' } });
  t.after(async () => { await g.stop(); });
  return g;
}

async function ready(shard) {
  await waitFor(() => redis(R, 'HGET', `bot:{global}:shards:${shard}`, 'state') === 'ready',
    { timeout: 20000, message: `shard ${shard} ready` });
}

/** A guild with levels on, whose id falls on shard `shard` of n. */
async function levelsGuild(t, shard, n) {
  let id;
  do id = newGuildId(); while (shardOf(id, n) !== shard);
  t.after(() => {
    exec(db, `DELETE FROM levels_members WHERE guild_id = :'g'; DELETE FROM guild_settings WHERE guild_id = :'g';
              DELETE FROM guilds WHERE id = :'g';`, { g: id });
    const keys = redisKeys(R, `bot:{${id}}:*`);
    if (keys.length) redis(R, 'DEL', ...keys);
  });
  exec(db, `INSERT INTO guilds (id) VALUES (:'g') ON CONFLICT DO NOTHING;
            INSERT INTO guild_settings (guild_id, feature, document) VALUES (:'g', 'levels', '{"enabled": true}'::jsonb);`, { g: id });
  return id;
}

let seq = 0;
function message(guildId, userId, extra = {}) {
  seq += 1;
  return {
    id: String(BigInt(newGuildId()) + BigInt(seq)), channel_id: '500000000000000001', guild_id: guildId,
    author: { id: userId, username: `user${seq}` }, member: { roles: [] }, content: `hello ${seq}`, mentions: [],
    mention_roles: [], attachments: [], embeds: [], timestamp: new Date().toISOString(), type: 0, ...extra,
  };
}

const xp = (g, u) => { const v = redis(R, 'GET', `bot:{${g}}:levels:xp:${u}`); return v === '' ? null : Number(v); };

test('messages through the fake gateway earn XP once per cooldown; bots earn none', async (t) => {
  await fresh({ shards: 1 });
  const gid = await levelsGuild(t, 0, 1);
  await start(t, '0-0/1');
  await ready(0);
  const u = newGuildId();
  const bot = newGuildId();
  for (let i = 0; i < 5; i++) await gw('POST', '/dispatch', { t: 'MESSAGE_CREATE', d: message(gid, u) });
  await gw('POST', '/dispatch', { t: 'MESSAGE_CREATE', d: message(gid, bot, { author: { id: bot, username: 'b', bot: true } }) });
  const first = await waitFor(() => xp(gid, u), { timeout: 15000, message: 'XP for the first message' });
  assert.ok(first >= 15 && first <= 25, `one award of 15..25: ${first}`);
  // a marker message after the rest: once it is counted, the others were handled too
  await waitFor(() => Number(redis(R, 'HGET', 'bot:{global}:shards:0', 'messages')) >= 6, { message: 'all 6 messages handled' });
  assert.equal(xp(gid, u), first, 'the cooldown held');
  assert.equal(xp(gid, bot), null, 'bots earn nothing');
  assert.equal(redis(R, 'ZSCORE', `bot:{${gid}}:levels:lb`, u), String(first));
  assert.equal(redis(R, 'SISMEMBER', 'bot:{global}:levels:dirty_guilds:0', gid), '1');
});

test('two gateway processes, two shards: each awards its own guilds, the cooldown holds across them, the flush writes them', async (t) => {
  await fresh({ shards: 2 });
  const g0 = await levelsGuild(t, 0, 2);
  const g1 = await levelsGuild(t, 1, 2);
  await start(t, '0-0/2');
  await start(t, '1-1/2');
  await ready(0);
  await ready(1);
  const u = newGuildId();
  for (let i = 0; i < 3; i++) {
    await gw('POST', '/dispatch', { t: 'MESSAGE_CREATE', d: message(g0, u) });
    await gw('POST', '/dispatch', { t: 'MESSAGE_CREATE', d: message(g1, u) });
  }
  const a = await waitFor(() => xp(g0, u), { timeout: 15000, message: 'XP in the shard 0 guild' });
  const b = await waitFor(() => xp(g1, u), { timeout: 15000, message: 'XP in the shard 1 guild' });
  assert.ok(a >= 15 && a <= 25 && b >= 15 && b <= 25, `${a}, ${b}`);
  assert.equal(redis(R, 'SISMEMBER', 'bot:{global}:levels:dirty_guilds:0', g0), '1');
  assert.equal(redis(R, 'SISMEMBER', 'bot:{global}:levels:dirty_guilds:0', g1), '0');
  assert.equal(redis(R, 'SISMEMBER', 'bot:{global}:levels:dirty_guilds:1', g1), '1');
  assert.equal(redis(R, 'SISMEMBER', 'bot:{global}:levels:dirty_guilds:1', g0), '0');
  // the same guild's events reaching the other process too (a takeover replay): still one award
  await gw('POST', '/dispatch', { t: 'MESSAGE_CREATE', d: message(g0, u), shard: 1 });
  await waitFor(() => Number(redis(R, 'HGET', 'bot:{global}:shards:1', 'messages')) >= 4, { message: 'shard 1 handled the stray event' });
  assert.equal(xp(g0, u), a, 'the cooldown is shared by the processes');
  // each shard's flush job is queued for this 5-minute slot
  const ready0 = redisKeys(R, 'bot:{q*}:jobs:default:seen:levels:flush:0:*');
  const ready1 = redisKeys(R, 'bot:{q*}:jobs:default:seen:levels:flush:1:*');
  assert.ok(ready0.length >= 1 && ready1.length >= 1, `flush jobs queued: ${ready0} ${ready1}`);
  // run both shards' flushes now (the worker), instead of waiting for the slot's end
  for (const shard of [0, 1]) enqueue(`levels:flush:${shard}:test${Date.now()}`, 'levels:flush', { shard });
  await waitFor(() => query(db, `SELECT guild_id::text AS g, xp::text AS xp FROM levels_members WHERE user_id = :'u' ORDER BY xp`,
    { u }).length === 2, { timeout: 20000, message: 'both guilds flushed' });
  const rows = query(db, `SELECT guild_id::text AS g, xp::text AS xp FROM levels_members WHERE user_id = :'u'`, { u });
  const by = Object.fromEntries(rows.map((r) => [r.g, Number(r.xp)]));
  assert.deepEqual(by, { [g0]: a, [g1]: b });
  await waitFor(() => redis(R, 'SCARD', `bot:{${g0}}:levels:dirty`) === '0', { message: 'the dirty set emptied after the commit' });
});

function fnv1a(str) {
  let x = 2166136261;
  for (const c of Buffer.from(str)) { x ^= c; x = Math.imul(x, 16777619) >>> 0; }
  return x >>> 0;
}

/** Queues a job on the default queue the way lib/store/queue.c does. */
function enqueue(id, kind, payload) {
  const p = fnv1a('default') % 4;
  const job = { attempt: 1, id, kind, guild: null, payload, deadline_ms: 0, enqueued_ms: Date.now(), due_ms: 0 };
  redis(R, 'SET', `bot:{q${p}}:jobs:default:seen:${id}`, 'queued', 'EX', '86400');
  redis(R, 'LPUSH', `bot:{q${p}}:jobs:default:ready`, JSON.stringify(job));
}
