// control.mjs - the fake's control API under /_fake/ (tests drive the fake here).
//
//   GET    /_fake/health                 {ok, uptime_s, requests, port}
//   GET    /_fake/requests               ?method=&path=<prefix>&path_re=<regex>&since=<seq>&limit=
//   DELETE /_fake/requests               clears the log (seq keeps counting)
//   POST   /_fake/fail                   {method?, path_re, status, count?, retry_after?, global?, scope?, body?}
//   GET    /_fake/fail, DELETE /_fake/fail
//   POST   /_fake/reset                  state back to the seed; clears fail rules and buckets
//   GET    /_fake/state                  guilds, members, roles, channels, messages, bans, commands, ...
//   POST   /_fake/guilds                 {guild: makeGuild() object} adds a guild
//   POST   /_fake/interaction            signs and POSTs an interaction to Guildhall
//   GET    /_fake/interactions           ?since=<seq>: interactions sent and how they were answered
//   POST   /_fake/webhook-event          {type, data?, guild_id?, user_id?, url?, tamper?, wrong_key?, omit_headers?, timestamp?}
//   GET    /_fake/webhook-events         ?since=<seq>: webhook events sent and how they were answered
//   POST   /_fake/install                {guild_id, user_id, permissions?, scopes?}: bot joins, APPLICATION_AUTHORIZED
//   POST   /_fake/entitlements           {guild_id, sku_id, user_id?, starts_at?, ends_at?}: ENTITLEMENT_CREATE
//   PATCH  /_fake/entitlements/{id}      {ends_at?, starts_at?}: ENTITLEMENT_UPDATE
//   DELETE /_fake/entitlements/{id}      marks deleted: ENTITLEMENT_DELETE
//   GET    /_fake/entitlements           all entitlements, deleted included
//   POST   /_fake/oauth/token            {user_id, scope?}: a Bearer token without the browser
//   POST   /_fake/oauth/default-user     {user_id|null}: who the authorize page consents as
//   POST   /_fake/oauth/deny             {count=1}: the next authorize calls redirect with error=access_denied
//   POST   /_fake/users/{id}/dms         {closed=true}: the user's DMs closed (messages -> 403 50007) or open again
//   POST   /_fake/sign                   {body: string, timestamp?, wrong_key?} -> {signature, timestamp}
//   POST   /_fake/oauth/token            {user_id, scope?} -> a Bearer token without the browser dance
import { DEMO_GUILD_ID, interactionToken } from '../../lib/fixtures.mjs';
import { sign, WRONG_SEED_HEX } from '../../lib/signer.mjs';
import { snowflake } from '../../lib/snowflake.mjs';
import { validateBody, toFlat } from './validate.mjs';
import { acknowledge, issueTokens, publicMessage, reply, TOKEN_TTL_MS } from './routes.mjs';
import { addBotToGuild, authorizedData, buildEvent, deliver, EVENT_TYPES, makeEntitlement } from './webhooks.mjs';

const FAIL_STATUSES = new Set([401, 403, 404, 429, 500, 502, 503]);

function bad(message) {
  return reply(400, { error: message });
}

function filterRequests(log, q) {
  let re = null;
  if (q.path_re) {
    try { re = new RegExp(q.path_re); } catch (e) { return { error: `path_re: ${e.message}` }; }
  }
  const since = q.since !== undefined ? Number(q.since) : -1;
  let out = log.filter((r) => r.seq > since
    && (!q.method || r.method === String(q.method).toUpperCase())
    && (!q.path || r.path.startsWith(q.path))
    && (!re || re.test(r.path)));
  if (q.limit) out = out.slice(-Number(q.limit));
  return { list: out };
}

