// moderation.mjs - helpers of the moderation tests (issue 6): a guild with
// extra members, signed moderation commands with resolved targets, the
// settings written straight into PostgreSQL, the cases read back, the Discord
// calls and mod-log posts the fake received.
//
//   const m = modHelpers(h);
//   const g = await m.guild(t);                                  // fixture guild + targets t1..t6, peer
//   m.settings(g, { dm_on_action: false, mod_log_channel_id: g.channels.modLog.id });
//   const a = await m.cmd('warn', g, { target: 't1', options: { reason: 'spam' } });
//   a.data / a.text / a.ephemeral; m.cases(g) -> normalized mod_cases rows
import assert from 'node:assert/strict';
import { chatInput, makeGuild, MEMBER_PERMS, PERMS, users } from './fixtures.mjs';
import { escapeRe, webhookPath } from './fake.mjs';
import { EPHEMERAL, messageText } from './gh.mjs';
import { cleanupGuild, exec, query, redis } from './store.mjs';
import { snowflake } from './snowflake.mjs';
import { waitFor } from './wait.mjs';

export const SENSITIVE = /\/guilds\/[0-9]+\/(bans|members)\/|\/channels\/[0-9]+(\/permissions|\/messages\/bulk-delete|$)/;

function extraUser(name) {
  return {
    id: snowflake(), username: name, global_name: name[0].toUpperCase() + name.slice(1), discriminator: '0',
    avatar: null, avatar_decoration_data: null, clan: null, public_flags: 0, flags: 0, bot: false,
  };
}

/** Decodes a duration ISO time difference from now, in seconds (may be negative). */
export function secondsFromNow(iso) {
  return (Date.parse(iso) - Date.now()) / 1000;
}

