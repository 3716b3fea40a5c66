// fake_discord.test.mjs - checks the fake Discord itself (no Guildhall needed).
//
// Starts its own fake on a free port, with a tiny in-test interactions
// endpoint that verifies signatures the way Discord's docs say, and checks:
// the signer vector, auth, User-Agent, 50035 validation bodies, 50006, rate
// limits and 429s, injected failures, interaction tokens and follow-ups,
// moderation routes, commands, OAuth2 and reset.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chatInput, demoGuild, interactionToken, testGuildA, testGuildB, users, PERMS } from '../lib/fixtures.mjs';
import { escapeRe, FakeDiscord, webhookPath } from '../lib/fake.mjs';
import { publicKeyHex, selfTest, sign, TEST_SEED_HEX, TEST_VECTOR, verify } from '../lib/signer.mjs';
import { snowflake } from '../lib/snowflake.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.join(HERE, '..', 'fakes', 'discord', 'server.mjs');
const BOT_TOKEN = 'selftest.bot.token';
const APP_ID = '1234567890123456789';
const GENERAL = demoGuild.channels.general.id;
const MODLOG = demoGuild.channels.modLog.id;
const GID = demoGuild.guild.id;
// channels spread over guilds so validation tests do not share a rate-limit bucket
const CH_A1 = testGuildA.channels.general.id;
const CH_A2 = testGuildA.channels.modLog.id;
const CH_A3 = testGuildA.channels.welcome.id;
const CH_B1 = testGuildB.channels.general.id;

let proc;
let base;
let fake;
let bot; // the in-test interactions endpoint
let botMode = 'inline-deferred';
const botSeen = [];

function startBot() {
  const pub = publicKeyHex(TEST_SEED_HEX);
  return new Promise((resolve) => {
    bot = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', async () => {
        const raw = Buffer.concat(chunks);
        const sig = req.headers['x-signature-ed25519'];
        const ts = req.headers['x-signature-timestamp'];
        const ok = Boolean(sig && ts) && verify(raw, ts, sig, pub);
        botSeen.push({ ok, headers: req.headers, raw: raw.toString('utf8') });
        if (!ok) { res.writeHead(401, { 'Content-Type': 'text/plain' }); res.end('invalid request signature'); return; }
        const ix = JSON.parse(raw.toString('utf8'));
        if (ix.type === 1) { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end('{"type":1}'); return; }
        if (botMode === 'callback') {
          res.writeHead(202); res.end();
          const r = await fetch(`${base}/api/v10/interactions/${ix.id}/${ix.token}/callback`, {
            method: 'POST', headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ type: 4, data: { content: 'via callback', allowed_mentions: { parse: [] } } }),
          });
          botSeen.at(-1).callbackStatus = r.status;
          return;
        }
        const body = botMode === 'inline-message'
          ? { type: 4, data: { content: 'pong', flags: 64, allowed_mentions: { parse: [] } } }
          : botMode === 'invalid' ? { type: 4, data: { content: 42 } } : { type: 5 };
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(body));
      });
    });
    bot.listen(0, '127.0.0.1', () => resolve(bot.address().port));
  });
}

