// api.mjs - a client of Guildhall's dashboard API for integration tests.
//
//   import { apiClient, login } from '../lib/api.mjs';
//   const c = await login(stack, { user: users.owner.id });   // the real OAuth2 flow via the fake
//   const r = await c.get(`/guilds/${gid}`);                  // {status, headers, body, text}
//   await c.put(`/guilds/${gid}/settings/core`, { document, version });  // CSRF header added
//
// Each client has its own cookie jar and its own client IP (X-Forwarded-For, trusted from
// loopback by the local stack's nginx), so per-IP rate limits of one test never touch another.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { query } from './store.mjs';
import { waitFor } from './wait.mjs';

let ipSeq = 0;
/** A fresh client address (10.x.y.z) for X-Forwarded-For. */
export function freshIp() {
  ipSeq += 1;
  const r = crypto.randomInt(0, 1 << 16);
  return `10.${(r >> 8) & 255}.${r & 255}.${(ipSeq % 250) + 1}`;
}

/** Set-Cookie lines of a response as [{name, value, attrs: {lowercased attribute: value|true}, raw}]. */
export function parseSetCookies(headers) {
  const list = typeof headers.getSetCookie === 'function' ? headers.getSetCookie() : [];
  return list.map((line) => {
    const [pair, ...attrs] = line.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    const out = { name: pair.slice(0, eq), value: pair.slice(eq + 1), attrs: {}, raw: line };
    for (const a of attrs) {
      const i = a.indexOf('=');
      out.attrs[(i < 0 ? a : a.slice(0, i)).toLowerCase()] = i < 0 ? true : a.slice(i + 1);
    }
    return out;
  });
}

export class ApiClient {
  constructor(stack, { ip = freshIp() } = {}) {
    this.base = stack.GH_HTTP_URL.replace(/\/$/, '');
    this.stack = stack;
    this.ip = ip;
    this.jar = new Map();
    this.csrf = null;
    this.lastSetCookies = [];
  }

  cookieHeader() {
    return [...this.jar.entries()].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  absorb(res) {
    this.lastSetCookies = parseSetCookies(res.headers);
    for (const c of this.lastSetCookies) {
      if (c.attrs['max-age'] === '0' || c.value === '') this.jar.delete(c.name);
      else this.jar.set(c.name, c.value);
    }
    if (this.jar.has('gh_csrf')) this.csrf = this.jar.get('gh_csrf');
  }

  /** Raw request to a path on the site (not only /api/v1); never follows redirects. */
  async raw(method, path, { body, headers = {}, csrf = true } = {}) {
    const h = { 'X-Forwarded-For': this.ip, ...headers };
    const cookies = this.cookieHeader();
    if (cookies && !('Cookie' in h)) h.Cookie = cookies;
    let payload;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      h['Content-Type'] ??= 'application/json';
    }
    if (csrf && this.csrf && method !== 'GET' && !('X-CSRF-Token' in h)) h['X-CSRF-Token'] = this.csrf;
    const url = path.startsWith('http') ? path : `${this.base}${path}`;
    const res = await fetch(url, { method, headers: h, body: payload, redirect: 'manual' });
    this.absorb(res);
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    return { status: res.status, headers: res.headers, body: json, text };
  }

  api(method, path, opts) { return this.raw(method, `/api/v1${path}`, opts); }
  get(path, opts) { return this.api('GET', path, opts); }
  post(path, body, opts = {}) { return this.api('POST', path, { ...opts, body }); }
  put(path, body, opts = {}) { return this.api('PUT', path, { ...opts, body }); }
  del(path, opts) { return this.api('DELETE', path, opts); }

