// api_auth.test.mjs - the dashboard API's login, sessions and CSRF (docs/api.md, docs/security.md):
// the OAuth2 login through the fake Discord (valid, safe and unsafe `next`, bad or missing state,
// denied), the session cookie's attributes, tokens sealed at rest, tampered / expired / alg-none /
// revoked JWTs, the Redis session marker versus PostgreSQL, and CSRF on state-changing routes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import {
  apiClient, installGuild, jwtClaims, lastSecurityEventId, loginAs, loginRetry, mintJwt,
  parseSetCookies, securityEvents,
} from '../lib/api.mjs';
import { exec, query, redis } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();
const OWNER = users.owner.id;
const DEVELOPER = '444455556666777788';

const cookieOf = (res, name) => parseSetCookies(res.headers).find((c) => c.name === name);
const sessionKey = (jti) => `bot:{global}:dash:session:${jti}`;
const sessionRow = (jti) => query(h.stack.DATABASE_URL,
  "SELECT user_id::text, revoked_at, expires_at FROM dashboard_sessions WHERE jti = :'jti'", { jti })[0];

function assertError(r, status, code) {
  assert.equal(r.status, status, `${status} ${code} expected, got ${r.status}: ${r.text}`);
  assert.equal(r.body?.error?.code, code, r.text);
  assert.equal(typeof r.body.error.message, 'string');
  assert.ok(r.body.error.message.length > 0);
}

// One owner session for the tests that only read with it (logins are rate limited by Discord:
// ten code exchanges per 10 s for the whole application).
let ownerSession = null;
async function owner() {
  ownerSession ??= await loginAs(h.stack, OWNER);
  return ownerSession;
}

/** A client whose gh_session cookie is `token` (and nothing else). */
function withToken(token) {
  const c = apiClient(h.stack);
  c.jar.set('gh_session', token);
  return c;
}

/** Changes one character in the middle of the JWT's payload (still valid base64url). */
function flipPayload(token) {
  const [head, payload, sig] = token.split('.');
  const i = Math.floor(payload.length / 2);
  const ch = payload[i] === 'A' ? 'B' : 'A';
  return `${head}.${payload.slice(0, i)}${ch}${payload.slice(i + 1)}.${sig}`;
}

test('login: 302 to /#/guilds with an HttpOnly Lax session cookie, a readable CSRF cookie, /auth/me', async () => {
  const c = apiClient(h.stack);
  const since = await h.fake.seq();
  const res = await loginRetry(c, { user: OWNER });
  ownerSession = c;
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), '/#/guilds');

  const session = cookieOf(res, 'gh_session');
  assert.ok(session, `gh_session set: ${res.headers.getSetCookie()}`);
  assert.match(session.value, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'a JWT');
  assert.equal(session.attrs.httponly, true, session.raw);
  assert.equal(session.attrs.samesite, 'Lax', session.raw);
  assert.equal(session.attrs.path, '/', session.raw);
  assert.equal(session.attrs['max-age'], '86400', session.raw);
  assert.equal(session.attrs.secure, undefined, `no Secure on an http PUBLIC_URL: ${session.raw}`);
  const csrf = cookieOf(res, 'gh_csrf');
  assert.ok(csrf, 'gh_csrf set');
  assert.equal(csrf.attrs.httponly, undefined, `gh_csrf readable by the page: ${csrf.raw}`);
  assert.equal(csrf.attrs.samesite, 'Lax');
  assert.equal(csrf.attrs['max-age'], '86400');
  assert.ok(csrf.value.length >= 16);
  const state = cookieOf(res, 'gh_oauth_state');
  assert.ok(state && state.attrs['max-age'] === '0', 'the state cookie is cleared after use');

  const claims = jwtClaims(session.value);
  assert.equal(claims.sub, OWNER);
  assert.equal(claims.csrf, csrf.value);
  assert.ok(claims.exp - claims.iat === 86400, JSON.stringify(claims));
  const row = sessionRow(claims.jti);
  assert.ok(row, 'a dashboard_sessions row for the jti');
  assert.equal(row.user_id, OWNER);
  assert.equal(row.revoked_at, null);
  assert.equal(redis(h.stack.REDIS_URL, 'EXISTS', sessionKey(claims.jti)), '1', 'the Redis session marker');
  const ttl = Number(redis(h.stack.REDIS_URL, 'TTL', sessionKey(claims.jti)));
  assert.ok(ttl > 86000 && ttl <= 86400, `marker TTL ${ttl}`);

  const me = await c.get('/auth/me');
  assert.equal(me.status, 200, me.text);
  assert.equal(me.body.user.id, OWNER);
  assert.equal(me.body.user.username, users.owner.username);
  assert.equal(me.body.user.global_name, users.owner.global_name);
  assert.equal(me.body.csrf_token, csrf.value);
  assert.equal(me.body.developer, false);
  const exp = Date.parse(me.body.expires_at);
  assert.ok(Math.abs(exp - claims.exp * 1000) < 1000, me.body.expires_at);

  // the OAuth2 tokens the fake issued are stored sealed, never in clear
  const grants = await h.fake.requests({ method: 'POST', path_re: 'oauth2/token$', since });
  const issued = grants.map((g) => g.response).filter((r) => r && r.access_token).at(-1);
  assert.ok(issued, 'the fake saw the code exchange');
  const [u] = query(h.stack.DATABASE_URL,
    "SELECT access_token_enc, refresh_token_enc, scopes FROM dashboard_users WHERE id = :'id'", { id: OWNER });
  for (const [col, plain] of [['access_token_enc', issued.access_token], ['refresh_token_enc', issued.refresh_token]]) {
    assert.match(u[col] ?? '', /^v1\.[A-Za-z0-9_-]+$/, `${col} sealed as v1.<base64url>`);
    assert.ok(!u[col].includes(plain), `${col} does not contain the plain token`);
  }
  assert.notEqual(u.access_token_enc, u.refresh_token_enc);
});