async function api(method, p, { body, token = BOT_TOKEN, ua = 'DiscordBot (https://example.invalid, 1.0)', headers = {}, raw } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = token.startsWith('Bearer ') ? token : `Bot ${token}`;
  if (ua) h['User-Agent'] = ua;
  if (body !== undefined || raw !== undefined) h['Content-Type'] ??= 'application/json';
  const res = await fetch(`${base}/api/v10${p}`, { method, headers: h, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* text */ }
  return { status: res.status, headers: res.headers, json, text };
}

before(async () => {
  const botPort = await startBot();
  proc = spawn(process.execPath, [SERVER, '--port', '0'], {
    env: {
      ...process.env, DISCORD_PUBLIC_KEY_SEED: TEST_SEED_HEX, GH_INTERACTIONS_URL: `http://127.0.0.1:${botPort}/interactions`,
      FAKE_APPLICATION_ID: APP_ID, FAKE_BOT_TOKEN: BOT_TOKEN, FAKE_CLIENT_SECRET: 'shh',
    },
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
  fake = new FakeDiscord(base);
});

after(async () => {
  if (proc && proc.exitCode === null) {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  }
  await new Promise((r) => bot?.close(r) ?? r());
});

describe('signer', () => {
  test('reproduces the reference vector', () => {
    assert.equal(selfTest(), true);
    assert.equal(publicKeyHex(TEST_VECTOR.seed), TEST_VECTOR.publicKey);
    assert.equal(sign(TEST_VECTOR.body, TEST_VECTOR.timestamp, TEST_VECTOR.seed), TEST_VECTOR.signature);
    assert.equal(verify(TEST_VECTOR.body, '1700000001', TEST_VECTOR.signature, TEST_VECTOR.publicKey), false);
  });

  test('the fake signs with the same key', async () => {
    const r = await fake.sign(TEST_VECTOR.body, TEST_VECTOR.timestamp);
    assert.deepEqual(r, { signature: TEST_VECTOR.signature, timestamp: TEST_VECTOR.timestamp });
  });
});

describe('auth and headers', () => {
  test('401 without the bot token, and with a wrong one', async () => {
    for (const token of [null, 'not-the-token']) {
      const r = await api('GET', '/users/@me', { token });
      assert.equal(r.status, 401);
      assert.deepEqual(r.json, { message: '401: Unauthorized', code: 0 });
    }
  });

  test('400 without a DiscordBot User-Agent', async () => {
    const r = await api('GET', '/users/@me', { ua: 'curl/8' });
    assert.equal(r.status, 400);
    assert.match(r.json.message, /User-Agent/);
  });

  test('rate-limit headers on a bot response', async () => {
    const r = await api('GET', '/users/@me');
    assert.equal(r.status, 200);
    assert.equal(r.json.id, APP_ID);
    for (const h of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'x-ratelimit-reset-after', 'x-ratelimit-bucket']) {
      assert.ok(r.headers.get(h), `missing ${h}`);
    }
  });

  test('unknown route -> 404 and the request is still logged', async () => {
    const since = await fake.seq();
    const r = await api('GET', '/nowhere/here');
    assert.equal(r.status, 404);
    const log = await fake.requests({ since, path: '/api/v10/nowhere' });
    assert.equal(log.length, 1);
    assert.equal(log[0].status, 404);
  });
});

describe('validation', () => {
  test('content as a number -> 400 50035 with the field path', async () => {
    const since = await fake.seq();
    const r = await api('POST', `/channels/${CH_A1}/messages`, { body: { content: 123 } });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 50035);
    assert.equal(r.json.message, 'Invalid Form Body');
    assert.equal(r.json.errors.content._errors[0].code, 'BASE_TYPE_STRING');
    const [rec] = await fake.requests({ since, method: 'POST' });
    assert.equal(rec.valid, false);
    assert.equal(rec.errors[0].path, 'content');
    assert.deepEqual(rec.body, { content: 123 });
  });

  test('nested errors follow the body shape', async () => {
    const r = await api('POST', `/channels/${CH_A2}/messages`, {
      body: { content: 'x', components: [{ type: 1, components: [{ type: 2, style: 1, label: 'a', custom_id: 'c'.repeat(101) }] }] },
    });
    assert.equal(r.status, 400);
    assert.equal(r.json.errors.components['0'].components['0'].custom_id._errors[0].code, 'BASE_TYPE_MAX_LENGTH');
  });

  test('empty message -> 50006; content over 2000 -> 50035', async () => {
    const empty = await api('POST', `/channels/${CH_A3}/messages`, { body: {} });
    assert.equal(empty.status, 400);
    assert.equal(empty.json.code, 50006);
    const long = await api('POST', `/channels/${CH_A3}/messages`, { body: { content: 'x'.repeat(2001) } });
    assert.equal(long.status, 400);
    assert.equal(long.json.errors.content._errors[0].code, 'BASE_TYPE_MAX_LENGTH');
  });

  test('malformed JSON -> 50109; wrong content type -> 50035', async () => {
    const bad = await api('POST', `/channels/${CH_B1}/messages`, { raw: '{"content":' });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, 50109);
    const ct = await api('POST', `/channels/${CH_B1}/messages`, { raw: 'content=hi', headers: { 'Content-Type': 'text/plain' } });
    assert.equal(ct.status, 400);
    assert.equal(ct.json.code, 50035);
  });

  test('allowed_mentions is recorded, and mentions honour it', async () => {
    const since = await fake.seq();
    const a = await api('POST', `/channels/${GENERAL}/messages`, { body: { content: `hi <@${users.member.id}>`, allowed_mentions: { parse: [] } } });
    const b = await api('POST', `/channels/${GENERAL}/messages`, { body: { content: `hi <@${users.member.id}>` } });
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.deepEqual(a.json.mentions, []);
    assert.equal(b.json.mentions[0].id, users.member.id);
    const recs = await fake.requests({ since, method: 'POST' });
    assert.deepEqual(recs.map((r) => r.has_allowed_mentions), [true, false]);
  });

  test('string default_member_permissions accepted (spec discrepancy patched), ids kept', async () => {
    const cmds = [{ name: 'ping', description: 'Pong', default_member_permissions: PERMS.MODERATE_MEMBERS, contexts: [0] }];
    const r1 = await api('PUT', `/applications/${APP_ID}/commands`, { body: cmds });
    assert.equal(r1.status, 200);
    assert.match(r1.json[0].id, /^[0-9]+$/);
    assert.equal(r1.json[0].default_member_permissions, PERMS.MODERATE_MEMBERS);
    const r2 = await api('PUT', `/applications/${APP_ID}/guilds/${GID}/commands`, { body: cmds });
    assert.equal(r2.json[0].guild_id, GID);
    const r3 = await api('PUT', `/applications/${APP_ID}/commands`, { body: cmds });
    assert.equal(r3.json[0].id, r1.json[0].id);
    const bad = await api('PUT', `/applications/${APP_ID}/commands`, { body: [{ name: 'x'.repeat(33), description: 'd' }] });
    assert.equal(bad.status, 400);
    assert.ok(bad.json.errors['0'].name);
  });
});

