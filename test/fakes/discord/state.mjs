// state.mjs - the fake Discord's state: guilds, members, roles, channels,
// messages, bans, commands, interaction tokens, OAuth grants (and the user the
// authorize page consents as) and entitlements.
//
// Plain JSON objects keyed by snowflake so the whole state can be dumped by
// GET /_fake/state and saved to --state-file. Seeded from test/lib/fixtures.mjs.
import fs from 'node:fs';
import { addGuildToState, seedState, PERMISSION_BITS } from '../../lib/fixtures.mjs';
import { snowflake } from '../../lib/snowflake.mjs';

export const ALL_PERMS = (1n << 53n) - 1n;

/** Discord's timestamp format: 2026-11-25T11:00:00.123000+00:00 */
export function discordTime(ms = Date.now()) {
  return new Date(ms).toISOString().replace('Z', '000+00:00');
}

export class Store {
  constructor({ applicationId, stateFile = null }) {
    this.applicationId = applicationId;
    this.stateFile = stateFile;
    this.saveTimer = null;
    this.ackWaiters = new Map(); // token -> [resolve]
    this.st = null;
    if (stateFile && fs.existsSync(stateFile)) {
      try {
        this.st = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
        this.st.interactions ??= {};
        this.st.oauth ??= { codes: {}, tokens: {}, refresh: {} };
        this.st.oauth.default_user_id ??= null;
        this.st.entitlements ??= {};
        this.st.dm_channels ??= {};
        this.st.dms_closed ??= {};
      } catch (e) {
        process.stderr.write(`fake-discord: cannot read state file ${stateFile} (${e.message}); starting from the seed\n`);
        this.st = null;
      }
    }
    if (!this.st) this.reset();
  }

  reset() {
    this.st = seedState({ applicationId: this.applicationId });
    this.st.interactions = {};
    this.st.oauth = { codes: {}, tokens: {}, refresh: {}, default_user_id: null };
    this.st.entitlements = {};
    this.st.dm_channels = {}; // id -> DM channel object (type 1), one per recipient
    this.st.dms_closed = {}; // user id -> true: messages to their DM channel fail with 50007
    for (const list of this.ackWaiters.values()) for (const w of list) w();
    this.ackWaiters.clear();
    this.changed();
  }

  /** Marks the state dirty; the state file is written shortly after. */
  changed() {
    if (!this.stateFile || this.saveTimer) return;
    this.saveTimer = setTimeout(() => { this.saveTimer = null; this.save(); }, 50);
    this.saveTimer.unref?.();
  }

  save() {
    if (!this.stateFile) return;
    const tmp = `${this.stateFile}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.st));
    fs.renameSync(tmp, this.stateFile);
  }

  addGuild(desc) {
    addGuildToState(this.st, desc, this.applicationId);
    this.changed();
    return this.st.guilds[desc.guild.id];
  }

  // ------------------------------------------------------------- lookups
  guild(id) { return this.st.guilds[id]; }
  user(id) { return this.st.users[id]; }
  botUser() { return this.st.users[this.applicationId]; }

  /** A guild channel {guild, channel}, or a DM channel {guild: null, channel, dm: true}, or null. */
  channel(id) {
    for (const g of Object.values(this.st.guilds)) if (g.channels[id]) return { guild: g, channel: g.channels[id] };
    const dm = this.st.dm_channels?.[id];
    if (dm) return { guild: null, channel: dm, dm: true };
    return null;
  }

  /** The DM channel with a user (created on first use, as Discord does). */
  dmChannel(userId) {
    const found = Object.values(this.st.dm_channels).find((c) => c.recipients[0]?.id === userId);
    if (found) return found;
    const c = {
      id: snowflake(), type: 1, last_message_id: null, flags: 0,
      recipients: [structuredClone(this.user(userId))],
    };
    this.st.dm_channels[c.id] = c;
    this.changed();
    return c;
  }

  /** Marks a user's DMs closed (true) or open (false): POST /_fake/users/{id}/dms. */
  setDmsClosed(userId, closed) {
    if (closed) this.st.dms_closed[userId] = true;
    else delete this.st.dms_closed[userId];
    this.changed();
  }

  dmsClosed(userId) { return Boolean(this.st.dms_closed?.[userId]); }

  /** true when the user is in a guild the bot is in (Discord refuses DMs otherwise). */
  sharesGuildWithBot(userId) {
    return Object.values(this.st.guilds).some((g) => g.members[userId] && this.botMember(g));
  }

  /** Highest role position of a member (0 = only @everyone). */
  highestPosition(g, member) {
    let p = 0;
    for (const rid of member?.roles ?? []) p = Math.max(p, g.roles[rid]?.position ?? 0);
    return p;
  }

  /** Guild-level permissions of a member (no channel overwrites), BigInt. */
  memberPerms(g, member) {
    if (!member) return 0n;
    if (g.guild.owner_id === member.user.id) return ALL_PERMS;
    let p = BigInt(g.roles[g.guild.id]?.permissions ?? '0');
    for (const rid of member.roles) p |= BigInt(g.roles[rid]?.permissions ?? '0');
    if (p & PERMISSION_BITS.ADMINISTRATOR) return ALL_PERMS;
    return p;
  }

  botMember(g) { return g.members[this.applicationId]; }

  botHas(g, perm) {
    return (this.memberPerms(g, this.botMember(g)) & PERMISSION_BITS[perm]) !== 0n;
  }

  /** true when the bot's highest role is above the target member's. */
  botOutranks(g, target) {
    if (!target) return true;
    if (g.guild.owner_id === target.user.id) return false;
    return this.highestPosition(g, this.botMember(g)) > this.highestPosition(g, target);
  }

  // ------------------------------------------------------------ messages
  messagesOf(channelId) { return (this.st.messages[channelId] ??= {}); }

  audit(guildId, action, targetId, reason, extra = {}) {
    this.st.audit_log.push({
      id: snowflake(), guild_id: guildId, action_type: action, target_id: targetId,
      user_id: this.applicationId, reason: reason ?? null, time: discordTime(), ...extra,
    });
    if (this.st.audit_log.length > 5000) this.st.audit_log.splice(0, this.st.audit_log.length - 5000);
  }

  // -------------------------------------------------- interaction tokens
  interaction(token) { return this.st.interactions[token]; }

  /** Resolves when the interaction is acknowledged or failed (or after ms). */
  waitAck(token, ms = 3500) {
    const ix = this.st.interactions[token];
    if (!ix || ix.state !== 'pending') return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref?.();
      const list = this.ackWaiters.get(token) ?? [];
      list.push(() => { clearTimeout(t); resolve(); });
      this.ackWaiters.set(token, list);
    });
  }

  settle(token) {
    const list = this.ackWaiters.get(token);
    if (!list) return;
    this.ackWaiters.delete(token);
    for (const w of list) w();
  }

  /** Drops interaction tokens older than an hour (they expired long ago). */
  pruneInteractions(now = Date.now()) {
    for (const [tok, ix] of Object.entries(this.st.interactions)) {
      if (now - ix.created_at > 3600 * 1000) delete this.st.interactions[tok];
    }
  }
}
