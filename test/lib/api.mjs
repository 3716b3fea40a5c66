// api.mjs - a client of Guildhall's dashboard API for integration tests.
//
//   import { apiClient, login } from '../lib/api.mjs';
//   const c = await login(stack, { user: users.owner.id });   // the real OAuth2 flow via the fake
//   const r = await c.get(`/guilds/${gid}`);                  // {status, headers, body, text}
//   await c.put(`/guilds/${gid}/settings/core`, { document, version });  // CSRF header added
//
// Each client has its own cookie jar and its own client IP (X-Forwarded-For, trusted from
// loopback by the local stack's nginx), so per-IP rate limits of one test never touch another.
import crypto from 'node:crypto';

let ipSeq = 0;
/** A fresh client address (10.x.y.z) for X-Forwarded-For. */
export function freshIp() {
  ipSeq += 1;
  const r = crypto.randomInt(0, 1 << 16);
  return `10.${(r >> 8) & 255}.${r & 255}.${(ipSeq % 250) + 1}`;
}

function parseSetCookies(headers) {
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
