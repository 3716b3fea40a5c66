// fake_discord.test.mjs - checks the fake Discord itself (no Guildhall needed).
//
// Starts its own fake on a free port, with a tiny in-test interactions
// endpoint that verifies signatures the way Discord's docs say, and checks:
// the signer vector, auth, User-Agent, 50035 validation bodies, 50006, rate
// limits and 429s, injected failures, interaction tokens and follow-ups,
// moderation routes, commands, OAuth2 and reset; webhook events (signed, to an
// in-test receiver), entitlements, the dashboard's OAuth2 controls (default
// user, denial, bot install).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chatInput, demoGuild, interactionToken, makeGuild, testGuildA, testGuildB, users, PERMS } from '../lib/fixtures.mjs';
import { escapeRe, FakeDiscord, webhookPath } from '../lib/fake.mjs';
import { publicKeyHex, selfTest, sign, TEST_SEED_HEX, TEST_VECTOR, verify } from '../lib/signer.mjs';
import { snowflake } from '../lib/snowflake.mjs';
import { waitFor } from '../lib/wait.mjs';

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
let hooks; // the in-test webhook events receiver
const hooksSeen = [];

// The test public key, checked with node:crypto directly (independent of lib/signer.mjs).
const TEST_PUBLIC_KEY = '03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8';
const TEST_PUB = crypto.createPublicKey({
  key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(TEST_PUBLIC_KEY, 'hex').toString('base64url') }, format: 'jwk',
});
function ed25519Ok(raw, ts, sigHex) {
  if (typeof sigHex !== 'string' || !/^[0-9a-f]{128}$/.test(sigHex) || typeof ts !== 'string') return false;
  return crypto.verify(null, Buffer.concat([Buffer.from(ts), Buffer.from(raw)]), TEST_PUB, Buffer.from(sigHex, 'hex'));
}