function stateView(store) {
  const st = store.st;
  const view = { guilds: [], members: {}, roles: {}, channels: {}, bans: {}, messages: {}, commands: st.commands, audit_log: st.audit_log, interactions: [], dm_channels: Object.values(st.dm_channels ?? {}), dms_closed: Object.keys(st.dms_closed ?? {}) };
  for (const g of Object.values(st.guilds)) {
    const gid = g.guild.id;
    view.guilds.push(g.guild);
    view.members[gid] = Object.values(g.members);
    view.roles[gid] = Object.values(g.roles).sort((a, b) => a.position - b.position);
    view.channels[gid] = Object.values(g.channels);
    view.bans[gid] = Object.values(g.bans);
  }
  for (const [ch, msgs] of Object.entries(st.messages)) {
    view.messages[ch] = Object.values(msgs).sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  }
  for (const ix of Object.values(st.interactions)) {
    view.interactions.push({
      id: ix.id, token: ix.token, type: ix.type, guild_id: ix.guild_id, channel_id: ix.channel_id, state: ix.state,
      ack: ix.ack, created_at: ix.created_at, expires_at: ix.expires_at, original: ix.original,
      followups: Object.values(ix.followups), original_deleted: Boolean(ix.original_deleted),
    });
  }
  return view;
}

function tamperRaw(raw, id) {
  const needle = `"id":"${id}"`;
  if (raw.includes(needle)) {
    const last = id.at(-1) === '9' ? '8' : String(Number(id.at(-1)) + 1);
    return raw.replace(needle, `"id":"${id.slice(0, -1)}${last}"`);
  }
  return `${raw} `;
}

/** Signs and sends one interaction to Guildhall; returns what it answered. */
async function sendInteraction(ctx, b) {
  if (!b || typeof b !== 'object' || (!b.body && b.raw_body === undefined)) return bad('body (object) or raw_body (string) required');
  const url = b.url ?? ctx.interactionsUrl;
  if (!url) return bad('GH_INTERACTIONS_URL is not set and no url was given');
  const body = b.body ? structuredClone(b.body) : {};
  body.id ??= snowflake();
  body.application_id ??= ctx.applicationId;
  body.token ??= interactionToken(body.id);
  body.version ??= 1;
  const raw = b.raw_body ?? JSON.stringify(body);
  const ts = String(b.timestamp ?? Math.floor(Date.now() / 1000));
  const signature = sign(raw, ts, b.sign_with_wrong_key ? WRONG_SEED_HEX : ctx.seedHex);
  const sent = b.tamper ? tamperRaw(raw, body.id) : raw;
  const headers = { 'Content-Type': 'application/json', 'User-Agent': 'Discord-Interactions/1.0 (+https://discord.com)' };
  if (!b.omit_headers) {
    headers['X-Signature-Ed25519'] = signature;
    headers['X-Signature-Timestamp'] = ts;
  }
  Object.assign(headers, b.headers ?? {});

  const now = Date.now();
  const store = ctx.store;
  const ix = {
    id: body.id, token: body.token, application_id: body.application_id, type: body.type,
    guild_id: body.guild_id ?? null, channel_id: body.channel_id ?? body.channel?.id ?? null,
    user: body.member?.user ?? body.user ?? null, command_name: body.data?.name ?? null,
    message: body.message ?? null, created_at: now,
    expires_at: now + (Number.isFinite(b.token_ttl_ms) ? b.token_ttl_ms : TOKEN_TTL_MS),
    state: 'pending', ack: null, original: null, followups: {}, followup_count: 0,
  };
  store.st.interactions[ix.token] = ix;
  store.pruneInteractions(now);

  const seq = ++ctx.interactionSeq;
  const t0 = performance.now();
  let res;
  let text = '';
  try {
    res = await fetch(url, { method: 'POST', headers, body: sent, signal: AbortSignal.timeout(b.timeout_ms ?? 10000) });
    text = await res.text();
  } catch (e) {
    ix.state = 'failed';
    store.settle(ix.token);
    const entry = { seq, time: now, interaction: { id: ix.id, token: ix.token }, error: String(e.cause?.message ?? e.message) };
    ctx.interactionLog.push(entry);
    return reply(502, { error: `could not reach ${url}: ${entry.error}`, interaction: entry.interaction });
  }
  const elapsed = performance.now() - t0;
  let parsed = text;
  try { parsed = text.length ? JSON.parse(text) : null; } catch { /* text */ }
  const resHeaders = Object.fromEntries(res.headers.entries());
  const out = {
    status: res.status, headers: resHeaders, body: parsed, elapsed_ms: Math.round(elapsed * 1000) / 1000,
    interaction: { id: ix.id, token: ix.token, application_id: ix.application_id }, response_valid: null,
    response_errors: [], has_allowed_mentions: false,
  };
  if (res.status === 200 && parsed && typeof parsed === 'object') {
    const v = validateBody('InteractionCallbackRequest', parsed);
    out.response_valid = v.issues.length === 0 && !v.empty;
    out.response_errors = v.empty ? [{ path: 'data', code: '50006', message: 'Cannot send an empty message' }] : toFlat(v.issues);
    out.has_allowed_mentions = Boolean(parsed.data && typeof parsed.data === 'object' && 'allowed_mentions' in parsed.data);
    if (!/^application\/json/i.test(resHeaders['content-type'] ?? '')) {
      out.response_valid = false;
      out.response_errors.push({ path: '', code: 'CONTENT_TYPE', message: 'the response needs Content-Type: application/json' });
    }
    if (elapsed > 3000) {
      out.late = true;
      ix.state = 'failed';
      store.settle(ix.token);
    } else if (out.response_valid) {
      acknowledge(ctx, ix, parsed, 'http');
    } else {
      ix.state = 'failed';
      store.settle(ix.token);
    }
  } else if (res.status === 202) {
    // answered through POST /interactions/{id}/{token}/callback
  } else {
    ix.state = 'failed';
    store.settle(ix.token);
  }
  out.state = ix.state;
  if (ix.original) out.original = publicMessage(ix.original);
  ctx.interactionLog.push({ seq, time: now, ...out, headers: undefined });
  if (ctx.interactionLog.length > 2000) ctx.interactionLog.splice(0, ctx.interactionLog.length - 2000);
  store.changed();
  return reply(200, out);
}

