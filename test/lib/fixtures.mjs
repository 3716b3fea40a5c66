// fixtures.mjs - structured mock data shared by the fake Discord and every test.
//
// Everything here is plain data or pure builders: no I/O, no stack lookup, so
// the fake can seed itself from it and a test can build interactions for any
// guild. Snowflakes are strings, permissions are decimal strings (Discord's
// wire format). The demo guild's ids match shared/fixtures/interactions/*.json.
import { snowflake } from './snowflake.mjs';

export const APPLICATION_ID = '1234567890123456789';
export const DEMO_GUILD_ID = '1098765432109876543';
export const API_VERSION = 10;

// ---------------------------------------------------------------- permissions
const bit = (n) => 1n << BigInt(n);
export const PERMISSION_BITS = Object.freeze({
  CREATE_INSTANT_INVITE: bit(0),
  KICK_MEMBERS: bit(1),
  BAN_MEMBERS: bit(2),
  ADMINISTRATOR: bit(3),
  MANAGE_CHANNELS: bit(4),
  MANAGE_GUILD: bit(5),
  ADD_REACTIONS: bit(6),
  VIEW_AUDIT_LOG: bit(7),
  VIEW_CHANNEL: bit(10),
  SEND_MESSAGES: bit(11),
  MANAGE_MESSAGES: bit(13),
  EMBED_LINKS: bit(14),
  ATTACH_FILES: bit(15),
  READ_MESSAGE_HISTORY: bit(16),
  MENTION_EVERYONE: bit(17),
  USE_EXTERNAL_EMOJIS: bit(18),
  CONNECT: bit(20),
  SPEAK: bit(21),
  CHANGE_NICKNAME: bit(26),
  MANAGE_NICKNAMES: bit(27),
  MANAGE_ROLES: bit(28),
  MANAGE_WEBHOOKS: bit(29),
  USE_APPLICATION_COMMANDS: bit(31),
  MANAGE_THREADS: bit(34),
  CREATE_PUBLIC_THREADS: bit(35),
  CREATE_PRIVATE_THREADS: bit(36),
  SEND_MESSAGES_IN_THREADS: bit(38),
  MODERATE_MEMBERS: bit(40),
  PIN_MESSAGES: bit(51),
  BYPASS_SLOWMODE: bit(52),
});

/** OR of permission names (or bigint/decimal strings) as a decimal string. */
export function permsOf(...names) {
  let v = 0n;
  for (const n of names.flat()) {
    if (typeof n === 'bigint') v |= n;
    else if (/^[0-9]+$/.test(String(n))) v |= BigInt(n);
    else if (PERMISSION_BITS[n] !== undefined) v |= PERMISSION_BITS[n];
    else throw new Error(`fixtures: unknown permission ${n}`);
  }
  return v.toString();
}

export function hasPerm(perms, name) {
  const p = BigInt(perms);
  if (p & PERMISSION_BITS.ADMINISTRATOR) return true;
  return (p & PERMISSION_BITS[name]) === PERMISSION_BITS[name];
}

const MEMBER_BASE = [
  'CREATE_INSTANT_INVITE', 'ADD_REACTIONS', 'VIEW_CHANNEL', 'SEND_MESSAGES', 'EMBED_LINKS',
  'ATTACH_FILES', 'READ_MESSAGE_HISTORY', 'USE_EXTERNAL_EMOJIS', 'CONNECT', 'SPEAK',
  'CHANGE_NICKNAME', 'USE_APPLICATION_COMMANDS', 'CREATE_PUBLIC_THREADS', 'SEND_MESSAGES_IN_THREADS',
];

