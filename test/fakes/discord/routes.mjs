// routes.mjs - the REST routes of the fake Discord (under /api/v10).
//
// Each route: method, path template, auth ('bot' | 'bearer' | 'bot_or_bearer'
// | 'none'), rate-limit bucket and its major parameter, request schema name
// (validate.mjs) and a handler (ctx, req) -> {status, body?, headers?}.
// Error bodies and codes are Discord's (shared/reference/discord-protocol.md).
import crypto from 'node:crypto';
import { PERMISSION_BITS } from '../../lib/fixtures.mjs';
import { snowflake, snowflakeTime } from '../../lib/snowflake.mjs';
import { issue, messageHasBody, toDiscordErrors, toFlat } from './validate.mjs';
import { discordTime, ALL_PERMS } from './state.mjs';
import { addBotToGuild, authorizedData, buildEvent, deliverInBackground, fullGuild } from './webhooks.mjs';

// --------------------------------------------------------------- helpers
export const reply = (status, body, headers) => ({ status, body, headers });
export const fail = (status, code, message) => reply(status, { message, code });
const noContent = () => reply(204);

const E = {
  unknownApplication: () => fail(404, 10002, 'Unknown Application'),
  unknownChannel: () => fail(404, 10003, 'Unknown Channel'),
  unknownGuild: () => fail(404, 10004, 'Unknown Guild'),
  unknownMember: () => fail(404, 10007, 'Unknown Member'),
  unknownMessage: () => fail(404, 10008, 'Unknown Message'),
  unknownRole: () => fail(404, 10011, 'Unknown Role'),
  unknownUser: () => fail(404, 10013, 'Unknown User'),
  unknownWebhook: () => fail(404, 10015, 'Unknown Webhook'),
  unknownBan: () => fail(404, 10026, 'Unknown Ban'),
  unknownInteraction: () => fail(404, 10062, 'Unknown interaction'),
  missingAccess: () => fail(403, 50001, 'Missing Access'),
  missingPermissions: () => fail(403, 50013, 'Missing Permissions'),
  cannotEditOthers: () => fail(403, 50005, 'Cannot edit a message authored by another user'),
  emptyMessage: () => fail(400, 50006, 'Cannot send an empty message'),
  invalidWebhookToken: () => fail(401, 50027, 'Invalid Webhook Token'),
  tooOldToBulkDelete: () => fail(400, 50034, 'You can only bulk delete messages that are under 14 days old.'),
  alreadyAcknowledged: () => fail(400, 40060, 'Interaction has already been acknowledged.'),
  unknownOverwrite: () => fail(404, 10009, 'Unknown Overwrite'),
  cannotDm: () => fail(403, 50007, 'Cannot send messages to this user'),
  dmChannelAction: () => fail(403, 50003, 'Cannot execute action on a DM channel'),
};

/** A 400 50035 answer for issues found by a handler (bodies the shared schemas do not cover). */
function invalidBody(req, issues) {
  req.record.valid = false;
  req.record.errors = toFlat(issues);
  return reply(400, { code: 50035, errors: toDiscordErrors(issues), message: 'Invalid Form Body' });
}
const SNOWFLAKE_STR = /^[0-9]{1,20}$/;
const PERMISSIONS_STR = /^(0|[1-9][0-9]{0,16})$/;

export const RL = {
  gateway: { name: 'gateway_bot', limit: 5, windowMs: 5000 },
  me: { name: 'users_me', limit: 5, windowMs: 1000 },
  myGuilds: { name: 'users_me_guilds', limit: 1, windowMs: 1000 },
  guildRead: { name: 'guild_read', limit: 10, windowMs: 1000 },
  messageCreate: { name: 'channel_messages_create', limit: 5, windowMs: 5000 },
  messageRead: { name: 'channel_messages_read', limit: 10, windowMs: 1000 },
  messageEdit: { name: 'channel_messages_edit', limit: 5, windowMs: 5000 },
  messageDelete: { name: 'channel_messages_delete', limit: 5, windowMs: 1000 },
  bulkDelete: { name: 'channel_messages_bulk_delete', limit: 3, windowMs: 1000 },
  memberRead: { name: 'guild_members_read', limit: 10, windowMs: 1000 },
  memberModify: { name: 'guild_member_modify', limit: 10, windowMs: 10000 },
  memberKick: { name: 'guild_member_kick', limit: 5, windowMs: 1000 },
  memberRole: { name: 'guild_member_role', limit: 10, windowMs: 10000 },
  roles: { name: 'guild_roles', limit: 10, windowMs: 10000 },
  bans: { name: 'guild_bans', limit: 5, windowMs: 5000 },
  bansRead: { name: 'guild_bans_read', limit: 10, windowMs: 1000 },
  commands: { name: 'application_commands', limit: 5, windowMs: 20000 },
  webhook: { name: 'interaction_webhook', limit: 5, windowMs: 2000 },
  callback: { name: 'interaction_callback', limit: 5, windowMs: 2000 },
  oauth: { name: 'oauth2_token', limit: 10, windowMs: 10000 },
  entitlements: { name: 'application_entitlements', limit: 10, windowMs: 1000 },
  dmCreate: { name: 'users_me_channels', limit: 10, windowMs: 1000 },
  channelModify: { name: 'channel_modify', limit: 5, windowMs: 5000 },
  channelPermissions: { name: 'channel_permissions', limit: 10, windowMs: 10000 },
};

function publicMessage(m) {
  if (!m) return m;
  const { _fake, ...rest } = m;
  return rest;
}

function publicMember(m) {
  const { fixture_key, ...rest } = m;
  return structuredClone(rest);
}

function auditReason(req) {
  const r = req.headers['x-audit-log-reason'];
  if (r === undefined) return undefined;
  try { return decodeURIComponent(r); } catch { return r; }
}

/** Who a message would ping, honouring allowed_mentions (absent = everything). */
function computeMentions(store, guild, content, am) {
  const text = typeof content === 'string' ? content : '';
  const userIds = [...new Set([...text.matchAll(/<@!?(\d+)>/g)].map((m) => m[1]))];
  const roleIds = [...new Set([...text.matchAll(/<@&(\d+)>/g)].map((m) => m[1]))];
  const parse = am?.parse ?? null;
  const okUsers = !am ? userIds : userIds.filter((id) => parse?.includes('users') || (am.users ?? []).includes(id));
  const okRoles = !am ? roleIds : roleIds.filter((id) => parse?.includes('roles') || (am.roles ?? []).includes(id));
  const everyone = /@(everyone|here)/.test(text) && (!am || Boolean(parse?.includes('everyone')));
  return {
    mentions: okUsers.map((id) => store.user(id)).filter(Boolean).map((u) => structuredClone(u)),
    mention_roles: okRoles.filter((id) => !guild || guild.roles[id]),
    mention_everyone: everyone,
  };
}

function attachmentsOf(list) {
  return (list ?? []).map((a, i) => ({
    id: a.id ?? snowflake(), filename: a.filename ?? `file${i}`, size: a.size ?? 0,
    url: `https://cdn.discordapp.com/attachments/0/0/${a.filename ?? `file${i}`}`,
    proxy_url: `https://media.discordapp.net/attachments/0/0/${a.filename ?? `file${i}`}`,
    content_type: a.content_type ?? 'application/octet-stream', description: a.description ?? undefined,
  }));
}

