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

  // ---------------------------------------------------------- webhook events
  // Delivery options (opts) everywhere below: url (default GH_WEBHOOKS_URL of
  // the fake), tamper, wrong_key, omit_headers, timestamp (X-Signature-Timestamp).

  /**
   * Signs and POSTs one webhook event: type 'PING', 'APPLICATION_AUTHORIZED',
   * 'ENTITLEMENT_CREATE'|'_UPDATE'|'_DELETE'; data (the event's data; for
   * APPLICATION_AUTHORIZED built from opts.guild_id/user_id when omitted).
   * Returns {status, headers, body, sent, raw, signature, timestamp}.
   */
  webhookEvent(type, data, opts = {}) {
    return this.call('POST', '/_fake/webhook-event', { type, data, ...opts });
  }

  /** Webhook events the fake sent (since = a seq from an earlier entry). */
  webhookEvents(since) {
    return this.call('GET', `/_fake/webhook-events${since === undefined ? '' : `?since=${since}`}`);
  }

  /** Bot joins guildId (if missing) and APPLICATION_AUTHORIZED by userId is sent; the report plus {added}. */
  install(guildId, userId, opts = {}) {
    return this.call('POST', '/_fake/install', { guild_id: guildId, user_id: userId, ...opts });
  }

  /** {guild_id, sku_id, user_id?, starts_at?, ends_at?} -> {entitlement, delivery} (ENTITLEMENT_CREATE). */
  createEntitlement(ent, opts = {}) {
    return this.call('POST', '/_fake/entitlements', { ...ent, ...opts });
  }

  /** {ends_at?, starts_at?} -> {entitlement, delivery} (ENTITLEMENT_UPDATE). */
  updateEntitlement(id, patch, opts = {}) {
    return this.call('PATCH', `/_fake/entitlements/${id}`, { ...patch, ...opts });
  }

  /** Marks it deleted -> {entitlement, delivery} (ENTITLEMENT_DELETE). */
  deleteEntitlement(id, opts = {}) {
    return this.call('DELETE', `/_fake/entitlements/${id}`, Object.keys(opts).length ? opts : undefined);
  }

  /** Every entitlement in the fake, deleted ones included. */
  entitlements() { return this.call('GET', '/_fake/entitlements'); }

  // ------------------------------------------------------------------ OAuth2
  /** A Bearer token for userId without the browser round trip. */
  oauthToken(userId, scope) { return this.call('POST', '/_fake/oauth/token', { user_id: userId, scope }); }

  /** Who the authorize page consents as without ?fake_user (null: the demo guild's owner). Reset restores it. */
  setOAuthUser(userId) { return this.call('POST', '/_fake/oauth/default-user', { user_id: userId }); }

  /** The next `count` authorize calls redirect with error=access_denied (0 clears). */
  denyOAuth(count = 1) { return this.call('POST', '/_fake/oauth/deny', { count }); }

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