/** Permission sets as decimal strings (what interactions carry in member.permissions). */
export const PERMS = Object.freeze({
  NONE: '0',
  KICK_MEMBERS: '2',
  BAN_MEMBERS: '4',
  ADMINISTRATOR: '8',
  MANAGE_GUILD: '32',
  MANAGE_MESSAGES: '8192',
  MANAGE_ROLES: '268435456',
  MODERATE_MEMBERS: '1099511627776',
  /** every defined bit: what the owner and administrators get */
  ALL: ((1n << 53n) - 1n).toString(),
  /** an ordinary member: talk, read, react, use commands; no moderation bits */
  MEMBER: permsOf(MEMBER_BASE),
  /** a moderator: member + kick/ban/timeout/manage messages/nicknames */
  MODERATOR: permsOf(MEMBER_BASE, 'KICK_MEMBERS', 'BAN_MEMBERS', 'MODERATE_MEMBERS', 'MANAGE_MESSAGES',
    'MANAGE_NICKNAMES', 'VIEW_AUDIT_LOG', 'MANAGE_THREADS'),
  /** a server manager without Administrator */
  MANAGER: permsOf(MEMBER_BASE, 'MANAGE_GUILD', 'MANAGE_ROLES', 'MANAGE_CHANNELS', 'MANAGE_MESSAGES'),
  /** a muted member: read only */
  MUTED: permsOf('VIEW_CHANNEL', 'READ_MESSAGE_HISTORY'),
  /** what the bot's managed role grants */
  BOT: permsOf(MEMBER_BASE, 'KICK_MEMBERS', 'BAN_MEMBERS', 'MANAGE_CHANNELS', 'MANAGE_GUILD',
    'VIEW_AUDIT_LOG', 'MANAGE_MESSAGES', 'MANAGE_NICKNAMES', 'MANAGE_ROLES', 'MANAGE_WEBHOOKS',
    'MANAGE_THREADS', 'CREATE_PRIVATE_THREADS', 'MODERATE_MEMBERS', 'PIN_MESSAGES'),
});

// ---------------------------------------------------------------------- users
function user(id, username, globalName, extra = {}) {
  return {
    id, username, global_name: globalName, discriminator: '0', avatar: null,
    avatar_decoration_data: null, clan: null, public_flags: 0, flags: 0, bot: false, ...extra,
  };
}

/** Users shared by every guild (a user is global on Discord). */
export const users = Object.freeze({
  owner: user('111122223333444455', 'olive_owner', 'Olive'),
  admin: user('222233334444555566', 'adam_admin', 'Adam'),
  moderator: user('123456789012345678', 'alice', 'Alice', { avatar: 'a1b2c3d4e5f60718293a4b5c6d7e8f90' }),
  member: user('987654321098765432', 'bob', 'Bob'),
  muted: user('333344445555666677', 'mia_muted', 'Mia'),
  dm: user('444455556666777788', 'dora_dm', 'Dora'),
  bot: user(APPLICATION_ID, 'Guildhall', 'Guildhall', { bot: true, discriminator: '0000', public_flags: 0 }),
});

// --------------------------------------------------------------------- guilds
function role(id, name, position, permissions, extra = {}) {
  return {
    id, name, position, permissions, color: 0, colors: { primary_color: 0, secondary_color: null, tertiary_color: null },
    hoist: false, managed: false, mentionable: false, icon: null, unicode_emoji: null, flags: 0,
    description: null, ...extra,
  };
}

function channel(id, guildId, name, position, extra = {}) {
  return {
    id, guild_id: guildId, name, type: 0, position, parent_id: null, topic: null, nsfw: false,
    rate_limit_per_user: 0, last_message_id: null, permission_overwrites: [], flags: 0, ...extra,
  };
}

/**
 * A complete guild description: guild object, roles (with positions), channels,
 * members (by fixture user key). ids: {guild, category, general, modLog, welcome,
 * admin, moderator, member, muted, bot} - any missing id is made fresh.
 */