describe('rate limits', () => {
  test('the 6th message in 5 s to one channel gets a 429; another channel does not', async () => {
    const ch = demoGuild.channels.welcome.id;
    const remaining = [];
    for (let i = 0; i < 5; i++) {
      const r = await api('POST', `/channels/${ch}/messages`, { body: { content: `m${i}`, allowed_mentions: { parse: [] } } });
      assert.equal(r.status, 200);
      remaining.push(Number(r.headers.get('x-ratelimit-remaining')));
    }
    assert.deepEqual(remaining, [4, 3, 2, 1, 0]);
    const r = await api('POST', `/channels/${ch}/messages`, { body: { content: 'one too many' } });
    assert.equal(r.status, 429);
    assert.equal(r.json.global, false);
    assert.ok(r.json.retry_after > 0 && r.json.retry_after <= 5);
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    assert.equal(r.headers.get('x-ratelimit-scope'), 'user');
    const other = await api('POST', `/channels/${GENERAL}/messages`, { body: { content: 'x' } });
    assert.equal(other.status, 200);
  });

  test('injected 429 with retry_after, then the call passes', async () => {
    await fake.fail({ method: 'GET', path_re: '/guilds/[0-9]+/roles$', status: 429, retry_after: 0.5, count: 1 });
    const r1 = await api('GET', `/guilds/${GID}/roles`);
    assert.equal(r1.status, 429);
    assert.equal(r1.json.retry_after, 0.5);
    assert.equal(r1.headers.get('x-ratelimit-scope'), 'user');
    const r2 = await api('GET', `/guilds/${GID}/roles`);
    assert.equal(r2.status, 200);
    assert.deepEqual(r2.json.map((r) => r.name), ['@everyone', 'Member', 'Muted', 'Moderator', 'Guildhall', 'Admin']);
  });

  test('injected 503 counts down', async () => {
    await fake.fail({ path_re: '/users/@me$', status: 503, count: 2 });
    assert.equal((await api('GET', '/users/@me')).status, 503);
    assert.equal((await api('GET', '/users/@me')).status, 503);
    assert.equal((await api('GET', '/users/@me')).status, 200);
  });
});

