// gateway_protocol.test.mjs - gateway-lite against the fake gateway (docs/gateway.md): connect
// with zlib-stream and identify with the right intents and shard; heartbeats and ACKs; zombie
// connections; op 7, op 9 (both), close codes (fatal and resumable); replay after a resume; shards
// in one process and in two; max_concurrency; an exhausted session start limit; the status hash
// and the shard monitor; Redis going away while connected; a flood of 100,000 messages.
// Each test starts its own guildhall-gateway and resets the fake gateway first.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { loginAs } from '../lib/api.mjs';
import { startGateway } from '../lib/gateway.mjs';
import { harness, newGuildId } from '../lib/harness.mjs';
import { redis, redisKeys } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();
const R = h.stack.REDIS_URL;
const DEV = '444455556666777788'; // DEVELOPER_USER_IDS of the test stack (api_dev.test.mjs)

const gw = (method, path, body) => h.fake.call(method, `/_fake/gateway${path}`, body);
const sessions = () => gw('GET', '/sessions');
const fakeLog = (since = 0) => gw('GET', `/log?since=${since}`);
const shardOf = (guildId, n) => Number((BigInt(guildId) >> 22n) % BigInt(n));

/** A clean fake gateway and no gateway state left in Redis by an earlier test. */
async function fresh(config = {}) {
  await gw('POST', '/reset');
  await gw('POST', '/config', { heartbeat_interval: 41250, withhold_acks: false, ...config });
  const keys = [...redisKeys(R, 'bot:{global}:gateway:*'), ...redisKeys(R, 'bot:{global}:shards:*')];
  if (keys.length) redis(R, 'DEL', ...keys);
  redis(R, 'DEL', 'bot:{global}:shards');
}

/** Starts guildhall-gateway, stopped after the test. */
async function start(t, { shards = '0-0/1', env = {}, waitReady = true } = {}) {
  const g = await startGateway({ shards, waitReady, env: { GATEWAY_STATUS_INTERVAL_MS: '200', ...env } });
  t.after(async () => { await g.stop(); });
  return g;
}

const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const logText = (g) => (fs.existsSync(g.logFile) ? fs.readFileSync(g.logFile, 'utf8') : '');
const status = (id) => {
  const flat = redis(R, 'HGETALL', `bot:{global}:shards:${id}`).split('\n');
  const o = {};
  for (let i = 0; i + 1 < flat.length; i += 2) o[flat[i]] = flat[i + 1];
  return o;
};

/** The current, connected session of a shard (waits for it). */
async function connected(shard = 0, { timeout = 20000, extra = () => true } = {}) {
  return waitFor(async () => {
    const v = await sessions();
    const s = v.sessions.find((x) => x.shard === shard && x.current && x.connected && !x.invalidated);
    return s && extra(s, v) ? { s, v } : null;
  }, { timeout, message: `shard ${shard} connected` });
}

async function dispatch(t, d, extra = {}) {
  const r = await gw('POST', '/dispatch', { t, d, ...extra });
  return r;
}

function message(guildId, i = 0) {
  return {
    id: String(BigInt(newGuildId()) + BigInt(i)), channel_id: '500000000000000001', guild_id: guildId,
    author: { id: '600000000000000001', username: 'u', bot: true }, content: `m${i}`, mentions: [],
    mention_roles: [], attachments: [], embeds: [], timestamp: new Date().toISOString(), type: 0,
  };
}