export function makeGuild({ name, ids = {}, ownerKey = 'owner', botUserId = users.bot.id } = {}) {
  const id = (k) => ids[k] ?? snowflake();
  const gid = ids.guild ?? snowflake();
  const r = {
    everyone: role(gid, '@everyone', 0, PERMS.MEMBER),
    member: role(id('member'), 'Member', 1, PERMS.MEMBER, { color: 0x95a5a6 }),
    muted: role(id('muted'), 'Muted', 2, '0', { color: 0x546e7a }),
    moderator: role(id('moderator'), 'Moderator', 3, PERMS.MODERATOR, { color: 0x3498db, hoist: true }),
    bot: role(id('bot'), 'Guildhall', 4, PERMS.BOT, { managed: true, tags: { bot_id: botUserId } }),
    admin: role(id('admin'), 'Admin', 5, PERMS.ADMINISTRATOR, { color: 0xe74c3c, hoist: true }),
  };
  const categoryId = id('category');
  const ch = {
    category: channel(categoryId, gid, 'Text Channels', 0, { type: 4 }),
    general: channel(id('general'), gid, 'general', 0, { parent_id: categoryId }),
    modLog: channel(id('modLog'), gid, 'mod-log', 1, { parent_id: categoryId, topic: 'Moderation log' }),
    welcome: channel(id('welcome'), gid, 'welcome', 2, { parent_id: categoryId }),
  };
  const memberRoles = {
    owner: [r.admin.id],
    admin: [r.admin.id],
    moderator: [r.member.id, r.moderator.id],
    member: [r.member.id],
    muted: [r.member.id, r.muted.id],
    bot: [r.bot.id],
  };
  const joined = '2023-01-15T18:22:09.123000+00:00';
  const members = Object.entries(memberRoles).map(([key, roles]) => ({
    user: key === 'bot' ? { ...users.bot, id: botUserId } : users[key],
    nick: null, avatar: null, banner: null, roles, joined_at: joined, premium_since: null,
    deaf: false, mute: false, flags: 0, pending: false, communication_disabled_until: null,
    fixture_key: key,
  }));
  return {
    guild: {
      id: gid, name: name ?? `Guildhall Test ${gid.slice(-6)}`, icon: null, description: null,
      owner_id: users[ownerKey].id, region: 'deprecated', afk_channel_id: null, afk_timeout: 300,
      verification_level: 1, default_message_notifications: 1, explicit_content_filter: 2,
      features: ['COMMUNITY', 'NEWS'], mfa_level: 0, system_channel_id: ch.welcome.id,
      rules_channel_id: null, preferred_locale: 'en-US', premium_tier: 0, nsfw_level: 0,
      premium_progress_bar_enabled: false,
    },
    roles: r,
    channels: ch,
    members,
  };
}

/** The demo guild every fresh stack starts with (fixed ids). */
export const demoGuild = makeGuild({
  name: 'Guildhall Demo',
  ids: {
    guild: DEMO_GUILD_ID,
    category: '1112223334445556660',
    general: '1112223334445556667',
    modLog: '1112223334445556668',
    welcome: '1112223334445556669',
    member: '1111111111111111111',
    moderator: '2222222222222222222',
    muted: '1098765432109876551',
    bot: '1098765432109876552',
    admin: '1098765432109876553',
  },
});

/** Two isolated guilds for tests that need a second tenant (fixed ids). */
export const testGuildA = makeGuild({
  name: 'Guildhall Test A',
  ids: {
    guild: '1200000000000000100', category: '1200000000000000110', general: '1200000000000000111',
    modLog: '1200000000000000112', welcome: '1200000000000000113', member: '1200000000000000121',
    moderator: '1200000000000000122', muted: '1200000000000000123', bot: '1200000000000000124',
    admin: '1200000000000000125',
  },
});
export const testGuildB = makeGuild({
  name: 'Guildhall Test B',
  ownerKey: 'admin',
  ids: {
    guild: '1200000000000000200', category: '1200000000000000210', general: '1200000000000000211',
    modLog: '1200000000000000212', welcome: '1200000000000000213', member: '1200000000000000221',
    moderator: '1200000000000000222', muted: '1200000000000000223', bot: '1200000000000000224',
    admin: '1200000000000000225',
  },
});