export function modHelpers(h) {
  const db = h.stack.DATABASE_URL;
  const q = (sql, params) => query(db, sql, params);
  const x = (sql, params) => exec(db, sql, params);

  const m = {
    q,
    x,
    /**
     * A fresh guild (fixture layout) plus members: peer (a second moderator:
     * roles member + moderator), t1..t6 (plain members), staff (member role
     * plus a "Staff" role at position 2 with no permissions, for tier tests),
     * and a Jail role (position 1).
     * Known to the fake; its rows and keys are deleted after the test.
     */
    async guild(t, { extraTargets = 6 } = {}) {
      const g = makeGuild({ ids: { guild: snowflake() }, botUserId: h.stack.DISCORD_APPLICATION_ID });
      g.extra = {};
      const joined = '2023-05-01T10:00:00.000000+00:00';
      const add = (key, roles) => {
        const u = extraUser(`${key}_${g.guild.id.slice(-5)}`);
        g.extra[key] = u;
        g.members.push({
          user: u, nick: null, avatar: null, banner: null, roles, joined_at: joined, premium_since: null,
          deaf: false, mute: false, flags: 0, pending: false, communication_disabled_until: null, fixture_key: key,
        });
      };
      g.roles.staff = {
        ...g.roles.member, id: snowflake(), name: 'Staff', position: 2, permissions: '0', hoist: false,
      };
      g.roles.jail = { ...g.roles.member, id: snowflake(), name: 'Jail', position: 1, permissions: '0' };
      add('peer', [g.roles.member.id, g.roles.moderator.id]);
      add('staff', [g.roles.member.id, g.roles.staff.id]);
      for (let i = 1; i <= extraTargets; i++) add(`t${i}`, [g.roles.member.id]);
      await h.fake.addGuild(g);
      t.after(() => {
        const errors = cleanupGuild(h.stack, g.guild.id);
        if (errors.length) process.stderr.write(`# cleanup of guild ${g.guild.id}: ${errors.join('; ')}\n`);
      });
      return g;
    },

    /** The user object of a fixture key (owner, moderator, ...), an extra key (t1, peer) or a user object. */
    user(g, who) {
      if (typeof who === 'object') return who;
      if (g.extra?.[who]) return g.extra[who];
      if (who === 'bot') return { ...users.bot, id: h.stack.DISCORD_APPLICATION_ID };
      if (users[who]) return users[who];
      throw new Error(`moderation test: unknown user ${who}`);
    },
    id(g, who) { return typeof who === 'string' && /^[0-9]+$/.test(who) ? who : m.user(g, who).id; },

    /** The guild member of a user (fixture layout), or undefined when not a member. */
    member(g, who) {
      const id = m.id(g, who);
      return g.members.find((mm) => mm.user.id === id);
    },

    /** Permissions (decimal string) a member has in the fixture layout. */
    perms(g, who) {
      const mm = m.member(g, who);
      if (!mm) return PERMS.NONE;
      if (mm.fixture_key && MEMBER_PERMS[mm.fixture_key]) return MEMBER_PERMS[mm.fixture_key];
      let p = BigInt(g.roles.everyone.permissions);
      for (const rid of mm.roles) {
        const r = Object.values(g.roles).find((rr) => rr.id === rid);
        if (r) p |= BigInt(r.permissions);
      }
      return p.toString();
    },

    /** data.resolved for USER options: users and, for members, the partial member object. */
    resolved(g, whos) {
      const out = { users: {}, members: {} };
      for (const w of whos) {
        const bare = typeof w === 'object' && w.user && !w.id; // {user}: no member object
        const who = bare ? w.user : w;
        const u = m.user(g, who);
        out.users[u.id] = { ...u };
        const mm = bare ? undefined : m.member(g, who);
        if (mm) {
          out.members[u.id] = {
            avatar: null, banner: null, communication_disabled_until: null, flags: 0, joined_at: mm.joined_at,
            nick: mm.nick, pending: false, premium_since: null, roles: [...mm.roles], permissions: m.perms(g, who),
            unusual_dm_activity_until: null,
          };
        }
      }
      if (!Object.keys(out.members).length) delete out.members;
      return out;
    },

    /**
     * Builds a moderation command. target (a user key/object/id) becomes the
     * USER option `user` (first) with its resolved data; options are added
     * after it; sub makes it /name sub ...; user is the invoker (default
     * moderator); perms/roles override the invoker's.
     */
    build(name, g, { target, user = 'moderator', options = {}, sub, perms, roles, id, token, channel, app_permissions } = {}) {
      const opts = [];
      const resolvedWho = [];
      if (target !== undefined) {
        const tid = m.id(g, target);
        opts.push({ name: 'user', type: 6, value: tid });
        // a bare id (unban, hackban): the user only, as Discord resolves someone not in the guild
        if (/^[0-9]+$/.test(String(target))) resolvedWho.push({ user: { ...(Object.values(users).find((u) => u.id === tid) ?? extraUser('someone')), id: tid } });
        else resolvedWho.push(target);
      }
      for (const [k, v] of Object.entries(options)) {
        if (v === undefined) continue;
        if (v && typeof v === 'object' && 'type' in v) opts.push({ name: k, ...v });
        else opts.push({ name: k, type: typeof v === 'boolean' ? 5 : (typeof v === 'number' ? 4 : 3), value: v });
      }
      const inv = m.user(g, user);
      const invMember = m.member(g, user);
      const base = {
        guild: g, user: inv, id, token, channel, app_permissions,
        perms: perms ?? m.perms(g, user), roles: roles ?? invMember?.roles ?? [],
      };
      let body;
      if (sub) body = chatInput(name, { ...base, options: [{ name: sub, type: 1, options: opts }] });
      else body = chatInput(name, { ...base, options: opts.length ? opts : undefined });
      if (resolvedWho.length) body.data.resolved = m.resolved(g, resolvedWho);
      return body;
    },

    /**
     * Sends a command and returns {r, data, text, ephemeral, deferred}: data is
     * the final message (the type 4 answer, or the PATCH of @original after a
     * type 5).
     */
    async cmd(name, g, opts = {}) {
      const body = m.build(name, g, opts);
      const r = await h.send(body);
      return m.final(r);
    },

    async final(r) {
      assert.equal(r.status, 200, `interaction answered ${r.status}: ${JSON.stringify(r.body)}`);
      let data = r.body?.data ?? {};
      let deferred = false;
      let flags = data.flags ?? 0;
      if (r.body?.type === 5) {
        deferred = true;
        const path = `${webhookPath(h.appId, r.interaction.token)}/messages/@original`;
        const [patch] = await h.fake.waitForRequests({ method: 'PATCH', path },
          { timeout: 20000, message: 'the edit of @original after a deferred answer' });
        data = patch.body ?? {};
        flags = r.body?.data?.flags ?? 0;
      } else {
        assert.equal(r.body?.type, 4, `answer type 4 or 5: ${JSON.stringify(r.body)}`);
      }
      return { r, data, text: messageText(data), ephemeral: (flags & EPHEMERAL) === EPHEMERAL, deferred, id: r.interaction.id };
    },

    /** Writes the guild's moderation settings in PostgreSQL (guilds row too) and drops the Redis copy. */
    settings(g, doc) {
      const gid = typeof g === 'string' ? g : g.guild.id;
      x(`INSERT INTO guilds (id, name) VALUES (:'g', 'moderation test') ON CONFLICT (id) DO NOTHING;
         INSERT INTO guild_settings (guild_id, feature, document) VALUES (:'g', 'moderation', (:'d')::jsonb)
           ON CONFLICT (guild_id, feature) DO UPDATE SET document = EXCLUDED.document, version = guild_settings.version + 1;`,
      { g: gid, d: JSON.stringify(doc) });
      redis(h.stack.REDIS_URL, 'DEL', `bot:{${gid}}:settings:moderation`);
    },

    /** Quiet defaults for most tests: no DM, escalation off, the mod-log channel set. */
    quiet(g, extra = {}) {
      m.settings(g, { dm_on_action: false, escalation_enabled: false, mod_log_channel_id: g.channels.modLog.id, ...extra });
    },

    /** mod_cases rows of the guild, by number, normalized: {number, type, status, target_id, moderator_id, ...raw}. */
    cases(g) {
      const gid = typeof g === 'string' ? g : g.guild.id;
      const rows = q("SELECT to_jsonb(c) AS j FROM mod_cases c WHERE guild_id = :'g' ORDER BY number", { g: gid });
      return rows.map(({ j }) => m.norm(j));
    },
    norm(j) {
      const s = (v) => (v === null || v === undefined ? null : String(v));
      return {
        ...j,
        number: Number(j.number),
        type: s(j.type)?.toUpperCase() ?? null,
        status: s(j.status)?.toLowerCase() ?? null,
        target_id: s(j.target_id),
        moderator_id: j.moderator_id === null || j.moderator_id === undefined || String(j.moderator_id) === '0' ? null : s(j.moderator_id),
        reason: j.reason ?? null,
        duration_s: j.duration_s ?? j.duration_seconds ?? j.duration ?? null,
        refs_case: j.refs_case === null || j.refs_case === undefined || Number(j.refs_case) === 0 ? null : Number(j.refs_case),
        lift: s(j.lift ?? j.lift_state)?.toLowerCase() ?? null,
        error: j.error ?? j.discord_error ?? null,
      };
    },
    /** Waits until the guild has n cases (or more); returns them. */
    async waitCases(g, n, { timeout = 15000, message } = {}) {
      return waitFor(() => { const c = m.cases(g); return c.length >= n ? c : null; },
        { timeout, message: message ?? `${n} case(s) in guild ${g.guild?.id ?? g}` });
    },

    /** Requests the fake received since seq that change something in guild g (bans, members, channels, bulk delete). */
    async actions(g, since) {
      const gid = g.guild.id;
      const chans = Object.values(g.channels).map((c) => c.id);
      const list = await h.fake.requests({ since });
      return list.filter((r) => r.method !== 'GET' && (
        r.path.includes(`/guilds/${gid}/bans/`) || r.path.includes(`/guilds/${gid}/members/`)
        || chans.some((c) => r.path === `/api/v10/channels/${c}` || r.path.startsWith(`/api/v10/channels/${c}/permissions`)
          || r.path === `/api/v10/channels/${c}/messages/bulk-delete`)));
    },

    /** Waits for the worker's mod-log post about case `number`; returns the request. */
    async modLog(g, number, { timeout = 30000 } = {}) {
      const path = `/api/v10/channels/${g.channels.modLog.id}/messages`;
      return waitFor(async () => {
        const list = await h.fake.requests({ method: 'POST', path });
        return list.find((r) => r.status < 300 && new RegExp(`#\\s*${number}\\b|case\\s*#?\\s*${number}\\b`, 'i')
          .test(JSON.stringify(r.body?.embeds ?? r.body?.content ?? ''))) ?? null;
      }, { timeout, interval: 250, message: `the mod-log post of case ${number} in ${g.channels.modLog.id}` });
    },

    /** Highest security_events id so far. */
    secSince() { return Number(q('SELECT coalesce(max(id), 0)::text AS id FROM security_events')[0].id); },
    security(g, since, userId) {
      return q(`SELECT id::text, kind, user_id::text, detail FROM security_events
                 WHERE id > :'s'::bigint AND guild_id = :'g'::bigint ${userId ? "AND user_id = :'u'::bigint" : ''} ORDER BY id`,
      { s: String(since), g: g.guild.id, u: userId ?? '' });
    },

    /** The Redis active-warning count key of a user. */
    warnKey(g, who) { return `bot:{${g.guild.id}}:moderation:warns:${m.id(g, who)}`; },
    warnCount(g, who) {
      const v = redis(h.stack.REDIS_URL, 'GET', m.warnKey(g, who));
      return v === '' ? null : Number(v);
    },

    /** Asserts a refusal: ephemeral, says something, no case, no Discord action. */
    async refused(a, g, since, why, { cases = 0 } = {}) {
      assert.equal(a.ephemeral, true, `the refusal is ephemeral: ${JSON.stringify(a.data)}`);
      if (why) assert.match(a.text, why, `the refusal says why: ${a.text}`);
      assert.ok('allowed_mentions' in a.data, 'allowed_mentions set on the refusal');
      assert.equal(m.cases(g).length, cases, `no case written: ${JSON.stringify(m.cases(g))}`);
      const acts = await m.actions(g, since);
      assert.deepEqual(acts.map((r) => `${r.method} ${r.path}`), [], 'no Discord action');
    },

    /** The fake's member object of a user in g (undefined when not a member). */
    async fakeMember(g, who) {
      const st = await h.fake.state();
      const id = m.id(g, who);
      return (st.members[g.guild.id] ?? []).find((mm) => mm.user.id === id);
    },
    /** Whether the fake has a ban of the user in g. */
    async fakeBanned(g, who) {
      const st = await h.fake.state();
      const id = m.id(g, who);
      return (st.bans[g.guild.id] ?? []).some((b) => b.user.id === id);
    },

    /** The audit-log reason header of a recorded request (decoded). */
    auditReason(req) {
      const v = req.headers?.['x-audit-log-reason'];
      if (v === undefined) return undefined;
      try { return decodeURIComponent(v); } catch { return v; }
    },

    escapeRe,
  };
  return m;
}

/** allowed_mentions of a message payload parses nothing. */
export function assertNoPings(data, what = 'the message') {
  assert.ok(data && typeof data.allowed_mentions === 'object' && data.allowed_mentions !== null,
    `${what} sets allowed_mentions: ${JSON.stringify(data)?.slice(0, 300)}`);
  assert.deepEqual(data.allowed_mentions.parse ?? [], [], `${what} parses no mentions`);
  assert.ok(!(data.allowed_mentions.roles?.length), `${what} pings no role`);
}