test('connects with zlib-stream, identifies with the configured intents and shard, heartbeats get ACKs, status and shard monitor', async (t) => {
  await fresh({ heartbeat_interval: 400 });
  const intents = 1 | 512 | 32768; // GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT (allowed in fake mode)
  const g = await start(t, { env: { GATEWAY_INTENTS: String(intents), GATEWAY_COMPRESS: 'zlib-stream' } });
  const { s, v } = await connected(0);
  assert.equal(s.compress, true, 'zlib-stream transport compression');
  assert.equal(s.intents, intents);
  assert.equal(s.shard_count, 1);
  const conn = v.connections.find((c) => c.id === s.connection);
  assert.equal(conn.query.v, '10');
  assert.equal(conn.query.encoding, 'json');
  assert.equal(conn.query.compress, 'zlib-stream');
  assert.equal(v.identifies.length, 1);

  // heartbeats every ~400 ms with the last seq, each acknowledged
  await waitFor(async () => (await fakeLog()).filter((e) => e.dir === 'in' && e.op === 1 && e.conn === s.connection).length >= 4,
    { timeout: 10000, message: '4 heartbeats' });
  const log = await fakeLog();
  const hbs = log.filter((e) => e.dir === 'in' && e.op === 1 && e.conn === s.connection);
  const acks = log.filter((e) => e.dir === 'out' && e.op === 11 && e.conn === s.connection);
  assert.ok(acks.length >= 3, `ACKs ${acks.length}`);
  for (let i = 2; i < hbs.length; i++) {
    const gap = hbs[i].time - hbs[i - 1].time;
    assert.ok(gap > 250 && gap < 1500, `heartbeat gap ${gap} ms for an interval of 400`);
  }
  assert.ok(typeof hbs.at(-1).d === 'number' && hbs.at(-1).d >= 1, `heartbeat carries the seq: ${JSON.stringify(hbs.at(-1))}`);
  const hello = log.find((e) => e.dir === 'out' && e.op === 10 && e.conn === s.connection);
  assert.ok(hbs[0].time - hello.time <= 400 + 200, 'the first heartbeat comes within interval * jitter');

  // a dispatch is counted, and the status hash has every field
  const gid = newGuildId();
  await dispatch('MESSAGE_CREATE', message(gid), { shard: 0 });
  const st = await waitFor(() => { const x = status(0); return Number(x.messages) >= 1 ? x : null; }, { message: 'messages counted' });
  for (const f of ['state', 'guilds', 'latency_ms', 'last_heartbeat_ms', 'started_ms', 'owner', 'shard_count', 'seq', 'events',
    'messages', 'automod_hits', 'urgent_calls', 'urgent_p50_us', 'urgent_p99_us', 'hb_late_p99_us']) {
    assert.ok(f in st, `status field ${f}: ${JSON.stringify(st)}`);
  }
  assert.equal(st.state, 'ready');
  assert.equal(st.shard_count, '1');
  assert.ok(Number(st.latency_ms) >= 0);
  assert.ok(Date.now() - Number(st.last_heartbeat_ms) < 5000);
  assert.ok(Number(st.seq) >= 2);
  assert.ok(Number(st.events) >= 2);
  const ttl = Number(redis(R, 'TTL', 'bot:{global}:shards:0'));
  assert.ok(ttl > 0 && ttl <= 60, `status TTL ${ttl}`);
  assert.equal(redis(R, 'SISMEMBER', 'bot:{global}:shards', '0'), '1');
  const sess = redis(R, 'HGET', 'bot:{global}:gateway:session:0', 'session_id');
  assert.equal(sess, s.id, 'the session is kept in Redis');

  // the dashboard's shard monitor reads it
  const dev = await loginAs(h.stack, DEV);
  const list = await dev.get('/shards');
  assert.equal(list.status, 200, list.text);
  const s0 = list.body.shards.find((x) => x.id === 0);
  assert.equal(s0.state, 'ready');
  assert.equal(s0.shard_count, 1);
  assert.ok(s0.owner && s0.owner.length > 0);
  assert.ok(s0.heartbeat_age_s !== null && s0.heartbeat_age_s < 10);

  // SIGTERM: closes with a resumable code, saves the session, releases the lease, says stopped
  assert.equal((await g.stop()).code, 0);
  const closes = (await fakeLog()).filter((e) => e.dir === 'closed' && e.conn === s.connection);
  assert.equal(closes.length, 1);
  assert.equal(closes[0].by, 'client');
  assert.ok(closes[0].code !== 1000 && closes[0].code !== 1001, `closed with ${closes[0].code}`);
  assert.equal(status(0).state, 'stopped');
  assert.equal(redis(R, 'EXISTS', 'bot:{global}:gateway:lease:0'), '0');
  assert.equal(redis(R, 'HGET', 'bot:{global}:gateway:session:0', 'session_id'), s.id);
  const after = (await sessions()).sessions.find((x) => x.id === s.id);
  assert.equal(after.invalidated, null, 'the session stays resumable');
});