  /**
   * The whole Discord login: /auth/discord/login -> the fake's authorize page (consents as
   * `user`) -> /auth/discord/callback. Returns the callback's answer (302 and its Location).
   * opts.tamperState sends a different state back; opts.install adds the bot-install scope.
   */
  async login({ user, next, tamperState = false, guildId } = {}) {
    const start = guildId
      ? await this.get(`/auth/discord/install?guild_id=${guildId}`)
      : await this.get(`/auth/discord/login${next ? `?next=${encodeURIComponent(next)}` : ''}`);
    if (start.status !== 302) throw new Error(`login start answered ${start.status}: ${start.text}`);
    const authorize = new URL(start.headers.get('location'));
    if (user) authorize.searchParams.set('fake_user', user);
    const consent = await fetch(authorize, { redirect: 'manual' });
    const back = consent.headers.get('location');
    if (consent.status !== 302 || !back) throw new Error(`fake authorize answered ${consent.status}`);
    const cb = new URL(back);
    if (tamperState) cb.searchParams.set('state', 'x'.repeat(32));
    const res = await this.raw('GET', cb.pathname + cb.search);
    if (this.jar.has('gh_session')) {
      const me = await this.get('/auth/me');
      if (me.status === 200) this.csrf = me.body.csrf_token;
    }
    return res;
  }
}

export function apiClient(stack, opts) {
  return new ApiClient(stack, opts);
}

/** A logged-in client for `user` (throws when the login does not end in a session). */
export async function login(stack, { user, ip } = {}) {
  const c = new ApiClient(stack, { ip });
  const res = await c.login({ user });
  if (!c.jar.has('gh_session')) throw new Error(`login of ${user} failed: ${res.status} ${res.headers.get('location')}`);
  return c;
}

/** Makes Guildhall know a guild the fake has: the fake sends APPLICATION_AUTHORIZED. */
export async function installGuild(fake, guildId, userId) {
  const res = await fetch(`${fake.base}/_fake/install`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ guild_id: guildId, user_id: userId }),
  });
  const out = await res.json();
  if (out.status !== 204) throw new Error(`install of ${guildId} answered ${out.status}: ${JSON.stringify(out.body)}`);
  return out;
}

/** HS256 JWT signed with the stack's SESSION_SECRET (for expired/forged-session tests). */
export function mintJwt(secret, claims, header = { alg: 'HS256', typ: 'JWT' }) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64(header)}.${b64(claims)}`;
  const sig = crypto.createHmac('sha256', secret).update(head).digest('base64url');
  return `${head}.${sig}`;
}

// ---------------------------------------------------------------------------
// Additions for the API security tests (api_*.test.mjs). Nothing above changes.

const lastLoginAt = new Map(); // user id -> when this process last completed a login of that user

/**
 * client.login(opts) for a login that should succeed, paced and retried for the fake Discord's
 * rate limits (Discord's own): one GET /users/@me/guilds per second per user, so logins of one
 * user are spaced by a second; and ten POST /oauth2/token per 10 s for the whole application,
 * so a callback refused with error=exchange_failed or discord_unavailable (what Guildhall
 * answers when Discord says 429) is tried again each second until `timeout`. Returns the last
 * callback answer.
 */
export async function loginRetry(client, opts = {}, { timeout = 30000 } = {}) {
  const user = opts.user ?? '';
  let res = null;
  await waitFor(async () => {
    const wait = (lastLoginAt.get(user) ?? 0) + 1100 - Date.now();
    if (wait > 0) await new Promise((r) => { setTimeout(r, wait); }); // pacing, not waiting for an effect
    try {
      res = await client.login(opts);
    } finally {
      lastLoginAt.set(user, Date.now());
    }
    return !/error=(discord_unavailable|exchange_failed)/.test(res.headers.get('location') ?? '');
  }, { timeout, interval: 1000, message: `a login of ${user || 'the default user'} not refused for Discord's rate limits` });
  return res;
}

/** A logged-in client for user (like login(), with loginRetry); opts.ip picks its address. */
export async function loginAs(stack, user, { ip } = {}) {
  const c = new ApiClient(stack, { ip });
  const res = await loginRetry(c, { user });
  if (!c.jar.has('gh_session') || !c.csrf) {
    throw new Error(`login of ${user} failed: ${res.status} ${res.headers.get('location')}`);
  }
  return c;
}

/** The API's route table (`guildhall-api --routes`): [{method, path, needs, premium_rank, rate_limit, summary}]. */
export function apiRoutes(stack) {
  const bin = path.join(stack.GH_BIN ?? path.join(stack.GH_REPO ?? '.', 'build', 'bin'), 'guildhall-api');
  return JSON.parse(execFileSync(bin, ['--routes'], { encoding: 'utf8', timeout: 10000 }));
}