test('login: the developer gets developer: true in /auth/me', async () => {
  const c = await loginAs(h.stack, DEVELOPER);
  const me = await c.get('/auth/me');
  assert.equal(me.status, 200, me.text);
  assert.equal(me.body.user.id, DEVELOPER);
  assert.equal(me.body.developer, true);
});

test('login: a safe next is followed; //evil.example, https://evil.example and /\\evil are not', async () => {
  const safe = apiClient(h.stack);
  const r1 = await loginRetry(safe, { user: OWNER, next: '/#/guilds/123/settings' });
  assert.equal(r1.status, 302);
  assert.equal(r1.headers.get('location'), '/#/guilds/123/settings');

  // an unsafe next is not even remembered at the start of the login
  for (const next of ['//evil.example', '//evil.example/#/guilds', 'https://evil.example/', '/\\evil.example', 'javascript:alert(1)']) {
    const c = apiClient(h.stack);
    const start = await c.get(`/auth/discord/login?next=${encodeURIComponent(next)}`);
    assert.equal(start.status, 302);
    const nextCookie = cookieOf(start, 'gh_oauth_next');
    assert.ok(!nextCookie || nextCookie.attrs['max-age'] === '0', `next=${next} stored: ${nextCookie?.raw}`);
  }

  // and the callback checks it again: a planted //evil.example cookie is not followed
  let c;
  let res;
  await waitFor(async () => {
    c = apiClient(h.stack);
    const start = await c.get(`/auth/discord/login?next=${encodeURIComponent('//evil.example')}`);
    const authorize = new URL(start.headers.get('location'));
    authorize.searchParams.set('fake_user', OWNER);
    c.jar.set('gh_oauth_next', '//evil.example');
    const back = new URL((await fetch(authorize, { redirect: 'manual' })).headers.get('location'));
    res = await c.raw('GET', back.pathname + back.search);
    // retried while Discord's rate limit refuses the code exchange
    return !/error=(exchange_failed|discord_unavailable)/.test(res.headers.get('location') ?? '');
  }, { timeout: 30000, interval: 1100, message: 'a login with a planted next cookie' });
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), '/#/guilds', 'a planted unsafe next is ignored');
  assert.ok(c.jar.has('gh_session'), 'the login itself succeeds');
});

test('login: a state that does not match the cookie is refused (bad_state) and recorded', async () => {
  const since = lastSecurityEventId(h.stack);
  const c = apiClient(h.stack);
  const res = await c.login({ user: OWNER, tamperState: true });
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), '/#/login?error=bad_state');
  assert.ok(!c.jar.has('gh_session'), 'no session');
  assert.equal(cookieOf(res, 'gh_session'), undefined);
  const ev = securityEvents(h.stack, since, { kind: 'oauth.bad_state', ip: c.ip });
  assert.equal(ev.length, 1, JSON.stringify(ev));
  assert.equal(ev[0].method, 'GET');
  assert.equal(ev[0].path, '/api/v1/auth/discord/callback');
});