/** A MessageResponse-shaped object plus a private _fake record. */
function makeMessage(store, { channelId, guild, author, body, type = 0, webhookId, applicationId, interactionMeta, flags }) {
  const m = {
    id: snowflake(),
    type,
    content: body.content ?? '',
    channel_id: channelId,
    author: structuredClone(author),
    attachments: attachmentsOf(body.attachments),
    embeds: (body.embeds ?? []).map((e) => ({ type: 'rich', ...e })),
    ...computeMentions(store, guild, body.content, body.allowed_mentions),
    mention_channels: [],
    pinned: false,
    tts: Boolean(body.tts),
    timestamp: discordTime(),
    edited_timestamp: null,
    flags: flags ?? body.flags ?? 0,
    components: body.components ?? [],
    sticker_items: (body.sticker_ids ?? []).map((id) => ({ id, name: 'sticker', format_type: 1 })),
    _fake: { allowed_mentions: body.allowed_mentions ?? null, has_allowed_mentions: 'allowed_mentions' in (body ?? {}) },
  };
  if (body.poll) m.poll = { ...body.poll, expiry: discordTime(Date.now() + (body.poll.duration ?? 24) * 3600 * 1000) };
  if (body.nonce !== undefined && body.nonce !== null) m.nonce = body.nonce;
  if (body.message_reference) m.message_reference = { type: 0, channel_id: channelId, ...body.message_reference };
  if (webhookId) m.webhook_id = webhookId;
  if (applicationId) m.application_id = applicationId;
  if (interactionMeta) m.interaction_metadata = interactionMeta;
  return m;
}

/** Applies an edit body to a stored message (content, embeds, components, ...). */
function applyEdit(store, guild, m, body) {
  for (const k of ['content', 'embeds', 'components', 'attachments', 'poll']) {
    if (body[k] === undefined) continue;
    if (k === 'attachments') m.attachments = attachmentsOf(body.attachments);
    else if (k === 'embeds') m.embeds = (body.embeds ?? []).map((e) => ({ type: 'rich', ...e }));
    else m[k] = body[k] ?? (k === 'content' ? '' : k === 'poll' ? undefined : []);
  }
  if (typeof body.flags === 'number') {
    // only SUPPRESS_EMBEDS (4) and IS_COMPONENTS_V2 (32768) can be changed by an edit
    const keep = m.flags & ~(4 | 32768);
    m.flags = keep | (body.flags & (4 | 32768)) | (m.flags & 32768);
  }
  const loading = (m.flags & 128) !== 0;
  m.flags &= ~128;
  if (!loading) m.edited_timestamp = discordTime();
  if (body.content !== undefined || body.allowed_mentions !== undefined) {
    Object.assign(m, computeMentions(store, guild, m.content, body.allowed_mentions ?? m._fake?.allowed_mentions));
  }
  m._fake = {
    ...(m._fake ?? {}),
    allowed_mentions: body.allowed_mentions ?? m._fake?.allowed_mentions ?? null,
    has_allowed_mentions: 'allowed_mentions' in body,
    edits: (m._fake?.edits ?? 0) + 1,
  };
  if (!messageHasBody(m)) return false;
  return true;
}

// ------------------------------------------------------ guild/channel guards
function needGuild(ctx, req) {
  const g = ctx.store.guild(req.params.guild_id);
  if (!g || !ctx.store.botMember(g)) return { error: g ? E.missingAccess() : E.unknownGuild() };
  return { g };
}

function needChannel(ctx, req) {
  const found = ctx.store.channel(req.params.channel_id);
  if (!found) return { error: E.unknownChannel() };
  return found;
}

function listPage(items, query, { max = 100, def = 50 } = {}) {
  let limit = def;
  if (query.limit !== undefined) {
    limit = Number(query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > max) return { error: true, max };
  }
  return { limit };
}

const invalidQuery = (field, max) => reply(400, {
  code: 50035, message: 'Invalid Form Body',
  errors: { [field]: { _errors: [{ code: 'NUMBER_TYPE_MAX', message: `int value should be less than or equal to ${max}.` }] } },
});

// ---------------------------------------------------- interaction helpers
export const TOKEN_TTL_MS = 15 * 60 * 1000;

/** Looks up an interaction webhook; returns {ix} or {error}. */
async function needWebhook(ctx, req) {
  const { webhook_id: appId, webhook_token: token } = req.params;
  const ix = ctx.store.interaction(token);
  if (!ix || appId !== ix.application_id) return { error: E.unknownWebhook() };
  await ctx.store.waitAck(token);
  if (Date.now() > ix.expires_at) return { error: E.invalidWebhookToken() };
  if (ix.state === 'failed') return { error: E.unknownWebhook() };
  return { ix };
}

function interactionMeta(ix) {
  return {
    id: ix.id, type: ix.type, user: ix.user ?? undefined, name: ix.command_name ?? undefined,
    authorizing_integration_owners: ix.guild_id ? { 0: ix.guild_id } : { 0: '0' },
  };
}

/**
 * Records the initial response of an interaction (HTTP answer or callback
 * endpoint): types 4/5 create the original message, 6/7 target the message
 * the component sits on.
 */
export function acknowledge(ctx, ix, body, via) {
  const now = Date.now();
  ix.state = 'acked';
  ix.ack = { type: body.type, via, at: now, data: body.data ?? null, has_allowed_mentions: Boolean(body.data && 'allowed_mentions' in body.data) };
  const found = ix.channel_id ? ctx.store.channel(ix.channel_id) : null;
  const author = ctx.store.botUser();
  if (body.type === 4 || body.type === 5) {
    const data = body.data ?? {};
    let flags = (data.flags ?? 0) & (64 | 4 | 4096 | 32768);
    if (body.type === 5) flags = (data.flags ?? 0) & 64 | 128; // loading; only EPHEMERAL is kept
    const msg = makeMessage(ctx.store, {
      channelId: ix.channel_id ?? '0', guild: found?.guild, author, body: body.type === 5 ? {} : data,
      type: ix.type === 2 ? 20 : 0, webhookId: ix.application_id, applicationId: ix.application_id,
      interactionMeta: interactionMeta(ix), flags,
    });
    if (body.type === 5) msg._fake.has_allowed_mentions = ix.ack.has_allowed_mentions;
    ix.original = msg;
    if (found && !(flags & 64)) ctx.store.messagesOf(ix.channel_id)[msg.id] = msg;
  } else if ((body.type === 6 || body.type === 7) && ix.message) {
    ix.original = ix.message;
    if (body.type === 7 && body.data) applyEdit(ctx.store, found?.guild, ix.original, body.data);
  }
  ctx.store.settle(ix.token);
  ctx.store.changed();
}

function findWebhookMessage(ix, messageId) {
  if (messageId === '@original') return ix.original ?? null;
  return ix.followups[messageId] ?? (ix.original?.id === messageId ? ix.original : null);
}

// ----------------------------------------------------------------- routes
const routes = [];
function R(method, template, opts, handler) {
  routes.push({ method, template, segments: template.split('/').filter(Boolean), ...opts, handler });
}

// gateway
R('GET', '/gateway', { auth: 'none' }, (ctx) => reply(200, { url: `ws://127.0.0.1:${ctx.port}/gateway` }));
R('GET', '/gateway/bot', { auth: 'bot', rl: RL.gateway }, (ctx) => {
  const s = ctx.session;
  const now = Date.now();
  if (now >= s.resetAt) { s.remaining = 1000; s.resetAt = now + 86400 * 1000; }
  return reply(200, {
    url: `ws://127.0.0.1:${ctx.port}/gateway`, shards: 1,
    session_start_limit: { total: 1000, remaining: s.remaining, reset_after: Math.max(0, s.resetAt - now), max_concurrency: 1 },
  });
});