export const guilds = Object.freeze({ demo: demoGuild, a: testGuildA, b: testGuildB });

/** Fixture user key -> the permission set the member has in a fixture guild. */
export const MEMBER_PERMS = Object.freeze({
  owner: PERMS.ALL, admin: PERMS.ALL, moderator: PERMS.MODERATOR, member: PERMS.MEMBER,
  muted: PERMS.MUTED, bot: PERMS.BOT,
});

// ------------------------------------------------------------ shards, premium
export const SHARDS = Object.freeze({ count: 2, ids: [0, 1] });
/** Discord's formula: (guild_id >> 22) % num_shards. */
export function shardFor(guildId, count = SHARDS.count) {
  return Number((BigInt(guildId) >> 22n) % BigInt(count));
}

const DAY = 86400 * 1000;
/** Premium states relative to now (ISO strings); grace = expired but within grace. */
export function premiumStates(now = Date.now()) {
  return {
    none: { tier: null, status: 'none', expires_at: null, grace_until: null },
    active: { tier: 'premium', status: 'active', expires_at: new Date(now + 30 * DAY).toISOString(), grace_until: null },
    expired: { tier: 'premium', status: 'expired', expires_at: new Date(now - 30 * DAY).toISOString(), grace_until: new Date(now - 23 * DAY).toISOString() },
    grace: { tier: 'premium', status: 'grace', expires_at: new Date(now - 2 * DAY).toISOString(), grace_until: new Date(now + 5 * DAY).toISOString() },
  };
}

// ------------------------------------------------------- the fake's seed state
/** Fresh, mutable copy of the fake Discord's seed (demo + two test guilds). */
export function seedState({ applicationId = APPLICATION_ID } = {}) {
  const st = { guilds: {}, users: {}, messages: {}, commands: { global: [], guilds: {} }, audit_log: [] };
  for (const u of Object.values(users)) st.users[u.id] = structuredClone(u);
  const botUser = { ...structuredClone(users.bot), id: applicationId };
  delete st.users[users.bot.id];
  st.users[applicationId] = botUser;
  for (const g of [demoGuild, testGuildA, testGuildB]) addGuildToState(st, g, applicationId);
  return st;
}

/** Adds a makeGuild() description to a seed state (used by the fake's /_fake/guilds). */
export function addGuildToState(st, g, applicationId = APPLICATION_ID) {
  const roles = {};
  for (const r of Object.values(g.roles)) {
    roles[r.id] = structuredClone(r);
    if (r.tags?.bot_id) roles[r.id].tags = { bot_id: applicationId };
  }
  const channels = {};
  for (const c of Object.values(g.channels)) {
    channels[c.id] = structuredClone(c);
    if (c.type === 0) st.messages[c.id] = st.messages[c.id] ?? {};
  }
  const members = {};
  for (const m of g.members) {
    const mm = structuredClone(m);
    if (mm.fixture_key === 'bot' || mm.user.bot) mm.user = structuredClone(st.users[applicationId] ?? { ...users.bot, id: applicationId });
    delete mm.fixture_key;
    members[mm.user.id] = mm;
    if (!st.users[mm.user.id]) st.users[mm.user.id] = structuredClone(mm.user);
  }
  st.guilds[g.guild.id] = { guild: structuredClone(g.guild), roles, channels, members, bans: {} };
  return st;
}