test('login: a callback without the state cookie is refused (bad_state)', async () => {
  const since = lastSecurityEventId(h.stack);
  const c = apiClient(h.stack);
  const start = await c.get('/auth/discord/login');
  assert.equal(start.status, 302);
  const stateCookie = cookieOf(start, 'gh_oauth_state');
  assert.ok(stateCookie && stateCookie.attrs.httponly === true, 'the state cookie is HttpOnly');
  assert.equal(stateCookie.attrs['max-age'], '600');
  const authorize = new URL(start.headers.get('location'));
  assert.equal(`${authorize.origin}${authorize.pathname}`, h.stack.DISCORD_OAUTH_AUTHORIZE_URL);
  assert.equal(authorize.searchParams.get('state'), stateCookie.value, 'the state sent is the cookie');
  authorize.searchParams.set('fake_user', OWNER);
  const consent = await fetch(authorize, { redirect: 'manual' });
  const back = new URL(consent.headers.get('location'));
  assert.equal(back.searchParams.get('state'), stateCookie.value);
  c.jar.delete('gh_oauth_state');
  const res = await c.raw('GET', back.pathname + back.search);
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), '/#/login?error=bad_state');
  assert.ok(!c.jar.has('gh_session'));
  assert.equal(securityEvents(h.stack, since, { kind: 'oauth.bad_state', ip: c.ip }).length, 1);
});

test('login: denied at Discord -> /#/login?error=denied, no session', async () => {
  await h.fake.denyOAuth(1);
  const c = apiClient(h.stack);
  let res;
  try {
    res = await c.login({ user: OWNER });
  } finally {
    await h.fake.denyOAuth(0);
  }
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), '/#/login?error=denied');
  assert.ok(!c.jar.has('gh_session'));
  assert.equal(cookieOf(res, 'gh_session'), undefined);
});

test('JWT: a tampered payload is refused (401) and recorded as session.tampered', async () => {
  const c = await owner();
  const good = c.jar.get('gh_session');
  const since = lastSecurityEventId(h.stack);
  const bad = withToken(flipPayload(good));
  const r = await bad.get('/auth/me');
  assertError(r, 401, 'unauthorized');
  const ev = securityEvents(h.stack, since, { kind: 'session.tampered', ip: bad.ip });
  assert.equal(ev.length, 1, JSON.stringify(ev));
  assert.equal(ev[0].path, '/api/v1/auth/me');
  // a signature from another secret, and a truncated signature
  const forged = mintJwt('not-the-session-secret', jwtClaims(good));
  assertError(await withToken(forged).get('/auth/me'), 401, 'unauthorized');
  assertError(await withToken(good.slice(0, -4)).get('/auth/me'), 401, 'unauthorized');
  assertError(await withToken('not-a-jwt').get('/auth/me'), 401, 'unauthorized');
  // the real one still works
  assert.equal((await c.get('/auth/me')).status, 200);
});

test('JWT: expired (valid signature and jti) -> 401 session_expired', async () => {
  const c = await owner();
  const claims = jwtClaims(c.jar.get('gh_session'));
  const now = Math.floor(Date.now() / 1000);
  const expired = mintJwt(h.stack.SESSION_SECRET, { ...claims, iat: now - 90000, exp: now - 3600 });
  const r = await withToken(expired).get('/auth/me');
  assertError(r, 401, 'session_expired');
  // the same claims with a future exp are accepted: only the expiry made the difference
  const fresh = mintJwt(h.stack.SESSION_SECRET, { ...claims, exp: now + 3600 });
  const ok = await withToken(fresh).get('/auth/me');
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.body.user.id, OWNER);
});

