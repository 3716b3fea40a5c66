// automod_outage.test.mjs - AutoMod through gateway-lite while Redis is down (lib/store/jobspool.h):
// the content rules need no Redis, so an invite is still deleted from the gateway's loop; the
// automod:offence job Redis refused is kept in the gateway's spool, and once Redis is back it is
// queued, so the worker records the offence and makes the warn case.
// Stops shared services: run this file alone or with --test-concurrency=1 (scripts/test.sh does).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { users } from '../lib/fixtures.mjs';
import { startGateway } from '../lib/gateway.mjs';
import { harness } from '../lib/harness.mjs';
import { modHelpers } from '../lib/moderation.mjs';
import { snowflake } from '../lib/snowflake.mjs';
import { redis, redisKeys } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();
const m = modHelpers(h);
const R = h.stack.REDIS_URL;
const gw = (method, path, body) => h.fake.call(method, `/_fake/gateway${path}`, body);

async function fresh() {
  await gw('POST', '/reset');
  const keys = [...redisKeys(R, 'bot:{global}:gateway:*'), ...redisKeys(R, 'bot:{global}:shards:*')];
  if (keys.length) redis(R, 'DEL', ...keys);
  redis(R, 'DEL', 'bot:{global}:shards');
}

const status = (id) => {
  const flat = redis(R, 'HGETALL', `bot:{global}:shards:${id}`).split('\n');
  const o = {};
  for (let i = 0; i + 1 < flat.length; i += 2) o[flat[i]] = flat[i + 1];
  return o;
};

const offences = (gid) => m.q(
  `SELECT message_id::text AS message_id, rule::text AS rule, outcome, done_at IS NOT NULL AS done
     FROM automod_offences WHERE guild_id = :'g' ORDER BY id`, { g: gid });

function message(g, who, content, id = snowflake()) {
  const u = g.extra[who];
  return {
    id, channel_id: g.channels.general.id, guild_id: g.guild.id,
    author: { id: u.id, username: u.username, global_name: null, avatar: null, discriminator: '0' },
    member: { roles: [g.roles.member.id], joined_at: '2023-05-01T10:00:00.000000+00:00', deaf: false, mute: false, flags: 0 },
    content, mentions: [], mention_roles: [], mention_everyone: false, attachments: [], embeds: [],
    timestamp: new Date().toISOString(), type: 0, tts: false, pinned: false, flags: 0,
  };
}

test('Redis down: the invite is still deleted, the offence and warn case follow once Redis is back', async (t) => {
  await fresh();
  const g = await m.guild(t);
  await installGuild(h.fake, g.guild.id, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, g.guild.id);
  m.quiet(g);
  const doc = { enabled: true, invites: { enabled: true, actions: ['delete', 'warn'] } };
  const put = await owner.put(`/guilds/${g.guild.id}/settings/automod`, { document: doc, version: 0 });
  assert.equal(put.status, 200, put.text);

  const proc = await startGateway({ shards: '0-0/1', env: { GATEWAY_STATUS_INTERVAL_MS: '200' } });
  t.after(async () => { await proc.stop(); });
  await waitFor(() => status(0).state === 'ready', { timeout: 15000, message: 'shard 0 ready' });

  let stopped = false;
  t.after(() => { if (stopped) h.stackScript('redis-start'); });
  h.stackScript('redis-stop');
  stopped = true;

  const inv = message(g, 't1', 'come join discord . gg / abcdef');
  await gw('POST', '/dispatch', { t: 'MESSAGE_CREATE', d: inv });
  const del = await h.fake.waitForRequests({ method: 'DELETE', path: `/api/v10/channels/${g.channels.general.id}/messages/${inv.id}` },
    { timeout: 15000, message: 'gateway-lite deleted the invite with Redis down' });
  assert.equal(del.length, 1);
  await waitFor(() => /jobspool: Redis refused job/.test(readFileSync(proc.logFile, 'utf8')),
    { timeout: 10000, message: 'the gateway logged that it keeps the refused jobs' });
  assert.equal(offences(g.guild.id).length, 0, 'nothing recorded while Redis is down');

  h.stackScript('redis-start');
  stopped = false;
  const rows = await waitFor(() => { const r = offences(g.guild.id); return r.length === 1 && r[0].done ? r : null; },
    { timeout: 40000, message: 'the spooled automod:offence job ran once Redis was back' });
  assert.equal(rows[0].rule, 'invites');
  assert.equal(rows[0].message_id, inv.id);
  assert.match(rows[0].outcome, /deleted; warn: case #1/);
  const cs = m.cases(g);
  assert.equal(cs.length, 1);
  assert.equal(cs[0].type, 'WARN');
  assert.equal(cs[0].target_id, g.extra.t1.id);
  assert.match(readFileSync(proc.logFile, 'utf8'), /spooled job\(s\) queued after a Redis outage/);
  await waitFor(() => status(0).jobs_spooled === '0' && status(0).jobs_lost === '0',
    { timeout: 10000, message: `the shard status shows the spool empty, nothing lost: ${JSON.stringify(status(0))}` });
});