test('privileged intents not allowed are dropped with a log line', async (t) => {
  await fresh();
  const g = await start(t, { env: { GATEWAY_INTENTS: String(1 | 512 | 32768), GATEWAY_PRIVILEGED_INTENTS: '' } });
  const { s } = await connected(0);
  assert.equal(s.intents, 1 | 512);
  const text = logText(g);
  assert.match(text, /privileged intent MESSAGE_CONTENT not enabled/);
  assert.match(text, /identifying with intents 513/);
});

test('withheld ACKs: zombie close with a non-1000 code, then a RESUME on resume_gateway_url', async (t) => {
  await fresh({ heartbeat_interval: 300 });
  await start(t);
  const { s } = await connected(0);
  await gw('POST', '/action', { shard: 0, action: 'withhold_acks', on: true });
  const closed = await waitFor(async () => (await fakeLog()).find((e) => e.dir === 'closed' && e.conn === s.connection),
    { timeout: 10000, message: 'the zombie connection closed' });
  await gw('POST', '/action', { shard: 0, action: 'withhold_acks', on: false });
  assert.equal(closed.by, 'client');
  assert.ok(closed.code !== 1000 && closed.code !== 1001, `closed with ${closed.code}`);
  const withheld = (await fakeLog()).filter((e) => e.dir === 'withheld' && e.conn === s.connection);
  assert.ok(withheld.length >= 1);
  const { v } = await connected(0, { extra: (x) => x.id === s.id && x.resumed >= 1 });
  const r = v.resumes.find((x) => x.session_id === s.id);
  assert.equal(r.outcome, 'resumed');
  assert.equal(r.path, '/gateway-resume');
  assert.equal(v.identifies.length, 1, 'no new identify');
});

test('op 1 from the server is answered with a heartbeat at once', async (t) => {
  await fresh();
  await start(t);
  const { s } = await connected(0);
  const since = (await fakeLog()).at(-1).n;
  await gw('POST', '/action', { shard: 0, action: 'heartbeat_request' });
  await waitFor(async () => (await fakeLog(since)).some((e) => e.dir === 'in' && e.op === 1 && e.conn === s.connection),
    { timeout: 3000, message: 'a heartbeat answering op 1' });
});

test('op 7 reconnect: resumes the same session', async (t) => {
  await fresh();
  await start(t);
  const { s } = await connected(0);
  await gw('POST', '/action', { shard: 0, action: 'reconnect', close_after_ms: 3000 });
  const { v } = await connected(0, { extra: (x) => x.id === s.id && x.resumed >= 1 });
  assert.equal(v.identifies.length, 1);
  assert.equal(v.resumes.find((x) => x.session_id === s.id).path, '/gateway-resume');
  // our own close, not the fake's: a resumable code
  const closed = (await fakeLog()).find((e) => e.dir === 'closed' && e.conn === s.connection);
  assert.ok(closed.code !== 1000 && closed.code !== 1001);
});