/** What a route needs once implied needs are added (guild_admin -> guild -> session, developer -> session). */
export function effectiveNeeds(route) {
  const n = new Set(route.needs);
  if (n.has('guild_admin')) n.add('guild');
  if (n.has('guild') || n.has('developer')) n.add('session');
  return n;
}

/** The payload (claims) of a JWT, unverified. */
export function jwtClaims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

/** Highest security_events id so far (0 when none): pass it to securityEvents as sinceId. */
export function lastSecurityEventId(stack) {
  return Number(query(stack.DATABASE_URL, 'SELECT coalesce(max(id), 0)::text AS id FROM security_events')[0].id);
}

/**
 * security_events rows newer than sinceId, optionally filtered by kind, guildId, userId, ip;
 * ids and snowflakes as strings.
 */
export function securityEvents(stack, sinceId, { kind, guildId, userId, ip } = {}) {
  const where = ['id > :\'since\'::bigint'];
  const params = { since: String(sinceId) };
  if (kind) { where.push('kind = :\'kind\''); params.kind = kind; }
  if (guildId) { where.push('guild_id = :\'gid\'::bigint'); params.gid = guildId; }
  if (userId) { where.push('user_id = :\'uid\'::bigint'); params.uid = userId; }
  if (ip) { where.push('ip = :\'ip\''); params.ip = ip; }
  return query(stack.DATABASE_URL,
    `SELECT id::text, guild_id::text, user_id::text, ip, kind, method, path, detail, corr FROM security_events
      WHERE ${where.join(' AND ')} ORDER BY id`, params);
}

// ---------------------------------------------------------------------------
// Additions for the dashboard feature tests (api_settings, api_access, api_premium,
// api_toggle_e2e). Nothing above changes.
import { exec as storeExec, redis as storeRedis } from './store.mjs';

const sessionCache = new Map(); // "<http url> <user id>" -> logged-in client (one per test process)

/**
 * A logged-in client for user, shared by the tests of one file (node:test runs each file in
 * a process of its own): Discord rate-limits logins, a session lasts 24 h. Tests that need a
 * guild created after the login in the user's guild list call refreshGuilds.
 */
export async function sessionFor(stack, user) {
  const key = `${stack.GH_HTTP_URL} ${user}`;
  if (!sessionCache.has(key)) sessionCache.set(key, loginAs(stack, user));
  try {
    return await sessionCache.get(key);
  } catch (e) {
    sessionCache.delete(key);
    throw e;
  }
}

/**
 * Makes Guildhall read the logged-in user's guild list from Discord again, as it does when
 * the stored copy is older than 10 minutes (dashboard_users.guilds_fetched_at aged, the Redis
 * copy bot:{global}:dash:guilds:<user> dropped), until the stored list (what Discord answered,
 * managed or not) holds every id of guildIds. Discord allows one GET /users/@me/guilds per
 * second per user; a refused refresh keeps the old list, so this tries again until `timeout`.
 * Returns the last GET /guilds answer.
 */
export async function refreshGuilds(client, guildIds, { timeout = 30000 } = {}) {
  const ids = [guildIds].flat();
  const me = await client.get('/auth/me');
  if (me.status !== 200) throw new Error(`refreshGuilds: /auth/me answered ${me.status}: ${me.text}`);
  const uid = me.body.user.id;
  const db = client.stack.DATABASE_URL;
  let last = null;
  await waitFor(async () => {
    storeExec(db, "UPDATE dashboard_users SET guilds_fetched_at = now() - interval '1 day' WHERE id = :'u'", { u: uid });
    storeRedis(client.stack.REDIS_URL, 'DEL', `bot:{global}:dash:guilds:${uid}`);
    last = await client.get('/guilds');
    if (last.status !== 200) return false;
    const stored = query(db, "SELECT e->>'id' AS id FROM dashboard_users u, jsonb_array_elements(u.guilds) e WHERE u.id = :'u'", { u: uid });
    const have = new Set(stored.map((r) => r.id));
    return ids.every((id) => have.has(id));
  }, { timeout, interval: 250, message: `user ${uid}'s guild list (from Discord) to hold ${ids.join(', ')}` });
  return last;
}