// users
R('GET', '/users/@me', { auth: 'bot_or_bearer', rl: RL.me, scope: 'identify' }, (ctx, req) => {
  const u = req.auth.kind === 'bot' ? ctx.store.botUser() : ctx.store.user(req.auth.userId);
  if (!u) return E.unknownUser();
  const out = { ...structuredClone(u), locale: 'en-US', mfa_enabled: false, verified: true, premium_type: 0 };
  if (req.auth.kind === 'bearer' && !req.auth.scopes.includes('email')) delete out.email;
  return reply(200, out);
});
R('GET', '/users/@me/guilds', { auth: 'bot_or_bearer', rl: RL.myGuilds, scope: 'guilds' }, (ctx, req) => {
  const uid = req.auth.kind === 'bot' ? ctx.applicationId : req.auth.userId;
  const page = listPage(null, req.query, { max: 200, def: 200 });
  if (page.error) return invalidQuery('limit', 200);
  let list = Object.values(ctx.store.st.guilds)
    .filter((g) => g.members[uid])
    .map((g) => {
      const perms = ctx.store.memberPerms(g, g.members[uid]);
      const out = {
        id: g.guild.id, name: g.guild.name, icon: g.guild.icon, banner: null, owner: g.guild.owner_id === uid,
        permissions: (perms === ALL_PERMS ? ALL_PERMS : perms).toString(), features: g.guild.features,
      };
      if (req.query.with_counts === 'true') {
        out.approximate_member_count = Object.keys(g.members).length;
        out.approximate_presence_count = Math.ceil(Object.keys(g.members).length / 2);
      }
      return out;
    })
    .sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  if (req.query.after) list = list.filter((g) => BigInt(g.id) > BigInt(req.query.after));
  if (req.query.before) list = list.filter((g) => BigInt(g.id) < BigInt(req.query.before));
  return reply(200, list.slice(0, page.limit));
});
// POST /users/@me/channels {recipient_id}: the DM channel with a user (the same one each time).
// Messages to it are recorded like any channel's; sending fails with 403 50007 when the user
// closed their DMs (POST /_fake/users/{id}/dms {closed}) or shares no server with the bot.
R('POST', '/users/@me/channels', { auth: 'bot', rl: RL.dmCreate }, (ctx, req) => {
  const b = req.body;
  if (!b || typeof b !== 'object' || Array.isArray(b)) return invalidBody(req, [issue([], 'DICT_TYPE_CONVERT', 'Only dictionaries may be used in a DictType')]);
  if (b.recipient_id === undefined || b.recipient_id === null) return invalidBody(req, [issue(['recipient_id'], 'BASE_TYPE_REQUIRED', 'This field is required')]);
  if (typeof b.recipient_id !== 'string' || !SNOWFLAKE_STR.test(b.recipient_id)) {
    return invalidBody(req, [issue(['recipient_id'], 'NUMBER_TYPE_COERCE', `Value "${b.recipient_id}" is not snowflake.`)]);
  }
  if (!ctx.store.user(b.recipient_id) || b.recipient_id === ctx.applicationId) return E.unknownUser();
  return reply(200, structuredClone(ctx.store.dmChannel(b.recipient_id)));
});
R('GET', '/users/:user_id', { auth: 'bot', rl: RL.me }, (ctx, req) => {
  const u = ctx.store.user(req.params.user_id);
  return u ? reply(200, structuredClone(u)) : E.unknownUser();
});

// guilds and channels
R('GET', '/guilds/:guild_id', { auth: 'bot', rl: RL.guildRead, major: 'guild_id' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  const out = { ...structuredClone(g.guild), roles: Object.values(g.roles), emojis: [], stickers: [] };
  if (req.query.with_counts === 'true') {
    out.approximate_member_count = Object.keys(g.members).length;
    out.approximate_presence_count = Math.ceil(Object.keys(g.members).length / 2);
  }
  return reply(200, out);
});
R('GET', '/guilds/:guild_id/channels', { auth: 'bot', rl: RL.guildRead, major: 'guild_id' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  return reply(200, Object.values(g.channels));
});
R('GET', '/channels/:channel_id', { auth: 'bot', rl: RL.guildRead, major: 'channel_id' }, (ctx, req) => {
  const { channel, error } = needChannel(ctx, req);
  return error ?? reply(200, channel);
});