/** Answers like Guildhall should: 401 on a bad signature, else 204 with an empty body. */
function startHooks() {
  return new Promise((resolve) => {
    hooks = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const ok = ed25519Ok(raw, req.headers['x-signature-timestamp'], req.headers['x-signature-ed25519']);
        hooksSeen.push({ ok, path: req.url, headers: req.headers, raw });
        if (!ok) { res.writeHead(401, { 'Content-Type': 'text/plain' }); res.end('invalid request signature'); return; }
        res.writeHead(204);
        res.end();
      });
    });
    hooks.listen(0, '127.0.0.1', () => resolve(hooks.address().port));
  });
}

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
  const hooksPort = await startHooks();
  proc = spawn(process.execPath, [SERVER, '--port', '0'], {
    env: {
      ...process.env, DISCORD_PUBLIC_KEY_SEED: TEST_SEED_HEX, GH_INTERACTIONS_URL: `http://127.0.0.1:${botPort}/interactions`,
      GH_WEBHOOKS_URL: `http://127.0.0.1:${hooksPort}/webhooks/discord`,
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
  await new Promise((r) => hooks?.close(r) ?? r());
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

  test('bulk delete: 2 to 100 ids', async () => {
    const ch2 = demoGuild.channels.welcome.id;
    const ids = [(await api('POST', `/channels/${ch2}/messages`, { body: { content: 'one' } })).json.id];
    // 2..100 ids (Discord's schema), in another channel (the route allows 3 calls/s per channel): one id or 101 ids is a 400 50035 naming the field
    const one = await api('POST', `/channels/${ch2}/messages/bulk-delete`, { body: { messages: [ids[0]] } });
    assert.equal(one.status, 400);
    assert.equal(one.json.code, 50035);
    assert.ok(one.json.errors?.messages, JSON.stringify(one.json));
    const many = Array.from({ length: 101 }, () => snowflake());
    const r101 = await api('POST', `/channels/${ch2}/messages/bulk-delete`, { body: { messages: many } });
    assert.equal(r101.status, 400);
    assert.equal(r101.json.code, 50035);
    assert.ok(r101.json.errors?.messages, JSON.stringify(r101.json));
    const r100 = await api('POST', `/channels/${ch2}/messages/bulk-delete`, { body: { messages: many.slice(0, 100) } });
    assert.equal(r100.status, 204, 'unknown ids count, as on Discord');
  });
});

describe('moderation: DMs, channels, overwrites, limits', () => {
  test('DM channel: one per user, messages recorded, closed DMs and strangers get 50007', async () => {
    await fake.reset();
    const open = await api('POST', '/users/@me/channels', { body: { recipient_id: users.member.id } });
    assert.equal(open.status, 200);
    assert.equal(open.json.type, 1);
    assert.equal(open.json.recipients[0].id, users.member.id);
    const again = await api('POST', '/users/@me/channels', { body: { recipient_id: users.member.id } });
    assert.equal(again.json.id, open.json.id);
    const dm = open.json.id;
    const sent = await api('POST', `/channels/${dm}/messages`, { body: { content: 'You were warned', allowed_mentions: { parse: [] } } });
    assert.equal(sent.status, 200);
    let st = await fake.state();
    assert.deepEqual(st.messages[dm].map((m) => m.content), ['You were warned']);
    assert.ok(st.dm_channels.some((c) => c.id === dm));
    assert.equal((await api('GET', `/channels/${dm}`)).json.type, 1);

    // closed DMs: 403 50007 until opened again
    const ctl = await fetch(`${base}/_fake/users/${users.member.id}/dms`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ closed: true }) });
    assert.deepEqual(await ctl.json(), { user_id: users.member.id, dms_closed: true });
    const closed = await api('POST', `/channels/${dm}/messages`, { body: { content: 'again' } });
    assert.equal(closed.status, 403);
    assert.equal(closed.json.code, 50007);
    await fetch(`${base}/_fake/users/${users.member.id}/dms`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ closed: false }) });
    assert.equal((await api('POST', `/channels/${dm}/messages`, { body: { content: 'open' } })).status, 200);

    // a user who shares no server with the bot cannot be DMed (why moderation DMs before a ban)
    st = await fake.state();
    assert.ok(Object.values(st.members).every((list) => !list.some((m) => m.user.id === users.dm.id)));
    const stranger = (await api('POST', '/users/@me/channels', { body: { recipient_id: users.dm.id } })).json.id;
    assert.equal((await api('POST', `/channels/${stranger}/messages`, { body: { content: 'x' } })).json.code, 50007);

    // bad bodies and unknown users; no bulk delete in a DM
    const missing = await api('POST', '/users/@me/channels', { body: {} });
    assert.equal(missing.status, 400);
    assert.equal(missing.json.errors.recipient_id._errors[0].code, 'BASE_TYPE_REQUIRED');
    assert.equal((await api('POST', '/users/@me/channels', { body: { recipient_id: 'abc' } })).json.code, 50035);
    assert.equal((await api('POST', '/users/@me/channels', { body: { recipient_id: '1' } })).json.code, 10013);
    const bulk = await api('POST', `/channels/${dm}/messages/bulk-delete`, { body: { messages: [sent.json.id, snowflake()] } });
    assert.equal(bulk.json.code, 50003);

    // reset forgets DM channels and closed DMs
    await fake.reset();
    st = await fake.state();
    assert.deepEqual(st.dm_channels, []);
    assert.deepEqual(st.dms_closed, []);
  });

  test('PATCH channel: slowmode 0..21600 validated, stored, audited; not on a DM', async () => {
    await fake.reset();
    const ch = testGuildA.channels.general.id;
    const ok = await api('PATCH', `/channels/${ch}`, { body: { rate_limit_per_user: 30 }, headers: { 'X-Audit-Log-Reason': encodeURIComponent('slowmode by alice') } });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.rate_limit_per_user, 30);
    assert.equal((await api('GET', `/channels/${ch}`)).json.rate_limit_per_user, 30);
    const st = await fake.state();
    assert.ok(st.audit_log.some((e) => e.action_type === 11 && e.target_id === ch && e.reason === 'slowmode by alice'));
    for (const [v, code] of [[21601, 'NUMBER_TYPE_MAX'], [-1, 'NUMBER_TYPE_MIN'], ['5', 'NUMBER_TYPE_COERCE'], [1.5, 'NUMBER_TYPE_COERCE']]) {
      const r = await api('PATCH', `/channels/${testGuildA.channels.modLog.id}`, { body: { rate_limit_per_user: v } });
      assert.equal(r.status, 400, `rate_limit_per_user ${v}`);
      assert.equal(r.json.code, 50035);
      assert.equal(r.json.errors.rate_limit_per_user._errors[0].code, code);
    }
    assert.equal((await api('PATCH', `/channels/${testGuildA.channels.welcome.id}`, { body: { rate_limit_per_user: 21600 } })).status, 200);
    assert.equal((await api('PATCH', `/channels/${testGuildA.channels.welcome.id}`, { body: { rate_limit_per_user: 0 } })).json.rate_limit_per_user, 0);
    const dm = (await api('POST', '/users/@me/channels', { body: { recipient_id: users.member.id } })).json.id;
    assert.equal((await api('PATCH', `/channels/${dm}`, { body: { rate_limit_per_user: 5 } })).json.code, 50003);
    const recorded = await fake.requests({ method: 'PATCH', path: `/api/v10/channels/${testGuildA.channels.modLog.id}` });
    assert.ok(recorded.length >= 4 && recorded.every((r) => r.valid === false));
  });

  test('permission overwrites: put, update, delete; validated; the bot cannot grant what it lacks', async () => {
    await fake.reset();
    const ch = testGuildB.channels.general.id;
    const everyone = testGuildB.guild.id;
    const put = (id, body) => api('PUT', `/channels/${ch}/permissions/${id}`, { body });
    // refusals on another channel: 10 overwrite calls per 10 s per channel, as on Discord
    const other = testGuildB.channels.welcome.id;
    const bad = (id, body) => api('PUT', `/channels/${other}/permissions/${id}`, { body });
    assert.equal((await put(everyone, { type: 0, deny: '2048' })).status, 204);
    assert.equal((await put(everyone, { type: 0, allow: '1024', deny: '2048' })).status, 204);
    assert.equal((await put(users.member.id, { type: 1, allow: '2048' })).status, 204);
    let c = (await api('GET', `/channels/${ch}`)).json;
    assert.deepEqual(c.permission_overwrites, [
      { id: everyone, type: 0, allow: '1024', deny: '2048' },
      { id: users.member.id, type: 1, allow: '2048', deny: '0' },
    ]);
    const badType = await bad(everyone, { type: 3 });
    assert.equal(badType.json.errors.type._errors[0].code, 'BASE_TYPE_CHOICES');
    assert.equal((await bad(everyone, { type: 0, allow: 'abc' })).json.errors.allow._errors[0].code, 'NUMBER_TYPE_COERCE');
    assert.equal((await bad(everyone, { deny: '2048' })).json.errors.type._errors[0].code, 'BASE_TYPE_REQUIRED');
    assert.equal((await bad('42', { type: 0, deny: '2048' })).json.code, 10011);
    assert.equal((await bad('42', { type: 1, deny: '2048' })).json.code, 10007);
    const admin = await bad(everyone, { type: 0, deny: '8' }); // ADMINISTRATOR: the bot lacks it
    assert.equal(admin.status, 403);
    assert.equal(admin.json.code, 50013);
    assert.equal((await api('DELETE', `/channels/${ch}/permissions/${users.member.id}`)).status, 204);
    assert.equal((await api('DELETE', `/channels/${ch}/permissions/${users.member.id}`)).json.code, 10009);
    c = (await api('GET', `/channels/${ch}`)).json;
    assert.deepEqual(c.permission_overwrites.map((o) => o.id), [everyone]);
    const st = await fake.state();
    assert.deepEqual(st.audit_log.filter((e) => e.target_id === ch).map((e) => e.action_type), [13, 14, 13, 15]);
  });

  test('enforce_nonce: the same nonce within minutes returns the first message', async () => {
    await fake.reset();
    const ch = testGuildB.channels.modLog.id;
    const body = { embeds: [{ title: 'Case #1' }], nonce: 'case-1', enforce_nonce: true, allowed_mentions: { parse: [] } };
    const a = await api('POST', `/channels/${ch}/messages`, { body });
    const b = await api('POST', `/channels/${ch}/messages`, { body });
    assert.equal(a.status, 200);
    assert.equal(b.json.id, a.json.id);
    const c = await api('POST', `/channels/${ch}/messages`, { body: { ...body, enforce_nonce: false } });
    assert.notEqual(c.json.id, a.json.id);
    assert.equal((await fake.state()).messages[ch].length, 2);
  });

  test('bans, timeouts and roles enforce hierarchy and limits as Discord does', async () => {
    await fake.reset();
    const g = testGuildA.guild.id;
    // the admin's role sits above the bot's: no ban, kick, timeout or role change
    assert.equal((await api('PUT', `/guilds/${g}/bans/${users.admin.id}`, { body: {} })).json.code, 50013);
    assert.equal((await api('DELETE', `/guilds/${g}/members/${users.admin.id}`)).json.code, 50013);
    const until = new Date(Date.now() + 60000).toISOString();
    assert.equal((await api('PATCH', `/guilds/${g}/members/${users.owner.id}`, { body: { communication_disabled_until: until } })).json.code, 50013);
    // a role above the bot cannot be given through a roles PATCH (a jail restore) either
    const up = await api('PATCH', `/guilds/${g}/members/${users.member.id}`, { body: { roles: [testGuildA.roles.admin.id] } });
    assert.equal(up.json.code, 50013);
    // delete_message_seconds 0..604800; the edge passes
    assert.equal((await api('PUT', `/guilds/${g}/bans/${users.muted.id}`, { body: { delete_message_seconds: -1 } })).json.code, 50035);
    assert.equal((await api('PUT', `/guilds/${g}/bans/${users.muted.id}`, { body: { delete_message_seconds: 604801 } })).json.code, 50035);
    assert.equal((await api('PUT', `/guilds/${g}/bans/${users.muted.id}`, { body: { delete_message_seconds: 604800 } })).status, 204);
    // timeouts up to 28 days; null lifts one
    assert.equal((await api('PATCH', `/guilds/${g}/members/${users.member.id}`, { body: { communication_disabled_until: new Date(Date.now() + 28 * 86400000 - 5000).toISOString() } })).status, 200);
    const lifted = await api('PATCH', `/guilds/${g}/members/${users.member.id}`, { body: { communication_disabled_until: null } });
    assert.equal(lifted.json.communication_disabled_until, null);
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

// ------------------------------------------------------------ webhook events
/** A fresh guild (added to the fake) without the bot in it, nor its role. */
async function guildWithoutBot(name) {
  const g = makeGuild({ name });
  g.members = g.members.filter((m) => m.fixture_key !== 'bot');
  delete g.roles.bot;
  await fake.addGuild(g);
  return g;
}

const ISO_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const ENTITLEMENT_KEYS = ['application_id', 'consumed', 'deleted', 'ends_at', 'gift_code_flags', 'guild_id', 'id', 'promotion_id', 'sku_id', 'starts_at', 'type', 'user_id'];

describe('webhook events', () => {
  test('PING: body, headers and an Ed25519 signature over timestamp + body', async () => {
    const n = hooksSeen.length;
    const r = await fake.webhookEvent('PING', undefined, { timestamp: '1700000123' });
    assert.equal(r.status, 204);
    assert.equal(r.body, null);
    assert.deepEqual(r.sent, { version: 1, application_id: APP_ID, type: 0 });
    const got = hooksSeen[n];
    assert.equal(hooksSeen.length, n + 1);
    assert.equal(got.path, '/webhooks/discord');
    assert.equal(got.raw, JSON.stringify({ version: 1, application_id: APP_ID, type: 0 }));
    assert.equal(got.headers['content-type'], 'application/json');
    assert.equal(got.headers['x-signature-timestamp'], '1700000123');
    assert.match(got.headers['x-signature-ed25519'], /^[0-9a-f]{128}$/);
    assert.equal(got.ok, true);
    assert.equal(ed25519Ok(got.raw, '1700000124', got.headers['x-signature-ed25519']), false, 'the timestamp is signed too');
    const log = await fake.webhookEvents();
    assert.equal(log.at(-1).type, 'PING');
    assert.equal(log.at(-1).status, 204);
  });

  test('APPLICATION_AUTHORIZED: full user, scopes and full guild', async () => {
    const n = hooksSeen.length;
    const r = await fake.webhookEvent('APPLICATION_AUTHORIZED', undefined, { guild_id: GID, user_id: users.admin.id });
    assert.equal(r.status, 204);
    const body = JSON.parse(hooksSeen[n].raw);
    assert.deepEqual(body, r.sent);
    assert.deepEqual(Object.keys(body).sort(), ['application_id', 'event', 'type', 'version']);
    assert.equal(body.version, 1);
    assert.equal(body.type, 1);
    assert.equal(body.application_id, APP_ID);
    assert.equal(body.event.type, 'APPLICATION_AUTHORIZED');
    assert.match(body.event.timestamp, ISO_RE);
    assert.ok(Math.abs(Date.parse(body.event.timestamp) - Date.now()) < 60000);
    const d = body.event.data;
    assert.equal(d.integration_type, 0);
    assert.deepEqual(d.user, users.admin);
    assert.ok(d.scopes.includes('bot') && d.scopes.includes('applications.commands'));
    assert.equal(d.guild.id, GID);
    assert.equal(d.guild.name, 'Guildhall Demo');
    assert.equal(d.guild.owner_id, users.owner.id);
    assert.equal(d.guild.roles.length, 6);
    assert.ok(d.guild.roles.every((x) => typeof x.permissions === 'string'));
  });

  test('tamper, wrong key and missing headers do not verify', async () => {
    const t = await fake.webhookEvent('PING', undefined, { tamper: true });
    assert.equal(t.status, 401, 'the receiver refused the tampered body');
    assert.notEqual(t.sent.application_id, APP_ID, 'tamper changes the body after signing');
    assert.equal(ed25519Ok(t.raw, t.timestamp, t.signature), false);
    assert.equal(ed25519Ok(JSON.stringify({ version: 1, application_id: APP_ID, type: 0 }), t.timestamp, t.signature), true,
      'the signature was made over the untampered body');
    const w = await fake.webhookEvent('PING', undefined, { wrong_key: true });
    assert.equal(w.status, 401);
    assert.deepEqual(w.sent, { version: 1, application_id: APP_ID, type: 0 });
    assert.equal(ed25519Ok(w.raw, w.timestamp, w.signature), false);
    const n = hooksSeen.length;
    const o = await fake.webhookEvent('PING', undefined, { omit_headers: true });
    assert.equal(o.status, 401);
    assert.equal(hooksSeen[n].headers['x-signature-ed25519'], undefined);
    assert.equal(hooksSeen[n].headers['x-signature-timestamp'], undefined);
  });

  test('bad control calls: unknown type, entitlement event without data, unreachable receiver', async () => {
    await assert.rejects(fake.webhookEvent('GUILD_CREATE'), /400/);
    await assert.rejects(fake.webhookEvent('ENTITLEMENT_CREATE'), /data required/);
    await assert.rejects(fake.webhookEvent('PING', undefined, { url: 'http://127.0.0.1:9/nothing' }), /502.*could not reach/);
  });

  test('install: the bot joins the guild (with a managed role) and APPLICATION_AUTHORIZED is sent', async () => {
    const g = await guildWithoutBot('Install Target');
    const gid = g.guild.id;
    assert.equal((await api('GET', `/guilds/${gid}`)).status, 403, 'no access before the install');
    const n = hooksSeen.length;
    const r = await fake.install(gid, users.admin.id);
    assert.equal(r.status, 204);
    assert.equal(r.added, true);
    const d = JSON.parse(hooksSeen[n].raw).event.data;
    assert.equal(hooksSeen[n].ok, true);
    assert.equal(d.guild.id, gid);
    assert.equal(d.user.id, users.admin.id);
    const me = await api('GET', `/guilds/${gid}/members/${APP_ID}`);
    assert.equal(me.status, 200);
    const role = (await api('GET', `/guilds/${gid}/roles`)).json.find((x) => x.id === me.json.roles[0]);
    assert.equal(role.managed, true);
    assert.equal(role.tags.bot_id, APP_ID);
    assert.equal(role.position, 1);
    assert.ok(d.guild.roles.some((x) => x.id === role.id), 'the event shows the guild after the install');
    const again = await fake.install(gid, users.admin.id);
    assert.equal(again.added, false);
    assert.equal((await fake.state()).members[gid].filter((m) => m.user.id === APP_ID).length, 1);
    await assert.rejects(fake.install('1', users.admin.id), /known guild/);
    await assert.rejects(fake.install(gid, '42424242424242'), /known user/);
  });

  test('entitlements: create, update and delete send their events', async () => {
    const sku = '1300000000000000001';
    const n = hooksSeen.length;
    const c = await fake.createEntitlement({ guild_id: GID, sku_id: sku, ends_at: '2099-01-01T00:00:00.000000+00:00' });
    assert.equal(c.delivery.status, 204);
    const e = c.entitlement;
    assert.deepEqual(Object.keys(e).sort(), ENTITLEMENT_KEYS);
    assert.equal(e.application_id, APP_ID);
    assert.equal(e.guild_id, GID);
    assert.equal(e.user_id, users.owner.id, 'user_id defaults to the guild owner');
    assert.equal(e.sku_id, sku);
    assert.equal(e.type, 8);
    assert.equal(e.deleted, false);
    assert.equal(e.consumed, false);
    assert.equal(e.promotion_id, null);
    assert.equal(e.gift_code_flags, 0);
    assert.ok(Date.parse(e.starts_at) <= Date.now());
    assert.equal(e.ends_at, '2099-01-01T00:00:00.000000+00:00');
    const created = JSON.parse(hooksSeen[n].raw);
    assert.equal(hooksSeen[n].ok, true);
    assert.equal(created.type, 1);
    assert.equal(created.event.type, 'ENTITLEMENT_CREATE');
    assert.deepEqual(created.event.data, e);

    const u = await fake.updateEntitlement(e.id, { ends_at: '2099-02-01T00:00:00.000000+00:00' });
    assert.equal(u.delivery.status, 204);
    assert.equal(u.entitlement.ends_at, '2099-02-01T00:00:00.000000+00:00');
    const updated = JSON.parse(hooksSeen[n + 1].raw);
    assert.equal(updated.event.type, 'ENTITLEMENT_UPDATE');
    assert.deepEqual(updated.event.data, { ...e, ends_at: '2099-02-01T00:00:00.000000+00:00' });

    const del = await fake.deleteEntitlement(e.id);
    assert.equal(del.delivery.status, 204);
    const deleted = JSON.parse(hooksSeen[n + 2].raw);
    assert.equal(deleted.event.type, 'ENTITLEMENT_DELETE');
    assert.equal(deleted.event.data.id, e.id);
    assert.equal(deleted.event.data.deleted, true);
    assert.equal((await fake.entitlements()).find((x) => x.id === e.id).deleted, true);

    const user = await fake.createEntitlement({ guild_id: testGuildA.guild.id, sku_id: sku, user_id: users.admin.id, ends_at: null });
    assert.equal(user.entitlement.user_id, users.admin.id);
    assert.equal(user.entitlement.ends_at, null);
    await assert.rejects(fake.createEntitlement({ guild_id: GID, sku_id: 'abc' }), /sku_id/);
    await assert.rejects(fake.createEntitlement({ guild_id: GID, sku_id: sku, ends_at: 'soon' }), /ends_at/);
    await assert.rejects(fake.updateEntitlement('999', { ends_at: null }), /404/);
  });

  test('GET /applications/{app}/entitlements filters and validates its query', async () => {
    await fake.reset();
    const sku = '1300000000000000002';
    const day = 86400 * 1000;
    const iso = (ms) => new Date(ms).toISOString();
    const active = (await fake.createEntitlement({ guild_id: GID, sku_id: sku })).entitlement;
    const ended = (await fake.createEntitlement({ guild_id: GID, sku_id: sku, starts_at: iso(Date.now() - 40 * day), ends_at: iso(Date.now() - 10 * day) })).entitlement;
    const gone = (await fake.createEntitlement({ guild_id: GID, sku_id: sku })).entitlement;
    await fake.deleteEntitlement(gone.id);
    const other = (await fake.createEntitlement({ guild_id: testGuildB.guild.id, sku_id: sku, user_id: users.member.id })).entitlement;
    const ids = (r) => r.json.map((x) => x.id);
    const p = `/applications/${APP_ID}/entitlements`;

    assert.deepEqual(ids(await api('GET', p)), [active.id, ended.id, other.id], 'deleted ones are left out by default');
    assert.deepEqual(ids(await api('GET', `${p}?exclude_deleted=false`)), [active.id, ended.id, gone.id, other.id]);
    assert.deepEqual(ids(await api('GET', `${p}?guild_id=${GID}`)), [active.id, ended.id]);
    assert.deepEqual(ids(await api('GET', `${p}?guild_id=${GID}&exclude_ended=true`)), [active.id]);
    assert.deepEqual(ids(await api('GET', `${p}?user_id=${users.member.id}`)), [other.id]);
    assert.deepEqual(ids(await api('GET', `${p}?guild_id=${GID}&limit=1`)), [active.id]);
    assert.deepEqual(ids(await api('GET', `${p}?sku_ids=1300000000000000009`)), []);
    const one = await api('GET', `${p}?guild_id=${testGuildB.guild.id}`);
    assert.deepEqual(one.json, [other]);

    const bad = await api('GET', `${p}?guild_id=abc&exclude_ended=maybe&limit=101`);
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, 50035);
    assert.equal(bad.json.errors.guild_id._errors[0].code, 'NUMBER_TYPE_COERCE');
    assert.equal(bad.json.errors.exclude_ended._errors[0].code, 'BOOLEAN_TYPE_CONVERT');
    assert.equal(bad.json.errors.limit._errors[0].code, 'NUMBER_TYPE_MAX');
    const rec = (await fake.requests({ path: `/api/v10${p}` })).at(-1);
    assert.equal(rec.valid, false);
    assert.deepEqual(rec.errors.map((x) => x.path).sort(), ['exclude_ended', 'guild_id', 'limit']);
    assert.equal((await api('GET', p, { token: null })).status, 401);
    assert.equal((await api('GET', `/applications/1111111111111111111/entitlements`)).json.code, 10002);
    await fake.reset();
    assert.deepEqual((await api('GET', p)).json, [], 'reset clears entitlements');
  });
});

// ------------------------------------------------------- OAuth2 (dashboard)
const REDIRECT = 'http://127.0.0.1:9/auth/discord/callback';

async function authorize(params) {
  const q = new URLSearchParams({ response_type: 'code', client_id: APP_ID, scope: 'identify guilds', state: 's1', redirect_uri: REDIRECT, ...params });
  const r = await fetch(`${base}/oauth2/authorize?${q}`, { redirect: 'manual' });
  assert.equal(r.status, 302, await r.clone().text());
  return new URL(r.headers.get('location'));
}

async function exchange(code) {
  const form = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: APP_ID, client_secret: 'shh' });
  const r = await fetch(`${base}/api/v10/oauth2/token`, { method: 'POST', body: form });
  assert.equal(r.status, 200);
  return r.json();
}

