// fake_gateway.test.mjs - checks the fake Discord's gateway itself (no Guildhall needed).
//
// Starts its own fake on a free port and drives it with a Node WebSocket
// client (test/lib/gateway.mjs): hello/identify/ready/guild_create, heartbeat
// ACKs (and withheld ones), zlib-stream on one inflate context, every close
// code, resume (replay then RESUMED, on /gateway-resume), invalid sessions,
// max_concurrency, session_start_limit, the MESSAGE_CREATE stream and its
// rule-breaking share, dispatch routing by guild, the actions.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, before, beforeEach, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { demoGuild, makeGuild, shardFor, testGuildA, testGuildB } from '../lib/fixtures.mjs';
import { FakeDiscord } from '../lib/fake.mjs';
import { GatewayClient, GatewayControl } from '../lib/gateway.mjs';
import { waitFor } from '../lib/wait.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.join(HERE, '..', 'fakes', 'discord', 'server.mjs');
const TOKEN = 'gateway.selftest.token';
const APP_ID = '1234567890123456789';
const INTENTS = 1 | 2 | 512 | 32768; // GUILDS | GUILD_MEMBERS | GUILD_MESSAGES | MESSAGE_CONTENT

let proc;
let base;
let wsBase;
let gw;
let fake;
const clients = [];

before(async () => {
  proc = spawn(process.execPath, [SERVER, '--port', '0'], {
    env: { ...process.env, FAKE_APPLICATION_ID: APP_ID, FAKE_BOT_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  base = await new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`fake did not start: ${out}`)), 10000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /fake-discord listening on (127\.0\.0\.1:\d+)/.exec(out);
      if (m) { clearTimeout(t); resolve(`http://${m[1]}`); }
    });
    proc.on('exit', (code) => reject(new Error(`fake exited ${code}: ${out}`)));
  });
  wsBase = base.replace('http://', 'ws://');
  gw = new GatewayControl(base);
  fake = new FakeDiscord(base);
});

after(async () => {
  for (const c of clients) c.ws?.terminate();
  if (proc && proc.exitCode === null) {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  }
});

beforeEach(async () => {
  for (const c of clients.splice(0)) c.ws?.terminate();
  await gw.reset();
});

async function connect({ compress = false, query, pathName = '/gateway' } = {}) {
  const c = new GatewayClient(`${wsBase}${pathName}`, { compress, query });
  clients.push(c);
  await c.open();
  return c;
}

/** A connected, identified client on shard [id, num]: {c, ready}. */
async function identified({ shard = [0, 1], compress = false, intents = INTENTS } = {}) {
  const c = await connect({ compress });
  const ready = await c.identify({ token: TOKEN, intents, shard });
  return { c, ready };
}

