// fake.mjs - a small client for the fake Discord's /_fake/ control API.
import { waitFor } from './wait.mjs';

export class FakeDiscord {
  constructor(baseUrl) {
    this.base = baseUrl.replace(/\/$/, '').replace(/\/api\/v10$/, '');
  }

  async call(method, path, body) {
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let data = text;
    try { data = text ? JSON.parse(text) : null; } catch { /* keep text */ }
    if (!res.ok) throw new Error(`fake ${method} ${path} -> ${res.status}: ${text.slice(0, 300)}`);
    return data;
  }

  health() { return this.call('GET', '/_fake/health'); }
  state() { return this.call('GET', '/_fake/state'); }
  reset() { return this.call('POST', '/_fake/reset'); }
  clearRequests() { return this.call('DELETE', '/_fake/requests'); }
  addGuild(guild) { return this.call('POST', '/_fake/guilds', { guild }); }
  sign(body, timestamp) { return this.call('POST', '/_fake/sign', { body, timestamp }); }
  /** Makes the next matching calls fail: {method?, path_re, status, count?, retry_after?, global?, scope?, body?} */
  fail(rule) { return this.call('POST', '/_fake/fail', rule); }
  clearFails() { return this.call('DELETE', '/_fake/fail'); }

  /** Requests the fake received: {method, path (prefix), path_re, since}. */
  requests(filter = {}) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) if (v !== undefined && v !== null) q.set(k, String(v));
    return this.call('GET', `/_fake/requests?${q}`);
  }

  /** The highest request seq so far (use as `since` to see only newer ones). */
  async seq() { return (await this.health()).requests; }

  /**
   * Signs body (an interaction; id/token/application_id filled when missing)
   * and posts it to Guildhall. opts: timestamp, tamper, sign_with_wrong_key,
   * omit_headers, raw_body, token_ttl_ms. Returns {status, headers, body,
   * interaction: {id, token}, response_valid, response_errors, has_allowed_mentions, ...}.
   */
  interaction(body, opts = {}) {
    return this.call('POST', '/_fake/interaction', { body, ...opts });
  }

  /** Polls until `count` requests match filter; returns them. */
  async waitForRequests(filter, { count = 1, timeout = 15000, message } = {}) {
    return waitFor(async () => {
      const list = await this.requests(filter);
      return list.length >= count ? list : null;
    }, { timeout, message: message ?? `${count} request(s) to the fake matching ${JSON.stringify(filter)}` });
  }
}

/** Webhook path prefix of an interaction (follow-ups and @original). */
export function webhookPath(applicationId, token) {
  return `/api/v10/webhooks/${applicationId}/${token}`;
}

export function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