test('op 9: resumable resumes, not resumable identifies anew', async (t) => {
  await fresh();
  const g = await start(t);
  const { s } = await connected(0);
  await gw('POST', '/action', { shard: 0, action: 'invalid_session', resumable: true });
  await connected(0, { extra: (x) => x.id === s.id && x.resumed >= 1 });
  await gw('POST', '/action', { shard: 0, action: 'invalid_session', resumable: false });
  const { s: s2, v } = await connected(0, { extra: (x) => x.id !== s.id });
  assert.equal(v.identifies.length, 2, 'one new identify');
  const sorted = v.identifies.map((x) => x.time);
  assert.ok(sorted[1] - sorted[0] >= 1000, 'waited at least 1 s before identifying again');
  await waitFor(() => redis(R, 'HGET', 'bot:{global}:gateway:session:0', 'session_id') === s2.id,
    { message: 'the new session saved' });
  assert.match(logText(g), /invalid session \(op 9, not resumable\)/);
});

test('a resumable close code and a TCP drop resume', async (t) => {
  await fresh();
  await start(t);
  const { s } = await connected(0);
  await gw('POST', '/action', { shard: 0, action: 'close', code: 4000 });
  await connected(0, { extra: (x) => x.id === s.id && x.resumed >= 1 });
  await gw('POST', '/action', { shard: 0, action: 'drop' });
  const { v } = await connected(0, { extra: (x) => x.id === s.id && x.resumed >= 2 });
  assert.equal(v.identifies.length, 1);
  // 4009 (session timed out) starts a new session
  await gw('POST', '/action', { shard: 0, action: 'close', code: 4009 });
  const { v: v2 } = await connected(0, { extra: (x) => x.id !== s.id });
  assert.equal(v2.identifies.length, 2);
});

for (const [code, hint] of [[4004, /DISCORD_TOKEN/], [4010, /--shards/], [4011, /--shards/], [4012, /v=10/],
  [4013, /GATEWAY_INTENTS/], [4014, /Developer Portal.*GATEWAY_PRIVILEGED_INTENTS/]]) {
  test(`fatal close ${code}: the shard stops with a log line saying what to do, and the process exits 1`, async (t) => {
    await fresh();
    const g = await start(t);
    const { s } = await connected(0);
    await gw('POST', '/action', { shard: 0, action: 'close', code });
    await waitFor(() => !alive(g.pid), { timeout: 15000, message: 'the gateway exits' });
    const text = logText(g);
    assert.match(text, new RegExp(`shard 0 stopped: Discord closed the connection with ${code}`));
    assert.match(text, hint);
    assert.equal((await g.exited).code, 1, 'exit status 1');
    const v = await sessions();
    assert.equal(v.identifies.length, 1, 'no identify after a fatal close');
    assert.equal(v.resumes.filter((r) => r.session_id === s.id).length, 0, 'no resume after a fatal close');
    const st = status(0);
    assert.ok(['failed', 'stopped'].includes(st.state), `state ${st.state}`);
  });
}

test('events dispatched while disconnected are replayed after the resume, each handled once', async (t) => {
  await fresh();
  await start(t);
  const { s } = await connected(0);
  const gid = newGuildId();
  // the status hash is written every GATEWAY_STATUS_INTERVAL_MS: count from a status that has
  // caught up with everything the session sent so far (READY and the GUILD_CREATEs)
  await waitFor(() => Number(status(0).seq) >= Number(s.seq), { message: `status at seq ${s.seq}` });
  const base = Number(status(0).events || 0);
  await gw('POST', '/action', { shard: 0, action: 'drop' });
  const sent = [];
  for (let i = 0; i < 20; i++) sent.push(await dispatch('MESSAGE_CREATE', message(gid, i), { shard: 0 }));
  assert.ok(sent.some((r) => r.delivered === false), 'some events were dispatched while disconnected');
  await connected(0, { extra: (x) => x.id === s.id && x.resumed >= 1 });
  const v = await sessions();
  assert.ok(v.resumes.find((r) => r.session_id === s.id).replayed >= 1);
  const lastSeq = sent.at(-1).seq;
  await waitFor(() => Number(status(0).seq) >= lastSeq, { message: `seq ${lastSeq} reached` });
  // every event once: 20 messages + RESUMED
  await waitFor(() => Number(status(0).events) === base + 21, { message: 'events counted once each', timeout: 5000 });
});