describe('interactions', () => {
  test('deferred answer, then PATCH @original through the issued token', async () => {
    botMode = 'inline-deferred';
    const r = await fake.interaction(chatInput('ping', { user: 'member', options: { deferred: true } }));
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { type: 5 });
    assert.equal(r.response_valid, true);
    assert.equal(r.state, 'acked');
    const p = `${webhookPath(APP_ID, r.interaction.token)}/messages/@original`;
    const before = await fetch(`${base}${p}`);
    assert.equal(before.status, 200);
    assert.equal(((await before.json()).flags & 128), 128, 'loading flag while deferred');
    const patch = await fetch(`${base}${p}`, {
      method: 'PATCH', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ content: 'Pong! 12 ms', allowed_mentions: { parse: [] } }),
    });
    assert.equal(patch.status, 200);
    const edited = await patch.json();
    assert.equal(edited.content, 'Pong! 12 ms');
    assert.equal(edited.flags & 128, 0);
    const [rec] = await fake.requests({ method: 'PATCH', path_re: `${escapeRe(r.interaction.token)}/messages/@original$` });
    assert.equal(rec.valid, true);
    assert.equal(rec.has_allowed_mentions, true);
  });

  test('unknown token -> 404 10015; expired token -> 401 50027', async () => {
    const unknown = await fetch(`${base}${webhookPath(APP_ID, interactionToken('1'))}/messages/@original`, {
      method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: '{"content":"x"}',
    });
    assert.equal(unknown.status, 404);
    assert.deepEqual(await unknown.json(), { code: 10015, message: 'Unknown Webhook' });
    botMode = 'inline-deferred';
    const r = await fake.interaction(chatInput('ping', {}), { token_ttl_ms: 0 });
    const expired = await fetch(`${base}${webhookPath(APP_ID, r.interaction.token)}/messages/@original`, {
      method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: '{"content":"late"}',
    });
    assert.equal(expired.status, 401);
    assert.equal((await expired.json()).code, 50027);
  });

  test('follow-up POST creates a message; an invalid PATCH body is 50035', async () => {
    botMode = 'inline-message';
    const r = await fake.interaction(chatInput('ping', { guild: 'demo' }));
    assert.equal(r.body.data.content, 'pong');
    assert.equal(r.has_allowed_mentions, true);
    const wp = webhookPath(APP_ID, r.interaction.token);
    const f = await fetch(`${base}${wp}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'more', allowed_mentions: { parse: [] } }) });
    assert.equal(f.status, 200);
    const msg = await f.json();
    const g = await fetch(`${base}${wp}/messages/${msg.id}`);
    assert.equal((await g.json()).content, 'more');
    const bad = await fetch(`${base}${wp}/messages/@original`, { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: ['no'] }) });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).code, 50035);
    const del = await fetch(`${base}${wp}/messages/${msg.id}`, { method: 'DELETE' });
    assert.equal(del.status, 204);
  });

  test('the interaction response itself is validated', async () => {
    botMode = 'invalid';
    const r = await fake.interaction(chatInput('ping', {}));
    assert.equal(r.status, 200);
    assert.equal(r.response_valid, false);
    assert.equal(r.response_errors[0].path, 'data.content');
    assert.equal(r.state, 'failed');
  });

  test('202 + callback endpoint acknowledges; a second callback is 40060', async () => {
    botMode = 'callback';
    const r = await fake.interaction(chatInput('ping', {}));
    assert.equal(r.status, 202);
    const st = await fake.state();
    const ix = await (async () => {
      for (let i = 0; i < 50; i++) {
        const s = i ? await fake.state() : st;
        const found = s.interactions.find((x) => x.token === r.interaction.token);
        if (found?.state === 'acked') return found;
        await new Promise((res) => setTimeout(res, 20));
      }
      return null;
    })();
    assert.ok(ix, 'callback acknowledged');
    assert.equal(ix.original.content, 'via callback');
    const again = await fetch(`${base}/api/v10/interactions/${r.interaction.id}/${r.interaction.token}/callback`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"type":4,"data":{"content":"x"}}',
    });
    assert.equal(again.status, 400);
    assert.equal((await again.json()).code, 40060);
  });

  test('tamper, wrong key and missing headers are refused by a verifying endpoint', async () => {
    botMode = 'inline-message';
    for (const opt of [{ tamper: true }, { sign_with_wrong_key: true }, { omit_headers: true }]) {
      const r = await fake.interaction(chatInput('ping', {}), opt);
      assert.equal(r.status, 401, JSON.stringify(opt));
      assert.equal(r.state, 'failed');
    }
    const ok = await fake.interaction(chatInput('ping', {}), { timestamp: 1700000000 });
    assert.equal(ok.status, 200, 'a stale timestamp still verifies cryptographically');
    assert.equal(botSeen.at(-1).headers['x-signature-timestamp'], '1700000000');
  });
});

describe('moderation routes', () => {
  test('timeout a member; not an admin; not beyond 28 days', async () => {
    const until = new Date(Date.now() + 3600 * 1000).toISOString();
    const ok = await api('PATCH', `/guilds/${GID}/members/${users.member.id}`, { body: { communication_disabled_until: until }, headers: { 'X-Audit-Log-Reason': encodeURIComponent('spam ✓') } });
    assert.equal(ok.status, 200);
    assert.equal(Date.parse(ok.json.communication_disabled_until), Date.parse(until));
    const admin = await api('PATCH', `/guilds/${GID}/members/${users.admin.id}`, { body: { communication_disabled_until: until } });
    assert.equal(admin.status, 403);
    assert.equal(admin.json.code, 50013);
    const far = await api('PATCH', `/guilds/${GID}/members/${users.member.id}`, { body: { communication_disabled_until: new Date(Date.now() + 29 * 86400000).toISOString() } });
    assert.equal(far.status, 400);
    assert.equal(far.json.code, 50035);
    const st = await fake.state();
    assert.ok(st.audit_log.some((e) => e.target_id === users.member.id && e.reason === 'spam ✓'));
  });

  test('roles add/remove, hierarchy enforced', async () => {
    const muted = demoGuild.roles.muted.id;
    assert.equal((await api('PUT', `/guilds/${GID}/members/${users.member.id}/roles/${muted}`)).status, 204);
    let m = await api('GET', `/guilds/${GID}/members/${users.member.id}`);
    assert.ok(m.json.roles.includes(muted));
    assert.equal((await api('DELETE', `/guilds/${GID}/members/${users.member.id}/roles/${muted}`)).status, 204);
    m = await api('GET', `/guilds/${GID}/members/${users.member.id}`);
    assert.ok(!m.json.roles.includes(muted));
    const above = await api('PUT', `/guilds/${GID}/members/${users.member.id}/roles/${demoGuild.roles.admin.id}`);
    assert.equal(above.status, 403);
    const search = await api('GET', `/guilds/${GID}/members/search?query=ali&limit=5`);
    assert.deepEqual(search.json.map((x) => x.user.id), [users.moderator.id]);
  });

  test('ban, get, list, unban without a body; kick', async () => {
    const g = demoGuild.guild.id;
    assert.equal((await api('PUT', `/guilds/${g}/bans/${users.muted.id}`, { body: { delete_message_seconds: 3600 } })).status, 204);
    assert.equal((await api('GET', `/guilds/${g}/bans/${users.muted.id}`)).json.user.id, users.muted.id);
    assert.equal((await api('GET', `/guilds/${g}/bans`)).json.length, 1);
    assert.equal((await api('GET', `/guilds/${g}/members/${users.muted.id}`)).status, 404);
    assert.equal((await api('DELETE', `/guilds/${g}/bans/${users.muted.id}`)).status, 204);
    assert.equal((await api('DELETE', `/guilds/${g}/bans/${users.muted.id}`)).json.code, 10026);
    const tooBig = await api('PUT', `/guilds/${g}/bans/${users.member.id}`, { body: { delete_message_seconds: 700000 } });
    assert.equal(tooBig.status, 400);
    assert.equal((await api('DELETE', `/guilds/${g}/members/${users.owner.id}`)).status, 403);
    assert.equal((await api('DELETE', `/guilds/${g}/members/${users.member.id}`)).status, 204);
  });

  test('bulk delete: 14-day rule and duplicates', async () => {
    const ch = demoGuild.channels.modLog.id;
    const ids = [];
    for (let i = 0; i < 2; i++) ids.push((await api('POST', `/channels/${ch}/messages`, { body: { content: `b${i}` } })).json.id);
    const old = snowflake(Date.now() - 15 * 86400000);
    const r1 = await api('POST', `/channels/${ch}/messages/bulk-delete`, { body: { messages: [ids[0], old] } });
    assert.equal(r1.status, 400);
    assert.equal(r1.json.code, 50034);
    const r2 = await api('POST', `/channels/${ch}/messages/bulk-delete`, { body: { messages: [ids[0], ids[0]] } });
    assert.equal(r2.status, 400);
    assert.equal(r2.json.code, 50035);
    const r3 = await api('POST', `/channels/${ch}/messages/bulk-delete`, { body: { messages: ids } });
    assert.equal(r3.status, 204);
    assert.equal((await api('GET', `/channels/${ch}/messages/${ids[1]}`)).status, 404);
  });
});

describe('gateway, OAuth2, reset', () => {
  test('GET /gateway/bot', async () => {
    const r = await api('GET', '/gateway/bot');
    assert.equal(r.status, 200);
    assert.match(r.json.url, /^ws:\/\/127\.0\.0\.1:\d+\/gateway$/);
    assert.equal(r.json.shards, 1);
    assert.equal(r.json.session_start_limit.total, 1000);
    assert.equal(r.json.session_start_limit.max_concurrency, 1);
  });

  test('authorize -> code -> token (form only) -> /users/@me and guilds', async () => {
    const redirect = 'http://127.0.0.1:9/callback';
    const a = await fetch(`${base}/oauth2/authorize?response_type=code&client_id=${APP_ID}&scope=identify%20guilds&state=xyz&redirect_uri=${encodeURIComponent(redirect)}&fake_user=${users.admin.id}`, { redirect: 'manual' });
    assert.equal(a.status, 302);
    const loc = new URL(a.headers.get('location'));
    assert.equal(loc.searchParams.get('state'), 'xyz');
    const code = loc.searchParams.get('code');
    const asJson = await fetch(`${base}/api/v10/oauth2/token`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ grant_type: 'authorization_code', code }) });
    assert.equal(asJson.status, 400);
    const form = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirect, client_id: APP_ID, client_secret: 'shh' });
    const t = await fetch(`${base}/api/oauth2/token`, { method: 'POST', body: form });
    assert.equal(t.status, 200);
    const tok = await t.json();
    assert.equal(tok.token_type, 'Bearer');
    assert.equal(tok.scope, 'identify guilds');
    const reuse = await fetch(`${base}/api/v10/oauth2/token`, { method: 'POST', body: form });
    assert.equal((await reuse.json()).error, 'invalid_grant');
    const me = await api('GET', '/users/@me', { token: `Bearer ${tok.access_token}`, ua: 'Guildhall dashboard' });
    assert.equal(me.json.id, users.admin.id);
    const gl = await api('GET', '/users/@me/guilds', { token: `Bearer ${tok.access_token}`, ua: null });
    const demo = gl.json.find((x) => x.id === GID);
    assert.equal(demo.owner, false);
    assert.equal(BigInt(demo.permissions) & 8n, 8n);
    const rt = await fetch(`${base}/api/v10/oauth2/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tok.refresh_token, client_id: APP_ID, client_secret: 'shh' }) });
    assert.equal(rt.status, 200);
    const old = await api('GET', '/users/@me', { token: `Bearer ${tok.access_token}`, ua: null });
    assert.equal(old.status, 401, 'the refreshed-away access token no longer works');
  });

  test('reset restores the seed', async () => {
    await api('DELETE', `/guilds/${GID}/members/${users.moderator.id}`);
    assert.equal((await api('GET', `/guilds/${GID}/members/${users.moderator.id}`)).status, 404);
    await fake.reset();
    assert.equal((await api('GET', `/guilds/${GID}/members/${users.moderator.id}`)).status, 200);
    const st = await fake.state();
    assert.equal(st.guilds.find((g) => g.id === GID).name, 'Guildhall Demo');
    assert.deepEqual(st.roles[GID].map((r) => r.position), [0, 1, 2, 3, 4, 5]);
  });
});
