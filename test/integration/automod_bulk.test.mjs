// automod_bulk.test.mjs - AutoMod's deletes through gateway-lite under rate limits
// (docs/features/automod.md "Deletes"): a 429 on a DELETE delays it (the REST client's max wait)
// and it is still done; the messages hit while a channel's delete is in flight wait in the
// channel's queue and go out together as ONE POST /channels/{c}/messages/bulk-delete with their
// ids and the audit-log reason; every offence is recorded by the worker.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { startGateway } from '../lib/gateway.mjs';
import { harness } from '../lib/harness.mjs';
import { modHelpers } from '../lib/moderation.mjs';
import { users } from '../lib/fixtures.mjs';
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

test('a 429 on a delete delays it; the messages hit meanwhile go out as one bulk delete', async (t) => {
  await fresh();
  const g = await m.guild(t);
  await installGuild(h.fake, g.guild.id, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, g.guild.id);
  m.quiet(g);
  const doc = { enabled: true, invites: { enabled: true, actions: ['delete'] } };
  const put = await owner.put(`/guilds/${g.guild.id}/settings/automod`, { document: doc, version: 0 });
  assert.equal(put.status, 200, put.text);
  const ch = g.channels.general.id;
  t.after(() => h.fake.clearFails());
  // the first delete in the channel: 429, retry after 1.5 s (route scope)
  await h.fake.fail({ method: 'DELETE', path_re: `/channels/${ch}/messages/`, status: 429, count: 1, retry_after: 1.5 });

  const proc = await startGateway({ shards: '0-0/1', env: { GATEWAY_STATUS_INTERVAL_MS: '200' } });
  t.after(async () => { await proc.stop(); });
  const since = await h.fake.seq();

  const first = message(g, 't1', 'join discord.gg/first');
  await gw('POST', '/dispatch', { t: 'MESSAGE_CREATE', d: first });
  const path1 = `/api/v10/channels/${ch}/messages/${first.id}`;
  await h.fake.waitForRequests({ method: 'DELETE', path: path1, since }, { timeout: 15000, message: 'the first delete tried' });
  // while it waits out the 429, three more invites in the same channel
  const more = ['a', 'b', 'c'].map((x) => message(g, 't2', `discord.gg/more${x}`));
  for (const d of more) await gw('POST', '/dispatch', { t: 'MESSAGE_CREATE', d });

  const bulk = await h.fake.waitForRequests({ method: 'POST', path: `/api/v10/channels/${ch}/messages/bulk-delete`, since },
    { timeout: 20000, message: 'one bulk delete with the three ids' });
  assert.equal(bulk.length, 1, 'one call for the three messages');
  assert.deepEqual([...bulk[0].body.messages].sort(), more.map((d) => d.id).sort());
  assert.equal(bulk[0].valid, true, JSON.stringify(bulk[0].errors));
  assert.equal(bulk[0].status, 204);
  assert.equal(decodeURIComponent(bulk[0].headers['x-audit-log-reason'] ?? ''), 'AutoMod: 3 messages (Discord invites)');

  // the 429'd DELETE was retried after its retry_after and done, before the bulk call
  const dels = await h.fake.requests({ method: 'DELETE', path: path1, since });
  // (the dispatched messages are not in the fake's store: Discord's answer to the retry is 404)
  assert.deepEqual(dels.map((r) => r.status), [429, 404]);
  assert.ok(dels[1].time - dels[0].time >= 1400, `retried after ${dels[1].time - dels[0].time} ms`);
  assert.ok(bulk[0].seq > dels[1].seq, 'one delete in flight per channel');
  for (const d of more)
    assert.deepEqual(await h.fake.requests({ method: 'DELETE', path: `/api/v10/channels/${ch}/messages/${d.id}`, since }), []);

  await waitFor(() => Number(status(0).urgent_calls ?? 0) >= 4 && Number(status(0).automod_hits ?? 0) >= 4,
    { timeout: 10000, message: `4 urgent calls counted: ${JSON.stringify(status(0))}` });
  const rows = await waitFor(() => {
    const r = m.q(`SELECT message_id::text AS message_id FROM automod_offences WHERE guild_id = :'g' AND done_at IS NOT NULL`, { g: g.guild.id });
    return r.length === 4 ? r : null;
  }, { timeout: 30000, message: 'the four offences recorded' });
  assert.deepEqual(rows.map((r) => r.message_id).sort(), [first.id, ...more.map((d) => d.id)].sort());
});