test('JWT: alg none (and HS512) is refused even with good claims', async () => {
  const c = await owner();
  const claims = jwtClaims(c.jar.get('gh_session'));
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const since = lastSecurityEventId(h.stack);
  const none = withToken(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`);
  assertError(await none.get('/auth/me'), 401, 'unauthorized');
  const noneSigned = withToken(mintJwt(h.stack.SESSION_SECRET, claims, { alg: 'none', typ: 'JWT' }));
  assertError(await noneSigned.get('/auth/me'), 401, 'unauthorized');
  const hs512 = withToken(mintJwt(h.stack.SESSION_SECRET, claims, { alg: 'HS512', typ: 'JWT' }));
  assertError(await hs512.get('/auth/me'), 401, 'unauthorized');
  assert.equal(securityEvents(h.stack, since, { kind: 'session.tampered', ip: none.ip }).length, 1);
});

test('JWT: a well-signed token whose jti was never issued is refused', async () => {
  const now = Math.floor(Date.now() / 1000);
  const token = mintJwt(h.stack.SESSION_SECRET, {
    sub: OWNER, name: 'olive_owner', jti: 'forgedjti0123456789abcdef', csrf: 'forgedcsrf0123456789abc',
    iat: now, exp: now + 3600,
  });
  const r = await withToken(token).get('/auth/me');
  assert.equal(r.status, 401, r.text);
  assert.ok(['session_revoked', 'unauthorized'].includes(r.body?.error?.code), r.text);
});

test('logout: 204, cookies cleared, the old cookie is refused (session_revoked), revoked_at set', async () => {
  const c = await loginAs(h.stack, OWNER);
  const token = c.jar.get('gh_session');
  const { jti } = jwtClaims(token);
  const out = await c.post('/auth/logout');
  assert.equal(out.status, 204, out.text);
  assert.equal(out.text, '');
  const cleared = parseSetCookies(out.headers);
  for (const name of ['gh_session', 'gh_csrf']) {
    const ck = cleared.find((x) => x.name === name);
    assert.ok(ck, `${name} cleared: ${out.headers.getSetCookie()}`);
    assert.equal(ck.attrs['max-age'], '0');
    assert.equal(ck.value, '');
  }
  assert.ok(!c.jar.has('gh_session'));
  assert.notEqual(sessionRow(jti).revoked_at, null, 'dashboard_sessions.revoked_at set');
  assert.equal(redis(h.stack.REDIS_URL, 'EXISTS', sessionKey(jti)), '0', 'the marker is deleted');

  const since = lastSecurityEventId(h.stack);
  const again = withToken(token);
  assertError(await again.get('/auth/me'), 401, 'session_revoked');
  assert.equal(securityEvents(h.stack, since, { kind: 'session.revoked', ip: again.ip }).length, 1);
  // a revoked session cannot log out again or write either
  assertError(await again.post('/auth/logout', undefined, { headers: { 'X-CSRF-Token': jwtClaims(token).csrf } }),
    401, 'session_revoked');
});

test('session marker: a lost marker is restored from PostgreSQL; a revoked row wins over Redis', async () => {
  const c = await loginAs(h.stack, OWNER);
  const { jti } = jwtClaims(c.jar.get('gh_session'));
  // marker lost (Redis restarted without it): PostgreSQL says live, the marker comes back
  assert.equal(redis(h.stack.REDIS_URL, 'DEL', sessionKey(jti)), '1');
  const r = await c.get('/auth/me');
  assert.equal(r.status, 200, r.text);
  assert.equal(redis(h.stack.REDIS_URL, 'EXISTS', sessionKey(jti)), '1', 'marker restored');
  const ttl = Number(redis(h.stack.REDIS_URL, 'TTL', sessionKey(jti)));
  assert.ok(ttl > 0 && ttl <= 86400, `restored marker has a TTL (${ttl})`);

  // revoked in PostgreSQL (logout seen by another node) and the marker gone: refused
  exec(h.stack.DATABASE_URL, "UPDATE dashboard_sessions SET revoked_at = now() WHERE jti = :'jti'", { jti });
  redis(h.stack.REDIS_URL, 'DEL', sessionKey(jti));
  assertError(await c.get('/auth/me'), 401, 'session_revoked');
  assert.equal(redis(h.stack.REDIS_URL, 'EXISTS', sessionKey(jti)), '0', 'a revoked session gets no marker back');
});

test('CSRF: missing or wrong token on PUT settings and POST logout -> 403 csrf_failed, nothing changed', async (t) => {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, OWNER);
  const c = await loginAs(h.stack, OWNER);
  const gid = g.guild.id;
  const settingsRow = () => query(h.stack.DATABASE_URL,
    "SELECT document::text, version FROM guild_settings WHERE guild_id = :'g' AND feature = 'core'", { g: gid });

  // a GET needs no CSRF token
  const read = await c.get(`/guilds/${gid}/settings/core`, { csrf: false });
  assert.equal(read.status, 200, read.text);
  const before = settingsRow();
  const body = { document: { alert_channel_id: g.channels.modLog.id }, version: read.body.version };
  const since = lastSecurityEventId(h.stack);

  const variants = [
    ['missing', { csrf: false }],
    ['wrong', { headers: { 'X-CSRF-Token': 'x'.repeat(c.csrf.length) } }],
    ['empty', { headers: { 'X-CSRF-Token': '' } }],
    ['other session\'s', { headers: { 'X-CSRF-Token': (await loginAs(h.stack, users.admin.id)).csrf } }],
  ];
  for (const [what, opts] of variants) {
    const r = await c.put(`/guilds/${gid}/settings/core`, body, opts);
    assertError(r, 403, 'csrf_failed');
    assert.deepEqual(settingsRow(), before, `${what} token: guild_settings unchanged`);
  }
  assert.equal(securityEvents(h.stack, since, { kind: 'csrf.failed', ip: c.ip }).length, variants.length);

  const { jti } = jwtClaims(c.jar.get('gh_session'));
  for (const [what, opts] of variants) {
    const r = await c.post('/auth/logout', undefined, opts);
    assertError(r, 403, 'csrf_failed');
    assert.equal(sessionRow(jti).revoked_at, null, `${what} token: the session is not revoked`);
    assert.ok(c.jar.has('gh_session'), `${what} token: no cookie cleared`);
  }
  const me = await c.get('/auth/me');
  assert.equal(me.status, 200, 'the session is still live');

  // with the right token the same PUT goes through
  const ok = await c.put(`/guilds/${gid}/settings/core`, body);
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.body.document.alert_channel_id, g.channels.modLog.id);
  assert.equal(settingsRow()[0].version, ok.body.version);
});