describe('OAuth2 for the dashboard', () => {
  test('default user: who the authorize page consents as; reset restores the owner', async () => {
    const meOf = async (loc) => (await api('GET', '/users/@me', { token: `Bearer ${(await exchange(loc.searchParams.get('code'))).access_token}`, ua: null })).json.id;
    assert.equal(await meOf(await authorize()), users.owner.id);
    await fake.setOAuthUser(users.moderator.id);
    assert.equal(await meOf(await authorize()), users.moderator.id);
    assert.equal(await meOf(await authorize({ fake_user: users.member.id })), users.member.id, 'fake_user still wins');
    await assert.rejects(fake.setOAuthUser('42424242424242'), /not a known user/);
    await fake.reset();
    assert.equal(await meOf(await authorize()), users.owner.id);
    await fake.setOAuthUser(users.admin.id);
    await fake.setOAuthUser(null);
    assert.equal(await meOf(await authorize()), users.owner.id);
  });

  test('deny: the next authorize redirects with error=access_denied and the state', async () => {
    await fake.denyOAuth(1);
    const denied = await authorize({ state: 'csrf-123' });
    assert.equal(denied.origin + denied.pathname, REDIRECT);
    assert.equal(denied.searchParams.get('error'), 'access_denied');
    assert.ok(denied.searchParams.get('error_description').length > 10);
    assert.equal(denied.searchParams.get('state'), 'csrf-123');
    assert.equal(denied.searchParams.get('code'), null);
    const next = await authorize({ state: 'csrf-124' });
    assert.equal(next.searchParams.get('error'), null);
    assert.ok(next.searchParams.get('code'));
    await fake.denyOAuth(2);
    await fake.reset();
    assert.ok((await authorize()).searchParams.get('code'), 'reset clears pending denials');
  });

  test('bot install through authorize: bot joins, redirect carries guild_id, token has the guild, event sent', async () => {
    const g = await guildWithoutBot('Authorize Install');
    const gid = g.guild.id;
    const since = (await fake.webhookEvents()).at(-1)?.seq ?? 0;
    const loc = await authorize({ scope: 'identify guilds bot applications.commands', guild_id: gid, permissions: PERMS.BOT, fake_user: users.admin.id, state: 'st' });
    assert.equal(loc.searchParams.get('guild_id'), gid);
    assert.equal(loc.searchParams.get('permissions'), PERMS.BOT);
    assert.equal(loc.searchParams.get('state'), 'st');
    const st = await fake.state();
    const botMember = st.members[gid].find((m) => m.user.id === APP_ID);
    assert.ok(botMember, 'the bot is a member now');
    assert.equal(st.roles[gid].find((x) => x.id === botMember.roles[0]).permissions, PERMS.BOT);
    const tok = await exchange(loc.searchParams.get('code'));
    assert.equal(tok.guild.id, gid);
    assert.equal(tok.guild.name, 'Authorize Install');
    assert.ok(Array.isArray(tok.guild.roles));
    assert.equal(tok.scope, 'identify guilds bot applications.commands');
    const ev = await waitFor(async () => (await fake.webhookEvents(since)).find((e) => e.type === 'APPLICATION_AUTHORIZED'),
      { timeout: 5000, message: 'the APPLICATION_AUTHORIZED delivery' });
    assert.equal(ev.status, 204);
    assert.equal(ev.sent.event.data.guild.id, gid);
    assert.equal(ev.sent.event.data.user.id, users.admin.id);
    assert.ok(hooksSeen.some((h) => h.ok && h.raw.includes(`"guild":{"id":"${gid}"`)), 'the receiver got it, signed');

    const plain = await authorize({ guild_id: gid });
    assert.equal(plain.searchParams.get('guild_id'), null, 'without scope bot no guild_id comes back');
    assert.equal((await exchange(plain.searchParams.get('code'))).guild, undefined);
    const unknown = await fetch(`${base}/oauth2/authorize?client_id=${APP_ID}&scope=bot&guild_id=1`, { redirect: 'manual' });
    assert.equal(unknown.status, 400);
    assert.equal((await unknown.json()).code, 10004);
  });

  test('/users/@me/guilds with Bearer: computed permissions and owner, per user', async () => {
    const ALL = ((1n << 53n) - 1n).toString();
    const expectModerator = (BigInt(PERMS.MEMBER) | BigInt(PERMS.MODERATOR)).toString();
    const guildsOf = async (uid) => {
      const t = await fake.oauthToken(uid);
      const r = await api('GET', '/users/@me/guilds', { token: `Bearer ${t.access_token}`, ua: null });
      assert.equal(r.status, 200, r.text);
      return Object.fromEntries(r.json.map((x) => [x.id, x]));
    };
    const mod = await guildsOf(users.moderator.id);
    assert.equal(mod[GID].owner, false);
    assert.equal(mod[GID].permissions, expectModerator);
    assert.equal(BigInt(mod[GID].permissions) & 0x20n, 0n, 'a moderator has no Manage Guild');
    const owner = await guildsOf(users.owner.id);
    assert.equal(owner[GID].owner, true);
    assert.equal(owner[GID].permissions, ALL);
    assert.equal(owner[testGuildB.guild.id].owner, false, 'guild B is owned by the admin');
    const admin = await guildsOf(users.admin.id);
    assert.equal(admin[testGuildB.guild.id].owner, true);
    const member = await guildsOf(users.member.id);
    assert.equal(member[GID].permissions, (BigInt(PERMS.MEMBER)).toString());
    assert.equal(BigInt(member[GID].permissions) & 0x28n, 0n, 'no Administrator, no Manage Guild');
  });
});