async function rest(method, p) {
  const res = await fetch(`${base}/api/v10${p}`, { method, headers: { Authorization: `Bot ${TOKEN}`, 'User-Agent': 'DiscordBot (https://example.invalid, 1.0)' } });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

// The peer's AutoMod (shared/peers/discordjs/bot.mjs), without the per-user rate rule.
const INVITE = /(discord\.(gg|io|me|li)|discord(app)?\.com\/invite)\/[a-z0-9-]+/i;
const URL_RE = /https?:\/\/([^/\s]+)/gi;
const WORDS = /\b(scam|free nitro|idiot)\b/i;
function peerRule(d) {
  const c = d.content;
  const letters = c.replace(/[^a-z]/gi, '');
  if (letters.length >= 10 && letters.replace(/[^A-Z]/g, '').length / letters.length > 0.7) return 'caps';
  if (INVITE.test(c)) return 'invite';
  for (const m of c.matchAll(URL_RE)) if (m[1].toLowerCase() === 'bad.example') return 'url';
  if (WORDS.test(c)) return 'words';
  if (d.mention_everyone || d.mentions.length > 5) return 'mentions';
  return null;
}

describe('REST side', () => {
  test('GET /gateway/bot: url, shards, session_start_limit; GET /gateway: url', async () => {
    await gw.config({ shards: 3, max_concurrency: 2, remaining: 17, reset_after: 60000 });
    const r = await rest('GET', '/gateway/bot');
    assert.equal(r.status, 200);
    assert.equal(r.json.url, `${wsBase}/gateway`);
    assert.equal(r.json.shards, 3);
    assert.equal(r.json.session_start_limit.total, 1000);
    assert.equal(r.json.session_start_limit.remaining, 17);
    assert.equal(r.json.session_start_limit.max_concurrency, 2);
    assert.ok(r.json.session_start_limit.reset_after > 50000 && r.json.session_start_limit.reset_after <= 60000);
    const anon = await fetch(`${base}/api/v10/gateway`);
    assert.deepEqual(await anon.json(), { url: `${wsBase}/gateway` });
    const noAuth = await fetch(`${base}/api/v10/gateway/bot`);
    assert.equal(noAuth.status, 401);
  });

  test('unknown upgrade path: 404', async () => {
    const c = new GatewayClient(`${wsBase}/elsewhere`);
    await assert.rejects(c.open(), /404/);
  });
});

describe('connect, identify, ready', () => {
  test('HELLO, IDENTIFY -> READY then one GUILD_CREATE per guild, seqs 1..n', async () => {
    await gw.config({ heartbeat_interval: 12345 });
    const c = await connect();
    const hello = await c.op(10);
    assert.equal(hello.d.heartbeat_interval, 12345);
    assert.equal(hello.s, null);
    c.send(2, { token: TOKEN, intents: INTENTS, properties: { os: 'linux', browser: 't', device: 't' }, shard: [0, 1] });
    const ready = await c.event('READY');
    assert.equal(ready.s, 1);
    assert.equal(ready.d.v, 10);
    assert.equal(ready.d.user.id, APP_ID);
    assert.equal(ready.d.user.bot, true);
    assert.match(ready.d.session_id, /^[0-9a-f]{32}$/);
    assert.equal(ready.d.resume_gateway_url, `${wsBase}/gateway-resume`);
    assert.deepEqual(ready.d.shard, [0, 1]);
    assert.equal(ready.d.application.id, APP_ID);
    assert.equal(typeof ready.d.application.flags, 'number');
    const ids = [demoGuild.guild.id, testGuildA.guild.id, testGuildB.guild.id];
    assert.deepEqual(ready.d.guilds.map((g) => g.id).sort(), [...ids].sort());
    assert.ok(ready.d.guilds.every((g) => g.unavailable === true));
    const creates = [];
    for (let k = 0; k < 3; k++) creates.push(await c.event('GUILD_CREATE'));
    assert.deepEqual(creates.map((m) => m.s), [2, 3, 4]);
    const demo = creates.find((m) => m.d.id === demoGuild.guild.id).d;
    assert.equal(demo.name, 'Guildhall Demo');
    assert.equal(demo.owner_id, demoGuild.guild.owner_id);
    assert.equal(demo.unavailable, false);
    assert.equal(demo.large, false);
    assert.equal(demo.member_count, demoGuild.members.length);
    assert.ok(demo.members.some((m) => m.user.id === APP_ID), 'the bot is among the members');
    assert.match(demo.joined_at, /^\d{4}-\d\d-\d\dT/);
    const botRole = demo.roles.find((r) => r.id === demoGuild.roles.bot.id);
    assert.equal(botRole.position, 4);
    assert.equal(botRole.permissions, demoGuild.roles.bot.permissions);
    assert.deepEqual(demo.roles.map((r) => r.position), [...demo.roles.map((r) => r.position)].sort((a, b) => a - b));
    assert.ok(demo.channels.some((ch) => ch.id === demoGuild.channels.general.id && ch.type === 0));
    assert.ok(demo.channels.every((ch) => ch.guild_id === undefined));
    assert.equal(c.binaryFrames, 0, 'no compression asked: text frames');
    const s = await gw.sessions();
    assert.equal(s.sessions.length, 1);
    assert.equal(s.sessions[0].id, ready.d.session_id);
    assert.equal(s.sessions[0].seq, 4);
    assert.equal(s.sessions[0].path, '/gateway');
    assert.equal(s.sessions[0].connected, true);
    assert.equal(s.sessions[0].intents, INTENTS);
    assert.equal(s.sessions[0].properties.browser, 't');
    assert.equal(s.identifies.at(-1).outcome, 'ready');
  });

  test('GUILD_CREATE only for the guilds of the shard; a large guild sends only the bot member', async () => {
    await gw.config({ shards: 2, max_concurrency: 2 });
    const big = makeGuild({ name: 'Big', botUserId: APP_ID });
    for (let k = 0; k < 60; k++) {
      big.members.push({ ...big.members[3], user: { ...big.members[3].user, id: String(800000000000000000n + BigInt(k)), username: `m${k}` } });
    }
    await fake.addGuild(big);
    const bigShard = shardFor(big.guild.id, 2);
    const { c, ready } = await identified({ shard: [bigShard, 2] });
    const all = [demoGuild, testGuildA, testGuildB, big].map((g) => g.guild.id);
    const mine = all.filter((id) => shardFor(id, 2) === bigShard).sort();
    assert.deepEqual(ready.d.guilds.map((g) => g.id).sort(), mine);
    const gc = await c.next((m) => m.t === 'GUILD_CREATE' && m.d.id === big.guild.id);
    assert.equal(gc.d.large, true);
    assert.equal(gc.d.member_count, big.members.length);
    assert.deepEqual(gc.d.members.map((m) => m.user.id), [APP_ID]);
  });
});

describe('heartbeats', () => {
  test('op 1 -> op 11; withheld ACKs (config and per-shard action); server-requested heartbeat', async () => {
    const { c } = await identified();
    c.send(1, 4);
    await c.op(11);
    await gw.config({ withhold_acks: true });
    const since = await gw.logSeq();
    c.send(1, 4);
    await waitFor(async () => (await gw.log(since)).some((e) => e.dir === 'withheld'), { message: 'withheld ACK logged' });
    await gw.config({ withhold_acks: false });
    await gw.action(0, 'withhold_acks', { on: true });
    c.send(1, 4);
    await waitFor(async () => (await gw.log(since)).filter((e) => e.dir === 'withheld').length === 2, { message: 'second withheld ACK' });
    await gw.action(0, 'withhold_acks', { on: false });
    c.send(1, 4);
    await c.op(11);
    // the withheld ones never came: exactly two ACKs in all (TCP keeps order)
    assert.equal(c.messages.filter((m) => m.op === 11).length, 2);
    await gw.action(0, 'heartbeat_request');
    const req = await c.op(1);
    assert.equal(req.d, null);
    const s = (await gw.sessions()).sessions[0];
    assert.ok(s.last_heartbeat > 0);
  });

  test('heartbeats before IDENTIFY are answered', async () => {
    const c = await connect();
    await c.op(10);
    c.send(1, null);
    await c.op(11);
  });
});

describe('zlib-stream', () => {
  test('binary frames ending 00 00 ff ff on one deflate stream; decoded with one inflate context', async () => {
    const { c, ready } = await identified({ compress: true });
    assert.equal(ready.d.v, 10);
    for (let k = 0; k < 20; k++) await gw.dispatch('TYPING_START', { channel_id: demoGuild.channels.general.id, guild_id: demoGuild.guild.id, user_id: '1', timestamp: k });
    const last = await c.next((m) => m.t === 'TYPING_START' && m.d.timestamp === 19);
    assert.equal(last.s, ready.s + ready.d.guilds.length + 20);
    assert.equal(c.textFrames, 0);
    assert.ok(c.binaryFrames >= 25);
    assert.ok(c.frameTails.every((t) => t === '0000ffff'), 'every frame ends with the sync flush suffix');
    // one shared context: the first frame carries the zlib header, a later one alone does not inflate
    assert.equal(c.rawFrames[0][0], 0x78);
    assert.throws(() => zlib.inflateSync(c.rawFrames[5]));
    const together = zlib.inflateSync(Buffer.concat(c.rawFrames.slice(0, 3)), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString();
    assert.ok(together.startsWith('{"op":10'));
    assert.deepEqual(c.errors, []);
    const s = (await gw.sessions()).sessions[0];
    assert.equal(s.compress, true);
  });

  test('require_compress closes plain connections (4000)', async () => {
    await gw.config({ require_compress: true });
    const c = await connect();
    const close = await c.waitClose();
    assert.equal(close.code, 4000);
    const z = await connect({ compress: true });
    await z.op(10);
  });
});

describe('close codes', () => {
  const big = 'x'.repeat(5000);
  const cases = [
    { name: 'v=9 -> 4012', query: 'v=9&encoding=json', code: 4012 },
    { name: 'no v -> 4012', query: 'encoding=json', code: 4012 },
    { name: 'encoding=etf -> 4002', query: 'v=10&encoding=etf', code: 4002 },
    { name: 'compress=zstd-stream -> 4002', query: 'v=10&encoding=json&compress=zstd-stream', code: 4002 },
    { name: 'bad token -> 4004', send: [{ op: 2, d: { token: 'nope', intents: 1, properties: {} } }], code: 4004 },
    { name: 'unknown intent bit -> 4013', send: [{ op: 2, d: { token: TOKEN, intents: 1 << 30, properties: {} } }], code: 4013 },
    { name: 'intents not an integer -> 4013', send: [{ op: 2, d: { token: TOKEN, intents: 'all', properties: {} } }], code: 4013 },
    { name: 'privileged intent not allowed -> 4014', cfg: { allowed_intents: ['members'] }, send: [{ op: 2, d: { token: TOKEN, intents: 1 | 32768, properties: {} } }], code: 4014 },
    { name: 'shard id >= num -> 4010', send: [{ op: 2, d: { token: TOKEN, intents: 1, properties: {}, shard: [1, 1] } }], code: 4010 },
    { name: 'shard count not the configured one -> 4010', send: [{ op: 2, d: { token: TOKEN, intents: 1, properties: {}, shard: [0, 2] } }], code: 4010 },
    { name: 'no shard when sharding is configured -> 4011', cfg: { shards: 2 }, send: [{ op: 2, d: { token: TOKEN, intents: 1, properties: {} } }], code: 4011 },
    { name: 'IDENTIFY twice -> 4005', send: [{ op: 2, d: { token: TOKEN, intents: 1, properties: {} } }, { op: 2, d: { token: TOKEN, intents: 1, properties: {} } }], code: 4005 },
    { name: 'op 3 before IDENTIFY -> 4003', send: [{ op: 3, d: { status: 'online', since: null, activities: [], afk: false } }], code: 4003 },
    { name: 'payload > 4096 bytes -> 4002', send: [{ op: 1, d: big }], code: 4002 },
    { name: 'bad JSON -> 4002', raw: ['{"op":1,'], code: 4002 },
    { name: 'unknown op -> 4001', send: [{ op: 99, d: null }], code: 4001 },
    { name: 'server-only op 11 from the client -> 4001', send: [{ op: 11, d: null }], code: 4001 },
    { name: 'more than 120 payloads in 60 s -> 4008', send: Array.from({ length: 121 }, () => ({ op: 1, d: null })), code: 4008 },
  ];
  for (const k of cases) {
    test(k.name, async () => {
      if (k.cfg) await gw.config(k.cfg);
      const c = await connect({ query: k.query });
      if (k.send || k.raw) {
        await c.op(10);
        for (const m of k.send ?? []) c.sendRaw(JSON.stringify(m));
        for (const r of k.raw ?? []) c.sendRaw(r);
      }
      const close = await c.waitClose();
      assert.equal(close.code, k.code, `close ${JSON.stringify(close)}`);
      const log = await gw.log(0);
      assert.ok(log.some((e) => e.dir === 'close' && e.code === k.code && e.by === 'server'), 'the close is logged');
    });
  }

  test('session_start_limit: each IDENTIFY takes one; at 0 -> close 4008, recorded', async () => {
    await gw.config({ remaining: 2, max_concurrency: 16, shards: 3 });
    await identified({ shard: [0, 3] });
    assert.equal((await rest('GET', '/gateway/bot')).json.session_start_limit.remaining, 1);
    await identified({ shard: [1, 3] });
    assert.equal((await rest('GET', '/gateway/bot')).json.session_start_limit.remaining, 0);
    const c = await connect();
    await c.op(10);
    c.send(2, { token: TOKEN, intents: 1, properties: {}, shard: [2, 3] });
    const close = await c.waitClose();
    assert.equal(close.code, 4008);
    const s = await gw.sessions();
    assert.equal(s.start_limit_closes.length, 1);
    assert.equal(s.start_limit_closes[0].shard, 2);
    assert.equal(s.session_start_limit.remaining, 0);
  });
});

describe('max_concurrency', () => {
  test('two IDENTIFYs with the same rate_limit_key within 5 s: op 9 d:false; other keys pass', async () => {
    await gw.config({ shards: 4, max_concurrency: 2 });
    await identified({ shard: [0, 4] });
    await identified({ shard: [1, 4] }); // key 1
    const c = await connect();
    await c.op(10);
    c.send(2, { token: TOKEN, intents: 1, properties: {}, shard: [2, 4] }); // key 0 again
    const inv = await c.op(9);
    assert.equal(inv.d, false);
    const s = await gw.sessions();
    assert.equal(s.sessions.length, 2);
    assert.match(s.identifies.at(-1).outcome, /max_concurrency/);
    assert.equal(s.session_start_limit.remaining, 998, 'a refused IDENTIFY does not count');
  });
});

describe('sessions and resume', () => {
  test('disconnect, events buffered with seqs, RESUME on /gateway-resume replays them then RESUMED', async () => {
    const { c, ready } = await identified();
    const sid = ready.d.session_id;
    const first = await gw.dispatch('MESSAGE_DELETE', { id: '1', channel_id: demoGuild.channels.general.id, guild_id: demoGuild.guild.id });
    assert.equal(first.delivered, true);
    await c.next((m) => m.t === 'MESSAGE_DELETE');
    const seenSeq = c.seq;
    await gw.action(0, 'drop');
    const close = await c.waitClose();
    assert.equal(close.code, 1006);
    await waitFor(async () => !(await gw.sessions()).sessions[0].connected, { message: 'session disconnected' });
    const missed = [];
    for (let k = 0; k < 3; k++) {
      const r = await gw.dispatch('MESSAGE_DELETE', { id: String(10 + k), channel_id: demoGuild.channels.general.id, guild_id: demoGuild.guild.id });
      assert.equal(r.delivered, false);
      missed.push(r.seq);
    }
    assert.deepEqual(missed, [seenSeq + 1, seenSeq + 2, seenSeq + 3]);
    const r = await connect({ pathName: '/gateway-resume' });
    await r.op(10);
    r.send(6, { token: TOKEN, session_id: sid, seq: seenSeq });
    const resumed = await r.event('RESUMED');
    const replayed = r.messages.filter((m) => m.t === 'MESSAGE_DELETE');
    assert.deepEqual(replayed.map((m) => m.s), missed);
    assert.deepEqual(replayed.map((m) => m.d.id), ['10', '11', '12']);
    assert.equal(resumed.s, seenSeq + 4);
    const after = await gw.dispatch('MESSAGE_DELETE', { id: '20', channel_id: demoGuild.channels.general.id, guild_id: demoGuild.guild.id });
    assert.equal(after.delivered, true);
    assert.equal((await r.next((m) => m.d?.id === '20')).s, seenSeq + 5);
    const s = await gw.sessions();
    assert.equal(s.sessions[0].resumed, 1);
    assert.equal(s.sessions[0].path, '/gateway-resume');
    assert.deepEqual(s.sessions[0].paths, ['/gateway', '/gateway-resume']);
    assert.equal(s.resumes.length, 1);
    assert.equal(s.resumes[0].outcome, 'resumed');
    assert.equal(s.resumes[0].replayed, 3);
    assert.equal(s.resumes[0].path, '/gateway-resume');
  });

  test('RESUME of an unknown session: op 9 d:false', async () => {
    const c = await connect({ pathName: '/gateway-resume' });
    await c.op(10);
    c.send(6, { token: TOKEN, session_id: 'f'.repeat(32), seq: 3 });
    const inv = await c.op(9);
    assert.equal(inv.d, false);
    assert.match((await gw.sessions()).resumes[0].outcome, /unknown session/);
  });

  test('a client close with 1000 invalidates the session; 4000 keeps it', async () => {
    const a = await identified();
    await a.c.close(1000);
    await waitFor(async () => (await gw.sessions()).sessions[0].invalidated, { message: 'invalidated' });
    const c = await connect({ pathName: '/gateway-resume' });
    await c.op(10);
    c.send(6, { token: TOKEN, session_id: a.ready.d.session_id, seq: a.c.seq });
    assert.equal((await c.op(9)).d, false);

    await gw.reset();
    const b = await identified();
    await b.c.close(4000);
    await waitFor(async () => !(await gw.sessions()).sessions[0].connected, { message: 'disconnected' });
    const d = await connect({ pathName: '/gateway-resume' });
    await d.op(10);
    d.send(6, { token: TOKEN, session_id: b.ready.d.session_id, seq: b.c.seq });
    await d.event('RESUMED');
  });

  test('a session expires after session_ttl_ms', async () => {
    await gw.config({ session_ttl_ms: 200 });
    const a = await identified();
    await a.c.terminate();
    await waitFor(async () => (await gw.sessions()).sessions[0].invalidated === 'session timed out', { message: 'expired' });
    const c = await connect({ pathName: '/gateway-resume' });
    await c.op(10);
    c.send(6, { token: TOKEN, session_id: a.ready.d.session_id, seq: a.c.seq });
    assert.equal((await c.op(9)).d, false);
  });

  test('RESUME with a seq beyond the session: close 4007', async () => {
    const a = await identified();
    await a.c.terminate();
    const c = await connect({ pathName: '/gateway-resume' });
    await c.op(10);
    c.send(6, { token: TOKEN, session_id: a.ready.d.session_id, seq: a.c.seq + 100 });
    assert.equal((await c.waitClose()).code, 4007);
  });
});

describe('actions', () => {
  test('reconnect (op 7), invalid_session (d), close (code), drop', async () => {
    const { c } = await identified();
    await gw.action(0, 'reconnect', { close_after_ms: 100 });
    assert.equal((await c.op(7)).d, null);
    assert.equal((await c.waitClose()).code, 4000);

    await gw.reset();
    const b = await identified();
    await gw.action(0, 'invalid_session', { resumable: true });
    assert.equal((await b.c.op(9)).d, true);
    await gw.action(0, 'invalid_session', { resumable: false });
    assert.equal((await b.c.next((m) => m.op === 9 && m.d === false)).d, false);
    assert.ok((await gw.sessions()).sessions[0].invalidated);

    await gw.reset();
    const d = await identified();
    await gw.action(0, 'close', { code: 4009, reason: 'timed out' });
    const cl = await d.c.waitClose();
    assert.equal(cl.code, 4009);
    assert.equal(cl.reason, 'timed out');

    // once the closed connection is gone, there is nothing left to drop (the close handshake may
    // still be finishing when the client saw the close frame)
    const refused = await waitFor(async () => {
      try { await gw.action(0, 'drop'); return false; } catch (e) { return /409/.test(e.message) ? e : false; }
    }, { timeout: 5000, message: 'drop refused with 409 once no connection is left' });
    assert.match(refused.message, /409/);
  });
});

describe('dispatch, stream, replay', () => {
  test('dispatch is routed by guild_id to the shard that owns it; no guild -> shard 0', async () => {
    await gw.config({ shards: 2, max_concurrency: 2 });
    const s0 = await identified({ shard: [0, 2] });
    const s1 = await identified({ shard: [1, 2] });
    const g = [demoGuild, testGuildA, testGuildB].map((x) => x.guild.id);
    for (const gid of g) {
      const r = await gw.dispatch('GUILD_UPDATE', { id: gid, guild_id: gid, name: `n${gid}` });
      const want = shardFor(gid, 2);
      assert.equal(r.shard, want);
      assert.equal(r.delivered, true);
      const got = await (want === 0 ? s0 : s1).c.next((m) => m.t === 'GUILD_UPDATE' && m.d.id === gid);
      assert.equal(got.s, r.seq);
    }
    const dm = await gw.dispatch('MESSAGE_CREATE', { id: '5', channel_id: '6', content: 'dm', author: { id: '7' } });
    assert.equal(dm.shard, 0);
    await s0.c.next((m) => m.t === 'MESSAGE_CREATE' && m.d.id === '5');
    assert.ok(!s1.c.messages.some((m) => m.t === 'MESSAGE_CREATE'));
    assert.deepEqual(await gw.dispatch('X_EVENT', {}, { shard: 1 }).then((r) => r.shard), 1);
  });

  test('stream: count messages, real shape, 1 in bad_every breaks one peer rule, in turn', async () => {
    const { c } = await identified({ compress: true });
    const r = await gw.stream({ count: 600, rate: 0, guilds: 3, users: 100, bad_every: 10, seed: 42 });
    assert.equal(r.sent, 600);
    assert.equal(r.delivered, 600);
    assert.equal(r.bad, 60);
    assert.deepEqual(r.bad_kinds, { caps: 10, invite: 10, url: 10, words: 10, everyone: 10, mentions: 10 });
    await waitFor(() => c.messages.filter((m) => m.t === 'MESSAGE_CREATE').length === 600, { message: '600 MESSAGE_CREATE' });
    const creates = c.messages.filter((m) => m.t === 'GUILD_CREATE').map((m) => m.d.id);
    assert.ok(r.guild_ids.every((id) => creates.includes(id)), 'the synthetic guilds arrived as GUILD_CREATE');
    const msgs = c.messages.filter((m) => m.t === 'MESSAGE_CREATE');
    for (let k = 1; k < msgs.length; k++) {
      assert.equal(msgs[k].s, msgs[k - 1].s + 1);
      assert.ok(BigInt(msgs[k].d.id) > BigInt(msgs[k - 1].d.id));
    }
    const d = msgs[0].d;
    for (const k of ['id', 'channel_id', 'guild_id', 'author', 'member', 'content', 'timestamp', 'edited_timestamp', 'tts',
      'mention_everyone', 'mentions', 'mention_roles', 'attachments', 'embeds', 'pinned', 'type', 'flags', 'channel_type']) {
      assert.ok(k in d, `message has ${k}`);
    }
    assert.deepEqual(Object.keys(d.author).filter((k) => ['id', 'username', 'global_name', 'discriminator', 'avatar', 'bot'].includes(k)).sort(),
      ['avatar', 'bot', 'discriminator', 'global_name', 'id', 'username']);
    assert.equal(d.author.discriminator, '0');
    assert.equal(d.author.bot, false);
    assert.ok(Array.isArray(d.member.roles) && typeof d.member.joined_at === 'string' && d.member.deaf === false);
    assert.ok(!Number.isNaN(Date.parse(d.timestamp)));
    assert.ok(r.guild_ids.includes(d.guild_id));
    const hits = msgs.map((m) => peerRule(m.d));
    assert.equal(hits.filter(Boolean).length, 60);
    assert.ok(hits.every((h, k) => Boolean(h) === (k % 10 === 9)), 'exactly messages 9, 19, ... break a rule');
    const authors = new Set(msgs.map((m) => m.d.author.id));
    assert.equal(authors.size, 100);
    assert.equal(msgs.filter((m) => m.d.mention_everyone).length, 10);
    // the stream's messages can be deleted through REST (once)
    const bad = msgs[9].d;
    assert.equal((await rest('DELETE', `/channels/${bad.channel_id}/messages/${bad.id}`)).status, 204);
    assert.equal((await rest('DELETE', `/channels/${bad.channel_id}/messages/${bad.id}`)).status, 404);
    // same seed: same contents and authors
    const again = await gw.stream({ count: 20, guilds: 3, users: 100, bad_every: 10, seed: 42 });
    assert.deepEqual(again.guild_ids, r.guild_ids);
    await waitFor(() => c.messages.filter((m) => m.t === 'MESSAGE_CREATE').length === 620, { message: '620' });
    const second = c.messages.filter((m) => m.t === 'MESSAGE_CREATE').slice(600);
    assert.deepEqual(second.map((m) => [m.d.content, m.d.author.id, m.d.guild_id]), msgs.slice(0, 20).map((m) => [m.d.content, m.d.author.id, m.d.guild_id]));
    assert.ok(BigInt(second[0].d.id) > BigInt(msgs.at(-1).d.id));
  });

  test('stream at a set rate takes about count/rate; a disconnected shard gets its events buffered', async () => {
    const { c, ready } = await identified();
    const r = await gw.stream({ count: 300, rate: 1000, guild_ids: [demoGuild.guild.id], users: 50, bad_every: 0 });
    assert.ok(r.ms >= 250, `300 events at 1000/s took ${r.ms} ms`);
    assert.equal(r.bad, 0);
    await c.terminate();
    await waitFor(async () => !(await gw.sessions()).sessions[0].connected, { message: 'disconnected' });
    const r2 = await gw.stream({ count: 50, guild_ids: [demoGuild.guild.id] });
    assert.equal(r2.delivered, 0);
    assert.equal(r2.buffered_only, 50);
    assert.equal((await gw.sessions()).sessions[0].seq, 1 + ready.d.guilds.length + 300 + 50);
  });

  test('backpressure: a client that reads nothing is dropped after stall_ms; its events stay buffered', async () => {
    await gw.config({ stall_ms: 300 });
    const { c, ready } = await identified();
    c.ws._socket.pause();
    const r = await gw.stream({ count: 40000, guild_ids: [demoGuild.guild.id], users: 2000 });
    assert.equal(r.sent, 40000);
    const log = await gw.log(0);
    assert.ok(log.some((e) => e.dir === 'drop' && /stalled/.test(e.reason)), 'the stalled connection was dropped');
    const s = await waitFor(async () => { const v = (await gw.sessions()).sessions[0]; return !v.connected && v; }, { message: 'disconnected' });
    assert.equal(s.invalidated, null, 'still resumable');
    assert.equal(s.seq, 1 + ready.d.guilds.length + 40000);
    assert.equal(s.buffered, Math.min(50000, s.seq));
  });

  test('replay: inline events and a JSON lines file', async () => {
    const { c } = await identified();
    const events = [
      { t: 'GUILD_MEMBER_ADD', d: { guild_id: demoGuild.guild.id, user: { id: '9' }, roles: [], joined_at: '2026-01-01T00:00:00Z' } },
      { t: 'MESSAGE_REACTION_ADD', d: { guild_id: demoGuild.guild.id, user_id: '9', channel_id: '1', message_id: '2', emoji: { id: null, name: 'x' }, burst: false, type: 0 } },
    ];
    const r = await gw.replay({ events, rate: 0 });
    assert.deepEqual([r.sent, r.delivered], [2, 2]);
    await c.event('MESSAGE_REACTION_ADD');
    assert.ok(c.messages.some((m) => m.t === 'GUILD_MEMBER_ADD'));
    // a recorded stream: JSON lines in a file inside the repository
    const rel = `.run/fake-gateway-replay-${process.pid}.jsonl`;
    const full = path.join(HERE, '..', '..', rel);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    fs.writeFileSync(full, `${Array.from({ length: 5 }, (_, k) => JSON.stringify({ t: 'MESSAGE_DELETE', d: { id: `77${k}`, channel_id: '1', guild_id: demoGuild.guild.id } })).join('\n')}\n`);
    try {
      const f = await gw.replay({ file: rel, rate: 0 });
      assert.deepEqual([f.sent, f.delivered], [5, 5]);
      await c.next((m) => m.t === 'MESSAGE_DELETE' && m.d.id === '774');
      assert.deepEqual(c.messages.filter((m) => m.t === 'MESSAGE_DELETE').map((m) => m.d.id), ['770', '771', '772', '773', '774']);
    } finally {
      fs.rmSync(full, { force: true });
    }
    await assert.rejects(gw.replay({ file: '../../etc/passwd' }), /400/);
    await assert.rejects(gw.replay({ events: [{ d: {} }] }), /400/);
  });
});

describe('filter_intents', () => {
  test('off by default; on: events of intents the session lacks are not sent, content needs MESSAGE_CONTENT', async () => {
    const { c } = await identified({ intents: 1 | 512 }); // GUILDS | GUILD_MESSAGES
    const gid = demoGuild.guild.id;
    const msg = (id, extra = {}) => ({ id, channel_id: demoGuild.channels.general.id, guild_id: gid, author: { id: '9' }, content: 'hello', embeds: [{ title: 'x' }], attachments: [], mentions: [], ...extra });
    assert.equal((await gw.dispatch('MESSAGE_REACTION_ADD', { guild_id: gid, user_id: '9', channel_id: '1', message_id: '2', emoji: { name: 'x' } })).delivered, true);
    await gw.config({ filter_intents: true });
    const r = await gw.dispatch('MESSAGE_REACTION_ADD', { guild_id: gid, user_id: '9', channel_id: '1', message_id: '3', emoji: { name: 'x' } });
    assert.deepEqual([r.delivered, r.seq, r.filtered], [false, null, 'intents']);
    await gw.dispatch('MESSAGE_CREATE', msg('100'));
    await gw.dispatch('MESSAGE_CREATE', msg('101', { mentions: [{ id: APP_ID }] }));
    const blank = await c.next((m) => m.t === 'MESSAGE_CREATE' && m.d.id === '100');
    assert.equal(blank.d.content, '');
    assert.deepEqual(blank.d.embeds, []);
    const kept = await c.next((m) => m.t === 'MESSAGE_CREATE' && m.d.id === '101');
    assert.equal(kept.d.content, 'hello', 'a message mentioning the bot keeps its content');
    assert.equal(c.messages.filter((m) => m.t === 'MESSAGE_REACTION_ADD').length, 1);
    const rp = await gw.replay({ events: [{ t: 'GUILD_MEMBER_ADD', d: { guild_id: gid, user: { id: '9' } } }, { t: 'GUILD_ROLE_CREATE', d: { guild_id: gid, role: { id: '5' } } }] });
    assert.equal(rp.delivered, 1);
    await c.event('GUILD_ROLE_CREATE');
    assert.ok(!c.messages.some((m) => m.t === 'GUILD_MEMBER_ADD'));
  });
});

describe('control API', () => {
  test('bad config is refused; log records ops in and out', async () => {
    await assert.rejects(gw.config({ shards: 0 }), /400/);
    await assert.rejects(gw.config({ nope: 1 }), /400/);
    await assert.rejects(gw.config({ allowed_intents: ['everything'] }), /400/);
    const { c } = await identified();
    c.send(1, 4);
    await c.op(11);
    const log = await gw.log(0);
    assert.ok(log.some((e) => e.dir === 'in' && e.op === 2 && e.d.token === TOKEN));
    assert.ok(log.some((e) => e.dir === 'out' && e.op === 0 && e.t === 'READY' && e.s === 1));
    assert.ok(log.some((e) => e.dir === 'in' && e.op === 1));
    assert.ok(log.some((e) => e.dir === 'out' && e.op === 11));
    const since = log.at(-1).n;
    assert.deepEqual(await gw.log(since), []);
  });
});