// ------------------------------------------------------- interaction builders
/** A token shaped like Discord's (base64 of "interaction:<id>:<random>"). */
export function interactionToken(id) {
  const rnd = Array.from({ length: 64 }, () => 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'[Math.floor(Math.random() * 62)]).join('');
  // base64url without padding: the token travels in URL paths
  return Buffer.from(`interaction:${id}:${rnd}`).toString('base64url');
}

function optionType(v) {
  if (typeof v === 'boolean') return 5;
  if (typeof v === 'number') return Number.isInteger(v) ? 4 : 10;
  return 3;
}

/** {deferred: true, text: 'x'} or [{name, type, value}] -> Discord option array. */
export function toOptions(options) {
  if (!options) return undefined;
  if (Array.isArray(options)) return options;
  return Object.entries(options).map(([name, value]) =>
    value && typeof value === 'object' && 'type' in value ? { name, ...value } : { name, type: optionType(value), value });
}

function guildContext(guild) {
  if (!guild) return demoGuild;
  if (typeof guild === 'string') return guilds[guild] ?? { guild: { id: guild, preferred_locale: 'en-US', features: [] }, channels: {}, roles: {}, members: [] };
  return guild;
}

/**
 * Common interaction envelope. opts: guild (makeGuild() object, a fixture key
 * 'demo'|'a'|'b', or a guild id string), user (fixture key or user object),
 * perms (decimal string; default from the fixture role), channel (channel
 * object or id), dm (true: a DM interaction, no guild), locale.
 * id/token/application_id may be given; the fake fills missing ones.
 */
export function baseInteraction(type, opts = {}) {
  const { dm = false, locale = 'en-US' } = opts;
  const userKey = typeof opts.user === 'string' ? opts.user : undefined;
  const u = typeof opts.user === 'object' && opts.user ? opts.user : users[userKey ?? (dm ? 'dm' : 'member')];
  if (!u) throw new Error(`fixtures: unknown user ${opts.user}`);
  const ix = {
    type,
    version: 1,
    locale,
    entitlements: [],
    entitlement_sku_ids: [],
    attachment_size_limit: 10485760,
  };
  if (opts.id) ix.id = opts.id;
  if (opts.token) ix.token = opts.token;
  if (opts.application_id) ix.application_id = opts.application_id;
  if (dm) {
    const chId = opts.channel?.id ?? opts.channel ?? snowflake();
    ix.user = structuredClone(u);
    ix.channel_id = chId;
    ix.channel = { id: chId, type: 1, flags: 0, last_message_id: null, recipients: [structuredClone(u)] };
    ix.context = 1;
    ix.authorizing_integration_owners = { 0: '0' };
    ix.app_permissions = PERMS.MEMBER;
    return ix;
  }
  const g = guildContext(opts.guild);
  const gid = g.guild.id;
  const ch = typeof opts.channel === 'object' && opts.channel ? opts.channel
    : (typeof opts.channel === 'string' ? { id: opts.channel, guild_id: gid, name: 'channel', type: 0 } : g.channels.general)
    ?? { id: snowflake(), guild_id: gid, name: 'general', type: 0 };
  const fixtureMember = g.members?.find((m) => m.user.id === u.id);
  const perms = opts.perms ?? (userKey && MEMBER_PERMS[userKey]) ?? (g.guild.owner_id === u.id ? PERMS.ALL : PERMS.MEMBER);
  ix.guild_id = gid;
  ix.guild = { id: gid, locale: g.guild.preferred_locale ?? 'en-US', features: g.guild.features ?? [] };
  ix.guild_locale = g.guild.preferred_locale ?? 'en-US';
  ix.channel_id = ch.id;
  ix.channel = {
    id: ch.id, guild_id: gid, name: ch.name ?? 'general', type: ch.type ?? 0, nsfw: false, parent_id: ch.parent_id ?? null,
    position: ch.position ?? 0, rate_limit_per_user: 0, flags: 0, permissions: perms, last_message_id: null, topic: null,
  };
  ix.member = {
    user: structuredClone(u),
    roles: opts.roles ?? fixtureMember?.roles ?? [],
    premium_since: null, permissions: perms, pending: false, nick: fixtureMember?.nick ?? null,
    mute: false, deaf: false, joined_at: fixtureMember?.joined_at ?? '2024-03-01T10:00:00.000000+00:00',
    flags: 0, avatar: null, banner: null, communication_disabled_until: null,
    unusual_dm_activity_until: null,
  };
  ix.context = 0;
  ix.authorizing_integration_owners = { 0: gid };
  ix.app_permissions = opts.app_permissions ?? PERMS.BOT;
  return ix;
}

export function ping(opts = {}) {
  const ix = { type: 1, version: 1, entitlements: [] };
  ix.user = { id: '643945264868098049', username: 'discord', global_name: 'Discord', discriminator: '0000', avatar: null, bot: true, system: true, public_flags: 1 };
  if (opts.id) ix.id = opts.id;
  if (opts.token) ix.token = opts.token;
  if (opts.application_id) ix.application_id = opts.application_id;
  return ix;
}

/** A CHAT_INPUT command (type 2, data.type 1). options: object or Discord array. */
export function chatInput(name, opts = {}) {
  const ix = baseInteraction(2, opts);
  ix.data = { id: opts.command_id ?? snowflake(), name, type: 1 };
  const options = toOptions(opts.options);
  if (options) ix.data.options = options;
  if (opts.resolved) ix.data.resolved = opts.resolved;
  if (ix.guild_id) ix.data.guild_id = opts.commandGuildId ?? undefined;
  if (ix.data.guild_id === undefined) delete ix.data.guild_id;
  return ix;
}

/** A subcommand invocation: /name sub option... */
export function subcommand(name, sub, opts = {}) {
  return chatInput(name, { ...opts, options: [{ name: sub, type: 1, options: toOptions(opts.options) ?? [] }] });
}

/** A button or select click (type 3). */
export function component(customId, opts = {}) {
  const ix = baseInteraction(3, opts);
  ix.data = { custom_id: customId, component_type: opts.component_type ?? 2 };
  if (opts.values) ix.data.values = opts.values;
  ix.message = opts.message ?? {
    id: snowflake(), channel_id: ix.channel_id, type: 20, content: '', flags: 0, components: [],
    author: structuredClone(users.bot), embeds: [], attachments: [], mentions: [], mention_roles: [],
    pinned: false, mention_everyone: false, tts: false, timestamp: new Date().toISOString(), edited_timestamp: null,
  };
  return ix;
}

/** Autocomplete (type 4): options with focused: true on the typed one. */
export function autocomplete(name, options, opts = {}) {
  const ix = baseInteraction(4, opts);
  ix.data = { id: snowflake(), name, type: 1, options: toOptions(options) };
  return ix;
}

/** Modal submit (type 5): fields {custom_id: value}. */
export function modalSubmit(customId, fields, opts = {}) {
  const ix = baseInteraction(5, opts);
  ix.data = {
    custom_id: customId,
    components: Object.entries(fields).map(([cid, value], i) => ({
      type: 18, id: i + 1, component: { type: 4, id: 100 + i, custom_id: cid, value },
    })),
  };
  return ix;
}

export const INTERACTION_TYPES = Object.freeze({ PING: 1, APPLICATION_COMMAND: 2, MESSAGE_COMPONENT: 3, AUTOCOMPLETE: 4, MODAL_SUBMIT: 5 });
export const CALLBACK_TYPES = Object.freeze({ PONG: 1, CHANNEL_MESSAGE: 4, DEFERRED_CHANNEL_MESSAGE: 5, DEFERRED_UPDATE: 6, UPDATE_MESSAGE: 7, AUTOCOMPLETE_RESULT: 8, MODAL: 9 });
export const MESSAGE_FLAGS = Object.freeze({ SUPPRESS_EMBEDS: 4, EPHEMERAL: 64, LOADING: 128, SUPPRESS_NOTIFICATIONS: 4096, IS_COMPONENTS_V2: 32768 });
