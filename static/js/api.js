// api.js - the one way the dashboard talks to /api/v1 (docs/api.md).
//
// Credentials are the same-origin cookies; the CSRF token from /auth/me is
// kept in memory and sent on every state-changing request. Failures become
// ApiError, which ui.js turns into words that say what to do.

const BASE = '/api/v1';
const session = { me: null, csrf: null, onUnauthorized: null };

export class ApiError extends Error {
  constructor(status, code, message, extra = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.fields = Array.isArray(extra.fields) ? extra.fields : [];
    this.upgradeUrl = extra.upgradeUrl ?? null;
    this.retryAfter = extra.retryAfter ?? null;
  }
}

export function getSession() { return session; }

export function setMe(me) {
  session.me = me;
  session.csrf = me?.csrf_token ?? null;
}

/** fn() is called when a request of a signed-in user answers 401. */
export function onUnauthorized(fn) { session.onUnauthorized = fn; }

function cookieCsrf() {
  const m = /(?:^|;\s*)gh_csrf=([^;]+)/.exec(document.cookie);
  return m ? decodeURIComponent(m[1]) : null;
}

/**
 * Calls the API. opts: method (GET), body (JSON-encoded), signal. Resolves
 * with the parsed JSON (null for an empty answer); rejects with ApiError
 * (status 0 for a network failure) or the AbortError of signal.
 */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') {
    const token = session.csrf ?? cookieCsrf();
    if (token) headers['X-CSRF-Token'] = token;
  }
  let res;
  try {
    res = await fetch(BASE + path, {
      method, headers, signal, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'Guildhall could not be reached.');
  }
  let text = '';
  try { text = await res.text(); } catch (e) {
    if (e?.name === 'AbortError') throw e;
  }
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = null; } }
  if (res.ok) return data;

  const err = data && typeof data.error === 'object' && data.error ? data.error : {};
  const retry = Number.parseInt(res.headers.get('Retry-After') ?? '', 10);
  const e = new ApiError(res.status, typeof err.code === 'string' ? err.code : `http_${res.status}`,
    typeof err.message === 'string' ? err.message : '', {
      fields: err.fields, upgradeUrl: err.upgrade_url, retryAfter: Number.isFinite(retry) ? retry : null,
    });
  if (res.status === 401 && session.me && session.onUnauthorized) {
    session.me = null;
    session.csrf = null;
    queueMicrotask(session.onUnauthorized);
  }
  throw e;
}

export const get = (path, signal) => api(path, { signal });
export const post = (path, body, signal) => api(path, { method: 'POST', body, signal });
export const put = (path, body, signal) => api(path, { method: 'PUT', body, signal });
export const del = (path, signal) => api(path, { method: 'DELETE', signal });

/** /health is outside /api/v1. Resolves with its JSON or null. */
export async function health() {
  try {
    const res = await fetch('/health', { headers: { Accept: 'application/json' }, cache: 'no-store' });
    const data = await res.json().catch(() => null);
    return { ok: res.ok, data };
  } catch {
    return { ok: false, data: null };
  }
}