// ------------------------------------------------------------ webhook events
const SNOWFLAKE_RE = /^[1-9][0-9]{5,19}$/;
const DELIVERY_OPTS = ['url', 'tamper', 'wrong_key', 'omit_headers', 'timestamp', 'timeout_ms'];
const deliveryOpts = (b) => Object.fromEntries(DELIVERY_OPTS.filter((k) => b?.[k] !== undefined).map((k) => [k, b[k]]));

/** 200 with the delivery report, 502 (same report plus error) when the receiver was unreachable. */
function deliveryReply(report, extra = {}) {
  // error first: clients that print the start of the body show the cause
  return reply(report.error ? 502 : 200, report.error ? { error: report.error, ...report, ...extra } : { ...report, ...extra });
}

async function sendWebhookEvent(ctx, b) {
  if (!b || typeof b !== 'object') return bad('JSON body required');
  const type = b.type;
  if (type !== 'PING' && !EVENT_TYPES.includes(type)) return bad(`type must be PING or one of ${EVENT_TYPES.join(', ')}`);
  if (!b.url && !ctx.webhooksUrl) return bad('GH_WEBHOOKS_URL is not set and no url was given');
  let data = b.data;
  if (type !== 'PING' && data === undefined) {
    if (type !== 'APPLICATION_AUTHORIZED') return bad(`data required for ${type}`);
    const guildId = b.guild_id ?? DEMO_GUILD_ID;
    const g = ctx.store.guild(guildId);
    if (!g) return bad(`guild ${guildId} is not known`);
    const userId = b.user_id ?? g.guild.owner_id;
    if (!ctx.store.user(userId)) return bad(`user ${userId} is not known`);
    data = authorizedData(ctx, { guildId, userId, scopes: b.scopes });
  }
  const r = await deliver(ctx, buildEvent(ctx, type, data), deliveryOpts(b));
  return deliveryReply(r);
}

async function install(ctx, b) {
  if (!b || typeof b !== 'object') return bad('JSON body required');
  const g = ctx.store.guild(b.guild_id);
  if (!g) return bad('guild_id of a known guild required (add it with POST /_fake/guilds)');
  if (!b.user_id || !ctx.store.user(b.user_id)) return bad('user_id of a known user required');
  if (b.permissions !== undefined && !/^[0-9]{1,20}$/.test(String(b.permissions))) return bad('permissions must be a decimal string');
  const added = addBotToGuild(ctx, g, b.permissions);
  const data = authorizedData(ctx, { guildId: b.guild_id, userId: b.user_id, scopes: b.scopes });
  const r = await deliver(ctx, buildEvent(ctx, 'APPLICATION_AUTHORIZED', data), deliveryOpts(b));
  return deliveryReply(r, { added });
}