test('two shards in one process: each gets only its guilds', async (t) => {
  await fresh({ shards: 2 });
  const ids = { 0: null, 1: null };
  while (!ids[0] || !ids[1]) { const id = newGuildId(); ids[shardOf(id, 2)] ??= id; }
  await start(t, { shards: '0-1/2' });
  const a = await connected(0);
  const b = await connected(1);
  assert.notEqual(a.s.id, b.s.id);
  assert.equal(a.s.shard_count, 2);
  const r0 = await dispatch('MESSAGE_CREATE', message(ids[0]));
  const r1 = await dispatch('MESSAGE_CREATE', message(ids[1]));
  assert.equal(r0.shard, 0);
  assert.equal(r1.shard, 1);
  await waitFor(() => Number(status(0).messages) === 1 && Number(status(1).messages) === 1,
    { message: 'one message on each shard' });
  assert.equal(status(0).owner, status(1).owner);
});

test('two processes with disjoint ranges', async (t) => {
  await fresh({ shards: 2 });
  await start(t, { shards: '0-0/2', env: { GATEWAY_OWNER: 'proc-a' } });
  await start(t, { shards: '1-1/2', env: { GATEWAY_OWNER: 'proc-b' } });
  await connected(0);
  await connected(1);
  await waitFor(() => status(0).owner === 'proc-a' && status(1).owner === 'proc-b', { message: 'owners' });
  assert.equal(redis(R, 'GET', 'bot:{global}:gateway:lease:0'), 'proc-a');
  assert.equal(redis(R, 'GET', 'bot:{global}:gateway:lease:1'), 'proc-b');
});

test('max_concurrency: one identify per bucket per 5 s, buckets in order', async (t) => {
  await fresh({ shards: 4, max_concurrency: 2 });
  await start(t, { shards: '0-3/4' });
  for (let i = 0; i < 4; i++) await connected(i, { timeout: 30000 });
  const v = await sessions();
  const ids = v.identifies.filter((x) => x.outcome === 'ready');
  assert.equal(ids.length, 4);
  assert.equal(v.identifies.filter((x) => /max_concurrency/.test(x.outcome ?? '')).length, 0, 'never refused for concurrency');
  const at = Object.fromEntries(ids.map((x) => [x.shard, x.time]));
  assert.ok(at[2] - at[0] >= 4900, `bucket 0: ${at[2] - at[0]} ms apart`);
  assert.ok(at[3] - at[1] >= 4900, `bucket 1: ${at[3] - at[1]} ms apart`);
  assert.ok(Math.max(at[0], at[1]) < Math.min(at[2], at[3]), 'shards 0 and 1 start before 2 and 3');
});

test('session start limit exhausted: no identify, a log line with the wait', async (t) => {
  await fresh({ remaining: 0, reset_after: 600000 });
  const g = await start(t, { waitReady: false });
  await waitFor(() => /no identify left in the session start limit/.test(logText(g)), { message: 'the wait is logged' });
  const v = await sessions();
  assert.equal(v.identifies.length, 0);
  assert.equal(v.connections.length, 0, 'not even a connection');
  assert.ok(alive(g.pid));
});

test('identify reserve: with 5 or fewer identifies left, one shard per minute', async (t) => {
  await fresh({ shards: 2, remaining: 3 });
  const g = await start(t, { shards: '0-1/2', waitReady: false });
  await connected(0);
  await waitFor(() => /only 3 identify\(s\) left today/.test(logText(g)), { message: 'the reserve is logged' });
  // past the 5 s max_concurrency window (the bucket's identify lock expired), shard 1 still waits
  await waitFor(() => redis(R, 'EXISTS', 'bot:{global}:gateway:identify:0') === '0', { timeout: 10000, message: 'identify lock expired' });
  await waitFor(() => status(1).state === 'waiting_identify', { message: 'shard 1 waiting' });
  const v = await sessions();
  assert.equal(v.identifies.length, 1, 'one identify inside the reserve');
  assert.equal(v.session_start_limit.remaining, 2);
});

