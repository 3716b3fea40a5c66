// webhooks.mjs - Discord's "Webhook Events" as the fake sends them.
//
// Body: {"version":1,"application_id":"<app>","type":0} for PING, and
// {"version":1,"application_id":"<app>","type":1,"event":{"type":"<EVENT>","timestamp":"<ISO>","data":{...}}}
// for events. Signed like interactions: X-Signature-Ed25519 over
// X-Signature-Timestamp + raw body with the fake's key. Discord expects a 204
// within 3 s (and retries otherwise); the fake sends once and reports what came back.
import { WRONG_SEED_HEX, sign } from '../../lib/signer.mjs';
import { snowflake } from '../../lib/snowflake.mjs';
import { discordTime } from './state.mjs';

export const EVENT_TYPES = Object.freeze(['APPLICATION_AUTHORIZED', 'APPLICATION_DEAUTHORIZED', 'ENTITLEMENT_CREATE', 'ENTITLEMENT_UPDATE', 'ENTITLEMENT_DELETE']);
const MAX_LOG = 2000;
const DAY_MS = 86400 * 1000;

/** The webhook body for PING (type 0) or an event (type 1). */
export function buildEvent(ctx, type, data) {
  if (type === 'PING') return { version: 1, application_id: ctx.applicationId, type: 0 };
  return {
    version: 1, application_id: ctx.applicationId, type: 1,
    event: { type, timestamp: new Date().toISOString(), data: data ?? {} },
  };
}

/** A guild object as GET /guilds/{id} returns it (webhook events and OAuth2 carry it whole). */
export function fullGuild(g) {
  return { ...structuredClone(g.guild), roles: Object.values(g.roles).map((r) => structuredClone(r)), emojis: [], stickers: [] };
}

/** APPLICATION_AUTHORIZED data for a guild install by userId. */
export function authorizedData(ctx, { guildId, userId, scopes }) {
  const g = guildId ? ctx.store.guild(guildId) : null;
  const data = {
    integration_type: g ? 0 : 1,
    user: structuredClone(ctx.store.user(userId)),
    scopes: scopes ?? ['applications.commands', 'bot'],
  };
  if (g) data.guild = fullGuild(g);
  return data;
}

/** Adds the bot to a guild (with its managed role) unless it is there; true when added. */
export function addBotToGuild(ctx, g, permissions) {
  const appId = ctx.applicationId;
  if (g.members[appId]) return false;
  let role = Object.values(g.roles).find((r) => r.managed && r.tags?.bot_id === appId);
  if (!role) {
    // a new integration role sits just above @everyone
    for (const r of Object.values(g.roles)) if (r.position >= 1) r.position += 1;
    const bot = ctx.store.botUser();
    role = {
      id: snowflake(), name: bot.username, position: 1, permissions: String(permissions ?? '0'), color: 0,
      colors: { primary_color: 0, secondary_color: null, tertiary_color: null }, hoist: false, managed: true,
      mentionable: false, icon: null, unicode_emoji: null, flags: 0, description: null, tags: { bot_id: appId },
    };
    g.roles[role.id] = role;
  }
  g.members[appId] = {
    user: structuredClone(ctx.store.botUser()), nick: null, avatar: null, banner: null, roles: [role.id],
    joined_at: discordTime(), premium_since: null, deaf: false, mute: false, flags: 0, pending: false,
    communication_disabled_until: null,
  };
  ctx.store.changed();
  return true;
}

/** A new APPLICATION_SUBSCRIPTION entitlement (stored by the caller). */
export function makeEntitlement(ctx, { guildId, skuId, userId, startsAt, endsAt }) {
  const start = startsAt ?? discordTime();
  return {
    id: snowflake(), sku_id: skuId, application_id: ctx.applicationId, user_id: userId, guild_id: guildId ?? null,
    promotion_id: null, type: 8, deleted: false, gift_code_flags: 0, consumed: false,
    starts_at: start, ends_at: endsAt === undefined ? discordTime(Date.parse(start) + 30 * DAY_MS) : endsAt,
  };
}

function tamperRaw(raw, appId) {
  const needle = `"application_id":"${appId}"`;
  if (raw.includes(needle)) {
    const last = appId.at(-1) === '9' ? '8' : String(Number(appId.at(-1)) + 1);
    return raw.replace(needle, `"application_id":"${appId.slice(0, -1)}${last}"`);
  }
  return `${raw} `;
}

/**
 * Signs and POSTs one webhook body. opts: url, tamper, wrong_key, omit_headers,
 * timestamp, timeout_ms. Resolves to {status, headers, body, sent, raw,
 * signature, timestamp, url, elapsed_ms} or, when unreachable, {status: null, error, sent, ...}.
 * Every delivery is kept in ctx.webhookLog.
 */
export async function deliver(ctx, body, opts = {}) {
  const url = opts.url ?? ctx.webhooksUrl;
  const signed = JSON.stringify(body);
  const ts = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  const signature = sign(signed, ts, opts.wrong_key ? WRONG_SEED_HEX : ctx.seedHex);
  const raw = opts.tamper ? tamperRaw(signed, ctx.applicationId) : signed;
  let sent = raw;
  try { sent = JSON.parse(raw); } catch { /* raw text */ }
  const report = { status: null, headers: {}, body: null, sent, raw, signature, timestamp: ts, url: url ?? null };
  const seq = ++ctx.webhookSeq;
  const log = (r) => {
    ctx.webhookLog.push({ seq, time: Date.now(), type: body.type === 0 ? 'PING' : body.event?.type, ...r });
    if (ctx.webhookLog.length > MAX_LOG) ctx.webhookLog.splice(0, ctx.webhookLog.length - MAX_LOG);
    return r;
  };
  if (!url) return log({ ...report, error: 'no webhook URL: GH_WEBHOOKS_URL is not set and no url was given' });
  const headers = { 'Content-Type': 'application/json', 'User-Agent': 'Discord-Webhook/1.0 (+https://discord.com)' };
  if (!opts.omit_headers) {
    headers['X-Signature-Ed25519'] = signature;
    headers['X-Signature-Timestamp'] = ts;
  }
  const t0 = performance.now();
  try {
    const res = await fetch(url, { method: 'POST', headers, body: raw, signal: AbortSignal.timeout(opts.timeout_ms ?? 10000) });
    const text = await res.text();
    let parsed = text;
    try { parsed = text.length ? JSON.parse(text) : null; } catch { /* text */ }
    report.status = res.status;
    report.headers = Object.fromEntries(res.headers.entries());
    report.body = parsed;
  } catch (e) {
    report.error = `could not reach ${url}: ${e.cause?.message ?? e.message}`;
  }
  report.elapsed_ms = Math.round((performance.now() - t0) * 1000) / 1000;
  return log(report);
}

/** Fire and forget (OAuth2 installs): failures go to stderr and the webhook log. */
export function deliverInBackground(ctx, body, what) {
  deliver(ctx, body).then((r) => {
    if (r.error || r.status !== 204) {
      process.stderr.write(`fake-discord: webhook event ${what} -> ${r.error ?? `status ${r.status}`}\n`);
    }
  }).catch((e) => process.stderr.write(`fake-discord: webhook event ${what} failed: ${e.stack}\n`));
}