function checkTime(b, k) {
  if (b[k] === undefined || b[k] === null) return null;
  if (typeof b[k] !== 'string' || Number.isNaN(Date.parse(b[k]))) return `${k} must be an ISO 8601 date-time or null`;
  return null;
}

async function entitlementEvent(ctx, type, e, b) {
  const delivery = await deliver(ctx, buildEvent(ctx, type, structuredClone(e)), deliveryOpts(b));
  return reply(200, { entitlement: structuredClone(e), delivery });
}

async function entitlementRoute(ctx, method, id, b) {
  const ents = ctx.store.st.entitlements;
  if (method === 'GET' && id === null) return reply(200, Object.values(ents));
  if (method === 'POST' && id === null) {
    if (!b || typeof b !== 'object') return bad('JSON body required');
    if (!ctx.store.guild(b.guild_id)) return bad('guild_id of a known guild required');
    if (typeof b.sku_id !== 'string' || !SNOWFLAKE_RE.test(b.sku_id)) return bad('sku_id (snowflake string) required');
    if (b.user_id !== undefined && !ctx.store.user(b.user_id)) return bad('user_id must be a known user');
    const err = checkTime(b, 'starts_at') ?? checkTime(b, 'ends_at');
    if (err) return bad(err);
    // Discord fills user_id (the buyer) on guild subscriptions too; default: the guild's owner
    const e = makeEntitlement(ctx, {
      guildId: b.guild_id, skuId: b.sku_id, userId: b.user_id ?? ctx.store.guild(b.guild_id).guild.owner_id,
      startsAt: b.starts_at ?? undefined, endsAt: b.ends_at,
    });
    ents[e.id] = e;
    ctx.store.changed();
    return entitlementEvent(ctx, 'ENTITLEMENT_CREATE', e, b);
  }
  const e = id !== null ? ents[id] : null;
  if (!e) return reply(404, { error: `no entitlement ${id}` });
  if (method === 'GET') return reply(200, e);
  if (method === 'PATCH') {
    if (!b || typeof b !== 'object' || (b.ends_at === undefined && b.starts_at === undefined)) return bad('ends_at and/or starts_at required');
    const err = checkTime(b, 'starts_at') ?? checkTime(b, 'ends_at');
    if (err) return bad(err);
    if (b.starts_at !== undefined) e.starts_at = b.starts_at;
    if (b.ends_at !== undefined) e.ends_at = b.ends_at;
    ctx.store.changed();
    return entitlementEvent(ctx, 'ENTITLEMENT_UPDATE', e, b);
  }
  if (method === 'DELETE') {
    e.deleted = true;
    ctx.store.changed();
    return entitlementEvent(ctx, 'ENTITLEMENT_DELETE', e, b);
  }
  return reply(405, { error: `${method} not allowed on /_fake/entitlements` });
}