// PATCH /channels/{c} (guild text channels): the fields moderation and settings change.
// rate_limit_per_user 0..21600 (slowmode), name 1..100, topic <= 1024, nsfw, permission_overwrites
// (replaces the list). Needs MANAGE_CHANNELS; a DM channel answers 50003.
const CHANNEL_PATCH_KEYS = new Set(['name', 'topic', 'nsfw', 'rate_limit_per_user', 'permission_overwrites', 'position', 'parent_id']);
function overwriteIssues(o, path) {
  const out = [];
  if (!o || typeof o !== 'object' || Array.isArray(o)) return [issue(path, 'DICT_TYPE_CONVERT', 'Only dictionaries may be used in a DictType')];
  if (typeof o.id !== 'string' || !SNOWFLAKE_STR.test(o.id)) out.push(issue([...path, 'id'], 'NUMBER_TYPE_COERCE', `Value "${o.id}" is not snowflake.`));
  if (o.type !== 0 && o.type !== 1) out.push(issue([...path, 'type'], 'BASE_TYPE_CHOICES', 'Value must be one of {0, 1}.'));
  for (const k of ['allow', 'deny']) {
    const v = o[k];
    if (v === undefined || v === null) continue;
    if (!(typeof v === 'string' && PERMISSIONS_STR.test(v)) && !(Number.isInteger(v) && v >= 0)) {
      out.push(issue([...path, k], 'NUMBER_TYPE_COERCE', `Value "${v}" is not int.`));
    }
  }
  return out;
}
R('PATCH', '/channels/:channel_id', { auth: 'bot', rl: RL.channelModify, major: 'channel_id' }, (ctx, req) => {
  const { guild, channel, dm, error } = needChannel(ctx, req);
  if (error) return error;
  if (dm) return E.dmChannelAction();
  const b = req.body;
  if (!b || typeof b !== 'object' || Array.isArray(b)) return invalidBody(req, [issue([], 'DICT_TYPE_CONVERT', 'Only dictionaries may be used in a DictType')]);
  const issues = [];
  for (const k of Object.keys(b)) if (!CHANNEL_PATCH_KEYS.has(k)) issues.push(issue([k], 'UNKNOWN_FIELD', `The fake does not model channel field ${k}.`));
  if ('rate_limit_per_user' in b && b.rate_limit_per_user !== null) {
    const v = b.rate_limit_per_user;
    if (!Number.isInteger(v)) issues.push(issue(['rate_limit_per_user'], 'NUMBER_TYPE_COERCE', `Value "${v}" is not int.`));
    else if (v < 0) issues.push(issue(['rate_limit_per_user'], 'NUMBER_TYPE_MIN', 'int value should be greater than or equal to 0.'));
    else if (v > 21600) issues.push(issue(['rate_limit_per_user'], 'NUMBER_TYPE_MAX', 'int value should be less than or equal to 21600.'));
  }
  if ('name' in b && (typeof b.name !== 'string' || b.name.length < 1 || b.name.length > 100)) {
    issues.push(issue(['name'], 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 100 in length.'));
  }
  if ('topic' in b && b.topic !== null && (typeof b.topic !== 'string' || b.topic.length > 1024)) {
    issues.push(issue(['topic'], 'BASE_TYPE_MAX_LENGTH', 'Must be 1024 or fewer in length.'));
  }
  if ('nsfw' in b && b.nsfw !== null && typeof b.nsfw !== 'boolean') issues.push(issue(['nsfw'], 'BASE_TYPE_BOOLEAN', 'Must be either true or false.'));
  if ('permission_overwrites' in b && b.permission_overwrites !== null) {
    if (!Array.isArray(b.permission_overwrites)) issues.push(issue(['permission_overwrites'], 'BASE_TYPE_ARRAY', 'Must be an array.'));
    else if (b.permission_overwrites.length > 100) issues.push(issue(['permission_overwrites'], 'BASE_TYPE_MAX_LENGTH', 'Must be 100 or fewer in length.'));
    else b.permission_overwrites.forEach((o, i) => issues.push(...overwriteIssues(o, ['permission_overwrites', i])));
  }
  if (issues.length) return invalidBody(req, issues);
  if (!ctx.store.botHas(guild, 'MANAGE_CHANNELS')) return E.missingPermissions();
  if (Array.isArray(b.permission_overwrites) && !ctx.store.botHas(guild, 'MANAGE_ROLES')) return E.missingPermissions();
  for (const k of ['name', 'topic', 'nsfw', 'rate_limit_per_user', 'position', 'parent_id']) {
    if (b[k] !== undefined) channel[k] = b[k] ?? (k === 'rate_limit_per_user' ? 0 : k === 'nsfw' ? false : null);
  }
  if (Array.isArray(b.permission_overwrites)) {
    channel.permission_overwrites = b.permission_overwrites.map((o) => ({ id: o.id, type: o.type, allow: String(o.allow ?? '0'), deny: String(o.deny ?? '0') }));
  }
  ctx.store.audit(guild.guild.id, 11, channel.id, auditReason(req), { changes: Object.keys(b) });
  return reply(200, channel);
});

// PUT/DELETE /channels/{c}/permissions/{overwrite_id}: {type: 0 role | 1 member, allow?, deny?}
// (permission strings). Needs MANAGE_ROLES; unless it is an administrator the bot may only
// allow or deny permissions it has itself (50013). Unknown role/member: 10011/10013.
R('PUT', '/channels/:channel_id/permissions/:overwrite_id', { auth: 'bot', rl: RL.channelPermissions, major: 'channel_id' }, (ctx, req) => {
  const { guild: g, channel, dm, error } = needChannel(ctx, req);
  if (error) return error;
  if (dm) return E.dmChannelAction();
  const b = req.body;
  const oid = req.params.overwrite_id;
  if (!b || typeof b !== 'object' || Array.isArray(b)) return invalidBody(req, [issue([], 'DICT_TYPE_CONVERT', 'Only dictionaries may be used in a DictType')]);
  let issues = overwriteIssues({ ...b, id: oid }, []);
  if (b.type === undefined || b.type === null) {
    issues = [...issues.filter((x) => x.path[0] !== 'type'), issue(['type'], 'BASE_TYPE_REQUIRED', 'This field is required')];
  }
  if (issues.length) return invalidBody(req, issues);
  if (b.type === 0 && !g.roles[oid]) return E.unknownRole();
  if (b.type === 1 && !g.members[oid]) return E.unknownMember();
  if (!ctx.store.botHas(g, 'MANAGE_ROLES')) return E.missingPermissions();
  const allow = BigInt(b.allow ?? 0);
  const deny = BigInt(b.deny ?? 0);
  const botPerms = ctx.store.memberPerms(g, ctx.store.botMember(g));
  if (botPerms !== ALL_PERMS && ((allow | deny) & ~botPerms) !== 0n) return E.missingPermissions();
  const list = (channel.permission_overwrites ??= []);
  const prev = list.find((o) => o.id === oid);
  const ow = { id: oid, type: b.type, allow: allow.toString(), deny: deny.toString() };
  if (prev) Object.assign(prev, ow); else list.push(ow);
  ctx.store.audit(g.guild.id, prev ? 14 : 13, channel.id, auditReason(req), { overwrite_id: oid, type: b.type, allow: ow.allow, deny: ow.deny });
  return noContent();
});
R('DELETE', '/channels/:channel_id/permissions/:overwrite_id', { auth: 'bot', rl: RL.channelPermissions, major: 'channel_id' }, (ctx, req) => {
  const { guild: g, channel, dm, error } = needChannel(ctx, req);
  if (error) return error;
  if (dm) return E.dmChannelAction();
  if (!ctx.store.botHas(g, 'MANAGE_ROLES')) return E.missingPermissions();
  const list = channel.permission_overwrites ?? [];
  const i = list.findIndex((o) => o.id === req.params.overwrite_id);
  if (i < 0) return E.unknownOverwrite();
  list.splice(i, 1);
  ctx.store.audit(g.guild.id, 15, channel.id, auditReason(req), { overwrite_id: req.params.overwrite_id });
  return noContent();
});

// channel messages
R('POST', '/channels/:channel_id/messages', { auth: 'bot', rl: RL.messageCreate, major: 'channel_id', schema: 'MessageCreateRequest' }, (ctx, req) => {
  const { guild, channel, dm, error } = needChannel(ctx, req);
  if (error) return error;
  if (dm) {
    // Discord: the recipient must accept DMs and share a server with the bot
    const uid = channel.recipients[0]?.id;
    if (ctx.store.dmsClosed(uid) || !ctx.store.sharesGuildWithBot(uid)) return E.cannotDm();
  } else if (!ctx.store.botHas(guild, 'SEND_MESSAGES')) return E.missingPermissions();
  if (req.body.enforce_nonce && req.body.nonce !== undefined && req.body.nonce !== null) {
    // Discord: a message by the same author with the same nonce in the last few minutes is returned, not made again
    const since = Date.now() - 5 * 60 * 1000;
    const same = Object.values(ctx.store.messagesOf(channel.id)).find((m) => m.author.id === ctx.applicationId
      && m.nonce !== undefined && String(m.nonce) === String(req.body.nonce) && snowflakeTime(m.id) >= since);
    if (same) return reply(200, publicMessage(same));
  }
  const ref = req.body.message_reference;
  if (ref?.message_id && !ctx.store.messagesOf(channel.id)[ref.message_id] && ref.fail_if_not_exists !== false) {
    return reply(400, { code: 50035, message: 'Invalid Form Body', errors: { message_reference: { _errors: [{ code: 'MESSAGE_REFERENCE_UNKNOWN_MESSAGE', message: 'Unknown message' }] } } });
  }
  const m = makeMessage(ctx.store, { channelId: channel.id, guild, author: ctx.store.botUser(), body: req.body });
  ctx.store.messagesOf(channel.id)[m.id] = m;
  channel.last_message_id = m.id;
  return reply(200, publicMessage(m));
});
R('GET', '/channels/:channel_id/messages', { auth: 'bot', rl: RL.messageRead, major: 'channel_id' }, (ctx, req) => {
  const { channel, error } = needChannel(ctx, req);
  if (error) return error;
  const page = listPage(null, req.query, { max: 100, def: 50 });
  if (page.error) return invalidQuery('limit', 100);
  let list = Object.values(ctx.store.messagesOf(channel.id)).sort((a, b) => (BigInt(b.id) > BigInt(a.id) ? 1 : -1));
  const { before, after, around } = req.query;
  if (before) list = list.filter((m) => BigInt(m.id) < BigInt(before));
  if (after) list = list.filter((m) => BigInt(m.id) > BigInt(after)).reverse().slice(0, page.limit).reverse();
  if (around) {
    const older = list.filter((m) => BigInt(m.id) <= BigInt(around));
    const newer = list.filter((m) => BigInt(m.id) > BigInt(around));
    const half = Math.floor(page.limit / 2);
    list = [...newer.slice(Math.max(0, newer.length - half)), ...older.slice(0, page.limit - Math.min(half, newer.length))];
  }
  return reply(200, list.slice(0, page.limit).map(publicMessage));
});
R('GET', '/channels/:channel_id/messages/:message_id', { auth: 'bot', rl: RL.messageRead, major: 'channel_id' }, (ctx, req) => {
  const { channel, error } = needChannel(ctx, req);
  if (error) return error;
  const m = ctx.store.messagesOf(channel.id)[req.params.message_id];
  return m ? reply(200, publicMessage(m)) : E.unknownMessage();
});
R('PATCH', '/channels/:channel_id/messages/:message_id', { auth: 'bot', rl: RL.messageEdit, major: 'channel_id', schema: 'MessageEditRequestPartial' }, (ctx, req) => {
  const { guild, channel, error } = needChannel(ctx, req);
  if (error) return error;
  const m = ctx.store.messagesOf(channel.id)[req.params.message_id];
  if (!m) return E.unknownMessage();
  const own = m.author.id === ctx.applicationId;
  const onlyFlags = Object.keys(req.body).every((k) => k === 'flags');
  if (!own && !onlyFlags) return E.cannotEditOthers();
  const copy = structuredClone(m);
  if (!applyEdit(ctx.store, guild, copy, req.body)) return E.emptyMessage();
  ctx.store.messagesOf(channel.id)[m.id] = copy;
  return reply(200, publicMessage(copy));
});
R('DELETE', '/channels/:channel_id/messages/:message_id', { auth: 'bot', rl: RL.messageDelete, major: 'channel_id' }, (ctx, req) => {
  const { guild, channel, error } = needChannel(ctx, req);
  if (error) return error;
  const msgs = ctx.store.messagesOf(channel.id);
  const m = msgs[req.params.message_id];
  if (!m) return E.unknownMessage();
  if (m.author.id !== ctx.applicationId && (!guild || !ctx.store.botHas(guild, 'MANAGE_MESSAGES'))) return E.missingPermissions();
  delete msgs[m.id];
  if (!guild) return noContent();
  ctx.store.audit(guild.guild.id, 72, m.author.id, auditReason(req), { channel_id: channel.id, message_id: m.id });
  return noContent();
});
R('POST', '/channels/:channel_id/messages/bulk-delete', { auth: 'bot', rl: RL.bulkDelete, major: 'channel_id', schema: 'BulkDeleteMessagesRequest' }, (ctx, req) => {
  const { guild, channel, dm, error } = needChannel(ctx, req);
  if (error) return error;
  if (dm) return E.dmChannelAction();
  if (!ctx.store.botHas(guild, 'MANAGE_MESSAGES')) return E.missingPermissions();
  const cutoff = Date.now() - 14 * 86400 * 1000;
  if (req.body.messages.some((id) => snowflakeTime(id) < cutoff)) return E.tooOldToBulkDelete();
  const msgs = ctx.store.messagesOf(channel.id);
  const deleted = req.body.messages.filter((id) => msgs[id]);
  for (const id of deleted) delete msgs[id];
  ctx.store.audit(guild.guild.id, 73, channel.id, auditReason(req), { count: deleted.length });
  return noContent();
});

// guild members
R('GET', '/guilds/:guild_id/members/search', { auth: 'bot', rl: RL.memberRead, major: 'guild_id' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  const q = req.query.query;
  if (q === undefined || q === '') {
    return reply(400, { code: 50035, message: 'Invalid Form Body', errors: { query: { _errors: [{ code: 'BASE_TYPE_REQUIRED', message: 'This field is required' }] } } });
  }
  const page = listPage(null, req.query, { max: 1000, def: 1 });
  if (page.error) return invalidQuery('limit', 1000);
  const ql = q.toLowerCase();
  const list = Object.values(g.members).filter((m) =>
    m.user.username.toLowerCase().startsWith(ql) || (m.nick ?? '').toLowerCase().startsWith(ql)
    || (m.user.global_name ?? '').toLowerCase().startsWith(ql));
  return reply(200, list.slice(0, page.limit).map(publicMember));
});
R('GET', '/guilds/:guild_id/members', { auth: 'bot', rl: RL.memberRead, major: 'guild_id' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  const page = listPage(null, req.query, { max: 1000, def: 1 });
  if (page.error) return invalidQuery('limit', 1000);
  let list = Object.values(g.members).sort((a, b) => (BigInt(a.user.id) < BigInt(b.user.id) ? -1 : 1));
  if (req.query.after) list = list.filter((m) => BigInt(m.user.id) > BigInt(req.query.after));
  return reply(200, list.slice(0, page.limit).map(publicMember));
});
R('GET', '/guilds/:guild_id/members/:user_id', { auth: 'bot', rl: RL.memberRead, major: 'guild_id' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  const m = g.members[req.params.user_id];
  return m ? reply(200, publicMember(m)) : E.unknownMember();
});
R('PATCH', '/guilds/:guild_id/members/:user_id', { auth: 'bot', rl: RL.memberModify, major: 'guild_id', schema: 'UpdateGuildMemberRequest' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  const m = g.members[req.params.user_id];
  if (!m) return E.unknownMember();
  const b = req.body;
  const store = ctx.store;
  if ('communication_disabled_until' in b) {
    if (!store.botHas(g, 'MODERATE_MEMBERS')) return E.missingPermissions();
    const targetPerms = store.memberPerms(g, m);
    if (g.guild.owner_id === m.user.id || (targetPerms & PERMISSION_BITS.ADMINISTRATOR) || targetPerms === ALL_PERMS) return E.missingPermissions();
    if (!store.botOutranks(g, m)) return E.missingPermissions();
  }
  if ('nick' in b && m.user.id !== ctx.applicationId) {
    if (!store.botHas(g, 'MANAGE_NICKNAMES') || !store.botOutranks(g, m)) return E.missingPermissions();
  }
  if ('roles' in b && b.roles !== null) {
    if (!store.botHas(g, 'MANAGE_ROLES')) return E.missingPermissions();
    const botTop = store.highestPosition(g, store.botMember(g));
    const next = b.roles.filter(Boolean);
    for (const rid of next) if (!g.roles[rid] || rid === g.guild.id) return E.unknownRole();
    const changed = [...next.filter((r) => !m.roles.includes(r)), ...m.roles.filter((r) => !next.includes(r))];
    for (const rid of changed) if ((g.roles[rid]?.position ?? 0) >= botTop || g.roles[rid]?.managed) return E.missingPermissions();
  }
  if (((b.mute ?? null) !== null || (b.deaf ?? null) !== null) && !store.botHas(g, 'MODERATE_MEMBERS')) {
    // mute/deaf need MUTE/DEAFEN_MEMBERS; the fake approximates with MODERATE_MEMBERS
    return E.missingPermissions();
  }
  if ('nick' in b) m.nick = b.nick || null;
  if ('roles' in b) m.roles = (b.roles ?? []).filter(Boolean);
  if ('mute' in b && b.mute !== null) m.mute = b.mute;
  if ('deaf' in b && b.deaf !== null) m.deaf = b.deaf;
  if ('flags' in b && b.flags !== null) m.flags = b.flags;
  if ('communication_disabled_until' in b) {
    m.communication_disabled_until = b.communication_disabled_until
      ? discordTime(Date.parse(b.communication_disabled_until)) : null;
  }
  store.audit(g.guild.id, 'roles' in b ? 25 : 24, m.user.id, auditReason(req), { changes: Object.keys(b) });
  return reply(200, publicMember(m));
});
R('DELETE', '/guilds/:guild_id/members/:user_id', { auth: 'bot', rl: RL.memberKick, major: 'guild_id' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  const m = g.members[req.params.user_id];
  if (!m) return E.unknownMember();
  if (!ctx.store.botHas(g, 'KICK_MEMBERS') || !ctx.store.botOutranks(g, m)) return E.missingPermissions();
  delete g.members[m.user.id];
  ctx.store.audit(g.guild.id, 20, m.user.id, auditReason(req));
  return noContent();
});
R('PUT', '/guilds/:guild_id/members/:user_id/roles/:role_id', { auth: 'bot', rl: RL.memberRole, major: 'guild_id' }, (ctx, req) => memberRole(ctx, req, true));
R('DELETE', '/guilds/:guild_id/members/:user_id/roles/:role_id', { auth: 'bot', rl: RL.memberRole, major: 'guild_id' }, (ctx, req) => memberRole(ctx, req, false));

function memberRole(ctx, req, add) {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  const m = g.members[req.params.user_id];
  if (!m) return E.unknownMember();
  const r = g.roles[req.params.role_id];
  if (!r || r.id === g.guild.id) return E.unknownRole();
  if (!ctx.store.botHas(g, 'MANAGE_ROLES')) return E.missingPermissions();
  if (r.managed || r.position >= ctx.store.highestPosition(g, ctx.store.botMember(g))) return E.missingPermissions();
  if (add && !m.roles.includes(r.id)) m.roles.push(r.id);
  if (!add) m.roles = m.roles.filter((x) => x !== r.id);
  ctx.store.audit(g.guild.id, 25, m.user.id, auditReason(req), { role_id: r.id, add });
  return noContent();
}

// roles
R('GET', '/guilds/:guild_id/roles', { auth: 'bot', rl: RL.roles, major: 'guild_id' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  return reply(200, Object.values(g.roles).sort((a, b) => a.position - b.position));
});
R('POST', '/guilds/:guild_id/roles', { auth: 'bot', rl: RL.roles, major: 'guild_id', schema: 'CreateRoleRequest' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  if (!ctx.store.botHas(g, 'MANAGE_ROLES')) return E.missingPermissions();
  const b = req.body ?? {};
  for (const r of Object.values(g.roles)) if (r.id !== g.guild.id) r.position += 1;
  const role = {
    id: snowflake(), name: b.name ?? 'new role', position: 1, permissions: String(b.permissions ?? g.roles[g.guild.id].permissions),
    color: b.color ?? 0, colors: { primary_color: b.color ?? 0, secondary_color: null, tertiary_color: null },
    hoist: Boolean(b.hoist), managed: false, mentionable: Boolean(b.mentionable), icon: null, unicode_emoji: b.unicode_emoji ?? null,
    flags: 0, description: null,
  };
  g.roles[role.id] = role;
  ctx.store.audit(g.guild.id, 30, role.id, auditReason(req));
  return reply(200, role);
});
R('PATCH', '/guilds/:guild_id/roles/:role_id', { auth: 'bot', rl: RL.roles, major: 'guild_id', schema: 'UpdateRoleRequestPartial' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  const r = g.roles[req.params.role_id];
  if (!r) return E.unknownRole();
  if (!ctx.store.botHas(g, 'MANAGE_ROLES') || r.position >= ctx.store.highestPosition(g, ctx.store.botMember(g))) return E.missingPermissions();
  const b = req.body ?? {};
  for (const k of ['name', 'color', 'hoist', 'mentionable', 'unicode_emoji']) if (b[k] !== undefined && b[k] !== null) r[k] = b[k];
  if (b.permissions !== undefined && b.permissions !== null) r.permissions = String(b.permissions);
  ctx.store.audit(g.guild.id, 31, r.id, auditReason(req));
  return reply(200, r);
});

// bans
R('GET', '/guilds/:guild_id/bans', { auth: 'bot', rl: RL.bansRead, major: 'guild_id' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  if (!ctx.store.botHas(g, 'BAN_MEMBERS')) return E.missingPermissions();
  const page = listPage(null, req.query, { max: 1000, def: 1000 });
  if (page.error) return invalidQuery('limit', 1000);
  let list = Object.values(g.bans).sort((a, b) => (BigInt(a.user.id) < BigInt(b.user.id) ? -1 : 1));
  if (req.query.after) list = list.filter((b) => BigInt(b.user.id) > BigInt(req.query.after));
  if (req.query.before) list = list.filter((b) => BigInt(b.user.id) < BigInt(req.query.before));
  return reply(200, list.slice(0, page.limit).map(({ user, reason }) => ({ user, reason })));
});
R('GET', '/guilds/:guild_id/bans/:user_id', { auth: 'bot', rl: RL.bansRead, major: 'guild_id' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  if (!ctx.store.botHas(g, 'BAN_MEMBERS')) return E.missingPermissions();
  const b = g.bans[req.params.user_id];
  return b ? reply(200, { user: b.user, reason: b.reason }) : E.unknownBan();
});
R('PUT', '/guilds/:guild_id/bans/:user_id', { auth: 'bot', rl: RL.bans, major: 'guild_id', schema: 'BanUserFromGuildRequest' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  const uid = req.params.user_id;
  const u = ctx.store.user(uid) ?? g.members[uid]?.user;
  if (!u) return E.unknownUser();
  const m = g.members[uid];
  if (!ctx.store.botHas(g, 'BAN_MEMBERS') || (m && !ctx.store.botOutranks(g, m)) || g.guild.owner_id === uid) return E.missingPermissions();
  const secs = req.body?.delete_message_seconds ?? (req.body?.delete_message_days ?? 0) * 86400;
  if (secs > 0) {
    const cutoff = Date.now() - secs * 1000;
    for (const ch of Object.keys(g.channels)) {
      const msgs = ctx.store.messagesOf(ch);
      for (const [id, msg] of Object.entries(msgs)) if (msg.author.id === uid && snowflakeTime(id) >= cutoff) delete msgs[id];
    }
  }
  g.bans[uid] = { user: structuredClone(u), reason: auditReason(req) ?? null, delete_message_seconds: secs, created_at: discordTime() };
  delete g.members[uid];
  ctx.store.audit(g.guild.id, 22, uid, auditReason(req));
  return noContent();
});
R('DELETE', '/guilds/:guild_id/bans/:user_id', { auth: 'bot', rl: RL.bans, major: 'guild_id', schema: 'UnbanUserFromGuildRequest' }, (ctx, req) => {
  const { g, error } = needGuild(ctx, req);
  if (error) return error;
  if (!ctx.store.botHas(g, 'BAN_MEMBERS')) return E.missingPermissions();
  if (!g.bans[req.params.user_id]) return E.unknownBan();
  delete g.bans[req.params.user_id];
  ctx.store.audit(g.guild.id, 23, req.params.user_id, auditReason(req));
  return noContent();
});

// application commands
function commandsOut(ctx, list, body, guildId) {
  const byKey = new Map(list.map((c) => [`${c.type}:${c.name}`, c]));
  return body.map((c) => {
    const type = c.type ?? 1;
    const prev = byKey.get(`${type}:${c.name}`);
    const out = {
      id: prev?.id ?? snowflake(), application_id: ctx.applicationId, version: snowflake(), type, name: c.name,
      name_localizations: c.name_localizations ?? null, description: c.description ?? '',
      description_localizations: c.description_localizations ?? null,
      default_member_permissions: c.default_member_permissions === undefined || c.default_member_permissions === null
        ? null : String(c.default_member_permissions),
      dm_permission: c.dm_permission ?? true, nsfw: c.nsfw ?? false,
      contexts: c.contexts ?? null, integration_types: c.integration_types ?? [0],
    };
    if (c.options) out.options = c.options;
    if (guildId) out.guild_id = guildId;
    return out;
  });
}
function appGuard(ctx, req) {
  return req.params.application_id === ctx.applicationId ? null : E.unknownApplication();
}
R('GET', '/applications/:application_id/commands', { auth: 'bot', rl: RL.commands }, (ctx, req) =>
  appGuard(ctx, req) ?? reply(200, ctx.store.st.commands.global));
R('PUT', '/applications/:application_id/commands', { auth: 'bot', rl: RL.commands, schema: 'ApplicationCommandUpdateRequestList' }, (ctx, req) => {
  const bad = appGuard(ctx, req);
  if (bad) return bad;
  const out = commandsOut(ctx, ctx.store.st.commands.global, req.body ?? [], null);
  ctx.store.st.commands.global = out;
  return reply(200, out);
});
R('GET', '/applications/:application_id/guilds/:guild_id/commands', { auth: 'bot', rl: RL.commands, major: 'guild_id' }, (ctx, req) => {
  const bad = appGuard(ctx, req);
  if (bad) return bad;
  if (!ctx.store.guild(req.params.guild_id)) return E.missingAccess();
  return reply(200, ctx.store.st.commands.guilds[req.params.guild_id] ?? []);
});
R('PUT', '/applications/:application_id/guilds/:guild_id/commands', { auth: 'bot', rl: RL.commands, major: 'guild_id', schema: 'ApplicationCommandUpdateRequestList' }, (ctx, req) => {
  const bad = appGuard(ctx, req);
  if (bad) return bad;
  if (!ctx.store.guild(req.params.guild_id)) return E.missingAccess();
  const gid = req.params.guild_id;
  const out = commandsOut(ctx, ctx.store.st.commands.guilds[gid] ?? [], req.body ?? [], gid);
  ctx.store.st.commands.guilds[gid] = out;
  return reply(200, out);
});

// entitlements (monetization): the list the fake's /_fake/entitlements built
const SNOWFLAKE_RE = /^(0|[1-9][0-9]{0,19})$/;
const queryError = (field, code, message) => ({ [field]: { _errors: [{ code, message }] } });
/** Validates the list query; -> {q} or {errors} (50035 shape, by field). */
function entitlementQuery(query) {
  const errors = {};
  const q = { limit: 100, exclude_ended: false, exclude_deleted: true, only_active: false, sku_ids: null };
  for (const k of ['user_id', 'guild_id', 'before', 'after']) {
    if (query[k] === undefined) continue;
    if (SNOWFLAKE_RE.test(query[k])) q[k] = query[k];
    else Object.assign(errors, queryError(k, 'NUMBER_TYPE_COERCE', `Value "${query[k]}" is not snowflake.`));
  }
  for (const k of ['exclude_ended', 'exclude_deleted', 'only_active']) {
    if (query[k] === undefined) continue;
    if (query[k] === 'true' || query[k] === 'false') q[k] = query[k] === 'true';
    else Object.assign(errors, queryError(k, 'BOOLEAN_TYPE_CONVERT', 'Must be either true or false.'));
  }
  if (query.limit !== undefined) {
    const n = Number(query.limit);
    if (!/^-?[0-9]+$/.test(query.limit)) Object.assign(errors, queryError('limit', 'NUMBER_TYPE_COERCE', `Value "${query.limit}" is not int.`));
    else if (n < 1) Object.assign(errors, queryError('limit', 'NUMBER_TYPE_MIN', 'int value should be greater than or equal to 1.'));
    else if (n > 100) Object.assign(errors, queryError('limit', 'NUMBER_TYPE_MAX', 'int value should be less than or equal to 100.'));
    else q.limit = n;
  }
  if (query.sku_ids !== undefined) {
    const ids = query.sku_ids.split(',');
    const badId = ids.find((id) => !SNOWFLAKE_RE.test(id));
    if (badId !== undefined) Object.assign(errors, queryError('sku_ids', 'NUMBER_TYPE_COERCE', `Value "${badId}" is not snowflake.`));
    else q.sku_ids = new Set(ids);
  }
  return Object.keys(errors).length ? { errors } : { q };
}
R('GET', '/applications/:application_id/entitlements', { auth: 'bot', rl: RL.entitlements }, (ctx, req) => {
  const bad = appGuard(ctx, req);
  if (bad) return bad;
  const { q, errors } = entitlementQuery(req.query);
  if (errors) {
    req.record.valid = false;
    req.record.errors = Object.entries(errors).map(([path, e]) => ({ path, ...e._errors[0] }));
    return reply(400, { code: 50035, errors, message: 'Invalid Form Body' });
  }
  const now = Date.now();
  const ended = (e) => e.ends_at !== null && Date.parse(e.ends_at) <= now;
  const started = (e) => e.starts_at === null || Date.parse(e.starts_at) <= now;
  let list = Object.values(ctx.store.st.entitlements)
    .filter((e) => (!q.user_id || e.user_id === q.user_id)
      && (!q.guild_id || e.guild_id === q.guild_id)
      && (!q.sku_ids || q.sku_ids.has(e.sku_id))
      && (!q.exclude_deleted || !e.deleted)
      && (!q.exclude_ended || !ended(e))
      && (!q.only_active || (!e.deleted && !ended(e) && started(e)))
      && (!q.before || BigInt(e.id) < BigInt(q.before))
      && (!q.after || BigInt(e.id) > BigInt(q.after)))
    .sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  list = q.before && !q.after ? list.slice(-q.limit) : list.slice(0, q.limit);
  return reply(200, list.map((e) => structuredClone(e)));
});

// interaction callback and follow-ups (no bot auth: the token is the credential)
R('POST', '/interactions/:interaction_id/:interaction_token/callback', { auth: 'none', rl: RL.callback, major: 'interaction_id', global: false, schema: 'InteractionCallbackRequest' }, async (ctx, req) => {
  const ix = ctx.store.interaction(req.params.interaction_token);
  if (!ix || ix.id !== req.params.interaction_id) return E.unknownInteraction();
  if (ix.state === 'acked') return E.alreadyAcknowledged();
  if (ix.state === 'failed' || Date.now() - ix.created_at > 3000 + 500) {
    ix.state = 'failed';
    ctx.store.settle(ix.token);
    return E.unknownInteraction();
  }
  acknowledge(ctx, ix, req.body, 'callback');
  if (req.query.with_response === 'true') {
    const m = ix.original;
    return reply(200, {
      interaction: {
        id: ix.id, type: ix.type, activity_instance_id: null, response_message_id: m?.id ?? null,
        response_message_loading: m ? Boolean(m.flags & 128) : null, response_message_ephemeral: m ? Boolean(m.flags & 64) : null,
      },
      resource: m ? { type: req.body.type, message: publicMessage(m) } : { type: req.body.type },
    });
  }
  return noContent();
});
R('POST', '/webhooks/:webhook_id/:webhook_token', { auth: 'none', rl: RL.webhook, major: 'webhook', global: false, schema: 'IncomingWebhookRequestPartial' }, async (ctx, req) => {
  const { ix, error } = await needWebhook(ctx, req);
  if (error) return error;
  if (ix.state !== 'acked') return E.unknownWebhook();
  const found = ix.channel_id ? ctx.store.channel(ix.channel_id) : null;
  // deprecated quirk (documented): the first follow-up after a type-5 defer edits the loading message
  if (ix.original && (ix.original.flags & 128) && ix.ack?.type === 5 && !ix.followup_count) {
    ix.followup_count = 1;
    const copy = structuredClone(ix.original);
    const ephemeral = copy.flags & 64;
    if (!applyEdit(ctx.store, found?.guild, copy, req.body)) return E.emptyMessage();
    copy.flags |= ephemeral;
    ix.original = copy;
    if (found && !ephemeral) ctx.store.messagesOf(ix.channel_id)[copy.id] = copy;
    ix.followup_edited_original = true;
    return reply(200, publicMessage(copy));
  }
  const flags = (req.body.flags ?? 0) & (64 | 4 | 4096 | 32768);
  const m = makeMessage(ctx.store, {
    channelId: ix.channel_id ?? '0', guild: found?.guild, author: ctx.store.botUser(), body: req.body,
    webhookId: ix.application_id, applicationId: ix.application_id, flags,
  });
  ix.followups[m.id] = m;
  ix.followup_count = (ix.followup_count ?? 0) + 1;
  if (found && !(flags & 64)) ctx.store.messagesOf(ix.channel_id)[m.id] = m;
  return reply(200, publicMessage(m));
});
R('GET', '/webhooks/:webhook_id/:webhook_token/messages/:message_id', { auth: 'none', rl: RL.webhook, major: 'webhook', global: false }, async (ctx, req) => {
  const { ix, error } = await needWebhook(ctx, req);
  if (error) return error;
  const m = findWebhookMessage(ix, req.params.message_id);
  return m ? reply(200, publicMessage(m)) : E.unknownMessage();
});
R('PATCH', '/webhooks/:webhook_id/:webhook_token/messages/:message_id', { auth: 'none', rl: RL.webhook, major: 'webhook', global: false, schema: 'IncomingWebhookUpdateRequestPartial' }, async (ctx, req) => {
  const { ix, error } = await needWebhook(ctx, req);
  if (error) return error;
  const m = findWebhookMessage(ix, req.params.message_id);
  if (!m) return E.unknownMessage();
  const found = ix.channel_id ? ctx.store.channel(ix.channel_id) : null;
  const copy = structuredClone(m);
  if (!applyEdit(ctx.store, found?.guild, copy, req.body)) return E.emptyMessage();
  if (req.params.message_id === '@original' || m === ix.original) ix.original = copy;
  else ix.followups[copy.id] = copy;
  if (found && ctx.store.messagesOf(ix.channel_id)[copy.id]) ctx.store.messagesOf(ix.channel_id)[copy.id] = copy;
  return reply(200, publicMessage(copy));
});
R('DELETE', '/webhooks/:webhook_id/:webhook_token/messages/:message_id', { auth: 'none', rl: RL.webhook, major: 'webhook', global: false }, async (ctx, req) => {
  const { ix, error } = await needWebhook(ctx, req);
  if (error) return error;
  const m = findWebhookMessage(ix, req.params.message_id);
  if (!m) return E.unknownMessage();
  if (m === ix.original) { ix.original_deleted = true; ix.original = null; } else delete ix.followups[m.id];
  if (ix.channel_id) delete ctx.store.messagesOf(ix.channel_id)[m.id];
  return noContent();
});

// OAuth2 (token exchange is form-encoded only; also mounted without the version)
function oauthError(status, error, description) {
  return reply(status, { error, error_description: description });
}
function clientAuth(ctx, req) {
  let id = req.form?.client_id;
  let secret = req.form?.client_secret;
  const h = req.headers.authorization;
  if (h?.startsWith('Basic ')) {
    const [a, ...b] = Buffer.from(h.slice(6), 'base64').toString('utf8').split(':');
    id = a; secret = b.join(':');
  }
  if (id !== ctx.clientId) return false;
  if (ctx.clientSecret && secret !== ctx.clientSecret) return false;
  return true;
}
function issueTokens(ctx, userId, scope, guildId) {
  const access = crypto.randomBytes(15).toString('base64url');
  const refresh = crypto.randomBytes(15).toString('base64url');
  const o = ctx.store.st.oauth;
  o.tokens[access] = { user_id: userId, scope, expires_at: Date.now() + 604800 * 1000, refresh };
  o.refresh[refresh] = { user_id: userId, scope, access };
  const out = { access_token: access, token_type: 'Bearer', expires_in: 604800, refresh_token: refresh, scope };
  // a code grant that installed the bot carries the whole guild
  if (guildId && ctx.store.guild(guildId)) out.guild = fullGuild(ctx.store.guild(guildId));
  return out;
}
export { issueTokens };
const tokenHandler = (ctx, req) => {
  if (!req.form) return oauthError(400, 'unsupported_grant_type', 'Grant type None is not supported');
  if (!clientAuth(ctx, req)) return oauthError(401, 'invalid_client', 'Unknown client or bad client_secret');
  const o = ctx.store.st.oauth;
  const f = req.form;
  if (f.grant_type === 'authorization_code') {
    const c = o.codes[f.code];
    if (!c || c.expires_at < Date.now()) return oauthError(400, 'invalid_grant', 'Invalid "code" in request.');
    if (c.redirect_uri && c.redirect_uri !== f.redirect_uri) return oauthError(400, 'invalid_grant', 'Invalid "redirect_uri" in request.');
    delete o.codes[f.code];
    return reply(200, issueTokens(ctx, c.user_id, c.scope, c.guild_id));
  }
  if (f.grant_type === 'refresh_token') {
    const r = o.refresh[f.refresh_token];
    if (!r) return oauthError(400, 'invalid_grant', 'Invalid "refresh_token" in request.');
    delete o.refresh[f.refresh_token];
    delete o.tokens[r.access];
    return reply(200, issueTokens(ctx, r.user_id, r.scope));
  }
  if (f.grant_type === 'client_credentials') {
    return reply(200, issueTokens(ctx, ctx.ownerId, f.scope ?? 'identify'));
  }
  return oauthError(400, 'unsupported_grant_type', `Grant type ${f.grant_type ?? 'None'} is not supported`);
};
const revokeHandler = (ctx, req) => {
  if (!req.form) return oauthError(400, 'invalid_request', 'Form body required');
  if (!clientAuth(ctx, req)) return oauthError(401, 'invalid_client', 'Unknown client or bad client_secret');
  const o = ctx.store.st.oauth;
  const t = req.form.token;
  const a = o.tokens[t];
  const r = o.refresh[t];
  if (a) { delete o.refresh[a.refresh]; delete o.tokens[t]; }
  if (r) { delete o.tokens[r.access]; delete o.refresh[t]; }
  return reply(200, {});
};
R('POST', '/oauth2/token', { auth: 'none', rl: RL.oauth, global: false, form: true }, tokenHandler);
R('POST', '/oauth2/token/revoke', { auth: 'none', rl: RL.oauth, global: false, form: true }, revokeHandler);

const DENIED_DESCRIPTION = 'The resource owner or authorization server denied the request';

/**
 * GET /oauth2/authorize: consents at once (as fake_user, else the default user)
 * and redirects with code and state. With scope bot and guild_id the bot joins
 * that guild, the redirect carries guild_id and permissions, and an
 * APPLICATION_AUTHORIZED webhook event goes out. POST /_fake/oauth/deny makes
 * the next calls redirect with error=access_denied instead.
 */
export function authorizeHandler(ctx, req) {
  const q = req.query;
  if (q.client_id !== ctx.clientId) return reply(400, { message: 'Invalid OAuth2 application', code: 50147 });
  const scope = (q.scope ?? '').split(/[ +]/).filter(Boolean);
  if (!scope.length) return reply(400, { message: 'Invalid OAuth2 scope', code: 0 });
  const bot = scope.includes('bot');
  if (q.redirect_uri !== undefined) {
    try { new URL(q.redirect_uri); } catch { return reply(400, { message: 'Invalid "redirect_uri" in request.', code: 50035 }); }
  }
  if (bot && q.guild_id !== undefined && !ctx.store.guild(q.guild_id)) return reply(400, { message: 'Unknown Guild', code: 10004 });
  if (q.permissions !== undefined && !/^[0-9]{1,20}$/.test(q.permissions)) return reply(400, { message: 'Invalid permissions', code: 50035 });
  const userId = q.fake_user ?? ctx.store.st.oauth.default_user_id ?? ctx.ownerId;
  if (!ctx.store.user(userId)) return reply(400, { message: 'fake_user is not a known user', code: 10013 });

  if (ctx.oauthDeny > 0) {
    ctx.oauthDeny -= 1;
    if (!q.redirect_uri) return reply(200, { authorized: false, error: 'access_denied', error_description: DENIED_DESCRIPTION });
    const u = new URL(q.redirect_uri);
    u.searchParams.set('error', 'access_denied');
    u.searchParams.set('error_description', DENIED_DESCRIPTION);
    if (q.state !== undefined) u.searchParams.set('state', q.state);
    return reply(302, null, { Location: u.toString() });
  }

  const installGuild = bot && q.guild_id ? ctx.store.guild(q.guild_id) : null;
  if (installGuild) {
    addBotToGuild(ctx, installGuild, q.permissions);
    const scopes = scope.includes('applications.commands') ? scope : [...scope, 'applications.commands'];
    const data = authorizedData(ctx, { guildId: q.guild_id, userId, scopes });
    deliverInBackground(ctx, buildEvent(ctx, 'APPLICATION_AUTHORIZED', data), `APPLICATION_AUTHORIZED for guild ${q.guild_id}`);
  }
  if (!q.redirect_uri) {
    if (bot) return reply(200, { authorized: true, guild_id: q.guild_id ?? null, scope: scope.join(' ') });
    return reply(400, { message: 'Invalid "redirect_uri" in request.', code: 50035 });
  }
  const code = crypto.randomBytes(15).toString('base64url');
  ctx.store.st.oauth.codes[code] = {
    user_id: userId, scope: scope.join(' '), redirect_uri: q.redirect_uri, guild_id: installGuild ? q.guild_id : null,
    expires_at: Date.now() + 10 * 60 * 1000,
  };
  ctx.store.changed();
  const u = new URL(q.redirect_uri);
  u.searchParams.set('code', code);
  if (q.state !== undefined) u.searchParams.set('state', q.state);
  if (installGuild) {
    u.searchParams.set('guild_id', q.guild_id);
    u.searchParams.set('permissions', q.permissions ?? '0');
  }
  return reply(302, null, { Location: u.toString() });
}

export { routes, E, publicMessage };

/** Finds the route for method + path (path relative to /api/v10). */
export function matchRoute(method, relPath) {
  const segs = relPath.split('/').filter(Boolean);
  let pathMatched = false;
  for (const r of routes) {
    if (r.segments.length !== segs.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < segs.length; i++) {
      const t = r.segments[i];
      if (t.startsWith(':')) {
        try { params[t.slice(1)] = decodeURIComponent(segs[i]); } catch { ok = false; break; }
      } else if (t !== segs[i]) { ok = false; break; }
    }
    if (!ok) continue;
    pathMatched = true;
    if (r.method === method) return { route: r, params };
  }
  return pathMatched ? { methodNotAllowed: true } : null;
}