test('Redis stopped and started while connected: the shard stays connected and events still dispatch', async (t) => {
  await fresh({ heartbeat_interval: 500 });
  const g = await start(t);
  const { s } = await connected(0);
  const gid = newGuildId();
  await dispatch('MESSAGE_CREATE', message(gid, 0), { shard: 0 });
  await waitFor(() => Number(status(0).messages) === 1, { message: 'first message' });
  let stopped = false;
  t.after(() => { if (stopped) h.stackScript('redis-start'); });
  h.stackScript('redis-stop');
  stopped = true;
  const since = (await fakeLog()).at(-1).n;
  for (let i = 1; i <= 5; i++) await dispatch('MESSAGE_CREATE', message(gid, i), { shard: 0 });
  // events that become jobs (features/events): spooled in memory while Redis is down
  const jobSeqs = [];
  for (let i = 0; i < 3; i++) {
    const r = await dispatch('GUILD_MEMBER_ADD', {
      guild_id: gid, user: { id: String(710000000000000000n + BigInt(i)), username: `r${i}` }, roles: [], joined_at: new Date().toISOString(),
    }, { shard: 0 });
    jobSeqs.push(r.seq);
  }
  // heartbeats keep going and are acknowledged on the same connection
  await waitFor(async () => (await fakeLog(since)).filter((e) => e.dir === 'out' && e.op === 11 && e.conn === s.connection).length >= 3,
    { timeout: 10000, message: 'ACKs during the outage' });
  assert.ok(alive(g.pid));
  h.stackScript('redis-start');
  stopped = false;
  await waitFor(() => { try { return Number(status(0).messages) === 6; } catch { return false; } },
    { timeout: 20000, message: 'the 5 messages sent during the outage counted' });
  const closes = (await fakeLog(since)).filter((e) => e.dir === 'closed' && e.conn === s.connection);
  assert.equal(closes.length, 0, 'never disconnected');
  assert.match(logText(g), /Redis/);
  // the spooled jobs reached the queue once Redis was back (needs a job handler for GUILD_MEMBER_ADD)
  if (/spooling jobs in memory/.test(logText(g))) {
    await waitFor(() => jobSeqs.every((q) => redisKeys(R, `bot:{q*}:jobs:*:seen:ev:${s.id}:${q}`).length === 1),
      { timeout: 10000, message: 'spooled jobs queued after the outage' });
    await waitFor(() => status(0).jobs_spooled === '0', { message: 'spool empty' });
    assert.equal(status(0).jobs_lost, '0');
  } else {
    t.diagnostic('no feature turns GUILD_MEMBER_ADD into a job in this build: spool not exercised');
  }
});

test('a flood of 100,000 MESSAGE_CREATE events: all counted, memory bounded', async (t) => {
  await fresh();
  const g = await start(t, { env: { GATEWAY_INTENTS: String(1 | 512) } });
  await connected(0);
  const r = await gw('POST', '/stream', { count: 100000, rate: 0, guilds: 50, users: 500, seed: 7 });
  assert.equal(r.sent, 100000);
  await waitFor(() => Number(status(0).messages) >= 100000, { timeout: 120000, interval: 500, message: '100,000 messages counted' });
  assert.equal(Number(status(0).messages), 100000);
  const rss = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${g.pid}/status`, 'utf8'))[1]);
  // ASan (make check) keeps freed memory in quarantine: a looser bound there
  const limit = /asan/.test(process.env.GH_BUILD ?? '') ? 1024 * 1024 : 300 * 1024;
  assert.ok(rss < limit, `RSS ${rss} kB (limit ${limit} kB)`);
});