export async function handleControl(ctx, req) {
  const { method, path, query } = req;
  const b = req.body;
  switch (`${method} ${path}`) {
    case 'GET /_fake/health':
      return reply(200, { ok: true, uptime_s: Math.round(process.uptime()), requests: ctx.seq, port: ctx.port, application_id: ctx.applicationId });
    case 'GET /_fake/requests': {
      const r = filterRequests(ctx.log, query);
      return r.error ? bad(r.error) : reply(200, r.list);
    }
    case 'DELETE /_fake/requests':
      ctx.log.length = 0;
      return reply(200, { cleared: true, seq: ctx.seq });
    case 'POST /_fake/fail': {
      if (!b || typeof b !== 'object') return bad('JSON body required');
      if (!FAIL_STATUSES.has(b.status)) return bad(`status must be one of ${[...FAIL_STATUSES].join(', ')}`);
      if (typeof b.path_re !== 'string') return bad('path_re (string) required');
      let re;
      try { re = new RegExp(b.path_re); } catch (e) { return bad(`path_re: ${e.message}`); }
      const rule = {
        id: ++ctx.failSeq, method: b.method ? String(b.method).toUpperCase() : null, path_re: b.path_re, re,
        status: b.status, count: Number.isInteger(b.count) && b.count > 0 ? b.count : 1,
        retry_after: typeof b.retry_after === 'number' ? b.retry_after : 1, global: Boolean(b.global),
        scope: b.scope ?? (b.global ? 'global' : 'user'), body: b.body ?? null,
      };
      ctx.fails.push(rule);
      const { re: _re, ...shown } = rule;
      return reply(200, shown);
    }
    case 'GET /_fake/fail':
      return reply(200, ctx.fails.map(({ re, ...r }) => r));
    case 'DELETE /_fake/fail':
      ctx.fails.length = 0;
      return reply(200, { cleared: true });
    case 'POST /_fake/reset':
      ctx.store.reset();
      ctx.fails.length = 0;
      ctx.limiter.reset();
      ctx.oauthDeny = 0;
      return reply(200, { reset: true });
    case 'GET /_fake/state':
      return reply(200, stateView(ctx.store));
    case 'POST /_fake/guilds': {
      const g = b?.guild;
      if (!g?.guild?.id || !g.roles || !g.channels || !Array.isArray(g.members)) return bad('guild: a makeGuild() object is required');
      ctx.store.addGuild(g);
      return reply(200, { added: g.guild.id });
    }
    case 'POST /_fake/interaction':
      return sendInteraction(ctx, b);
    case 'GET /_fake/interactions': {
      const since = query.since !== undefined ? Number(query.since) : -1;
      return reply(200, ctx.interactionLog.filter((e) => e.seq > since));
    }
    case 'POST /_fake/sign': {
      if (typeof b?.body !== 'string') return bad('body (string) required');
      const ts = String(b.timestamp ?? Math.floor(Date.now() / 1000));
      return reply(200, { signature: sign(b.body, ts, b.wrong_key ? WRONG_SEED_HEX : ctx.seedHex), timestamp: ts });
    }
    case 'POST /_fake/oauth/token': {
      if (!b?.user_id || !ctx.store.user(b.user_id)) return bad('user_id of a known user required');
      const t = issueTokens(ctx, b.user_id, b.scope ?? 'identify guilds');
      ctx.store.changed();
      return reply(200, t);
    }
    case 'POST /_fake/oauth/default-user': {
      if (!b || typeof b !== 'object' || !('user_id' in b)) return bad('user_id (a known user, or null for the default) required');
      if (b.user_id !== null && !ctx.store.user(b.user_id)) return bad(`user_id ${b.user_id} is not a known user`);
      ctx.store.st.oauth.default_user_id = b.user_id;
      ctx.store.changed();
      return reply(200, { default_user_id: b.user_id ?? ctx.ownerId });
    }
    case 'POST /_fake/oauth/deny': {
      const count = b?.count ?? 1;
      if (!Number.isInteger(count) || count < 0) return bad('count must be an integer >= 0 (0 clears)');
      ctx.oauthDeny = count;
      return reply(200, { deny: count });
    }
    case 'POST /_fake/webhook-event':
      return sendWebhookEvent(ctx, b);
    case 'GET /_fake/webhook-events': {
      const since = query.since !== undefined ? Number(query.since) : -1;
      return reply(200, ctx.webhookLog.filter((e) => e.seq > since));
    }
    case 'POST /_fake/install':
      return install(ctx, b);
    default: {
      const m = /^\/_fake\/entitlements(?:\/([0-9]+))?$/.exec(path);
      if (m) return entitlementRoute(ctx, method, m[1] ?? null, b);
      const dms = /^\/_fake\/users\/([0-9]+)\/dms$/.exec(path);
      if (dms && method === 'POST') {
        if (!ctx.store.user(dms[1])) return bad('unknown user');
        ctx.store.setDmsClosed(dms[1], b?.closed !== false);
        return reply(200, { user_id: dms[1], dms_closed: ctx.store.dmsClosed(dms[1]) });
      }
      return reply(404, { error: `no control route ${method} ${path}` });
    }
  }
}
