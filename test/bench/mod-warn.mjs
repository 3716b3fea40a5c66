// The /warn benchmark's data (scripts/bench.sh, moderation section), against the running bench
// stack (its stack.env in the environment):
//   node mod-warn.mjs setup [guilds=100]
//     creates the guilds in PostgreSQL (guilds rows, moderation settings with escalation and DMs
//     off) and in the fake Discord (roles, channels, the bot's member: the hierarchy check reads
//     them through Redis with a REST fallback); idempotent.
//   node mod-warn.mjs sign <seed hex> <count> <out.lua> [guilds=100] [targets=1000]
//     signs <count> /warn interactions for wrk (mod-warn.lua): guild, target (a member of that
//     guild with the Member role, resolved in the interaction) and interaction id vary; the
//     invoker is the fixture moderator (Moderate Members, Moderator role above Member).
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chatInput, makeGuild, PERMS, users } from '../lib/fixtures.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const [mode, ...args] = process.argv.slice(2);
const GUILD_BASE = 1310000000000000000n; // bench guild i: GUILD_BASE + i * 1_000_000
const TARGET_BASE = 1320000000000000000n; // target j of guild i: TARGET_BASE + i * 1_000_000 + j
const APP_ID = process.env.DISCORD_APPLICATION_ID ?? '1234567890123456789';

/** The bench guild i, with fixed ids (role and channel ids derived from the guild id). */
function benchGuild(i) {
  const gid = GUILD_BASE + BigInt(i) * 1000000n;
  const ids = { guild: gid.toString() };
  ['category', 'general', 'modLog', 'welcome', 'member', 'muted', 'moderator', 'bot', 'admin']
    .forEach((k, n) => { ids[k] = (gid + BigInt(n + 1)).toString(); });
  return makeGuild({ name: `Bench ${i}`, ids, botUserId: APP_ID });
}

function psql(sql) {
  execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', process.env.DATABASE_URL, '-f', '-'],
    { input: sql, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

async function setup(nGuilds) {
  const fake = (process.env.GH_FAKE_DISCORD_URL ?? '').replace(/\/api\/v10$/, '').replace(/\/$/, '');
  const doc = JSON.stringify({ escalation_enabled: false, dm_on_action: false, warn_decay: '30d' });
  const values = [];
  for (let i = 0; i < nGuilds; i++) values.push(`(${GUILD_BASE + BigInt(i) * 1000000n}, 'Bench ${i}')`);
  psql(`INSERT INTO guilds (id, name) VALUES ${values.join(',')} ON CONFLICT (id) DO NOTHING;
INSERT INTO guild_settings (guild_id, feature, document)
  SELECT id, 'moderation', '${doc}'::jsonb FROM guilds WHERE id IN (${values.map((v) => v.slice(1, v.indexOf(','))).join(',')})
  ON CONFLICT (guild_id, feature) DO UPDATE SET document = EXCLUDED.document;`);
  if (fake) {
    for (let i = 0; i < nGuilds; i++) {
      const res = await fetch(`${fake}/_fake/guilds`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ guild: benchGuild(i) }),
      });
      if (!res.ok) throw new Error(`fake: adding bench guild ${i}: ${res.status} ${await res.text()}`);
    }
  }
  // What the gateway listener keeps warm in production (lib/discord/guildcache.h): each guild's
  // owner, roles and the bot's member. Without it the first requests of every guild all miss at
  // once and call Discord, whose global limit (50/s) refuses most: the bench would measure that.
  const resp = (args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
  let cmds = '';
  for (let i = 0; i < nGuilds; i++) {
    const g = benchGuild(i);
    const gid = g.guild.id;
    const roles = Object.values(g.roles).sort((x, y) => x.position - y.position);
    const botMember = { ...g.members.find((mm) => mm.fixture_key === 'bot') };
    delete botMember.fixture_key;
    botMember.user = { ...users.bot, id: APP_ID };
    cmds += resp(['SET', `bot:{${gid}}:cache:owner`, g.guild.owner_id, 'EX', '3600']);
    cmds += resp(['SET', `bot:{${gid}}:cache:roles`, JSON.stringify(roles), 'EX', '3600']);
    cmds += resp(['SET', `bot:{${gid}}:cache:member:${APP_ID}`, JSON.stringify(botMember), 'EX', '3600']);
    cmds += resp(['DEL', `bot:{${gid}}:settings:moderation`]);
  }
  execFileSync('redis-cli', ['-u', process.env.REDIS_URL, '--no-auth-warning', '--pipe'], { input: cmds, stdio: ['pipe', 'pipe', 'pipe'] });
  process.stderr.write(`mod-warn: ${nGuilds} guilds ready (settings: escalation off, no DM; owner, roles, bot member cached)\n`);
}

function sign(seedHex, count, out, nGuilds, nTargets) {
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seedHex, 'hex')]);
  const key = crypto.createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  const ts = String(Math.floor(Date.now() / 1000));
  const guilds = Array.from({ length: nGuilds }, (_, i) => benchGuild(i));
  let snow = (BigInt(Date.now()) - 1420070400000n) << 22n;
  const esc = (s) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  const fd = fs.openSync(out, 'w');
  fs.writeSync(fd, 'pool = {\n');
  const mod = users.moderator;
  for (let k = 0; k < count; k++) {
    const gi = k % nGuilds;
    const ti = Math.floor(k / nGuilds) % nTargets;
    const g = guilds[gi];
    const tid = (TARGET_BASE + BigInt(gi) * 1000000n + BigInt(ti)).toString();
    snow += 1n;
    const id = snow.toString();
    const body = chatInput('warn', {
      guild: g, user: mod, perms: PERMS.MODERATOR, roles: [g.roles.member.id, g.roles.moderator.id],
      id, token: Buffer.from(`interaction:${id}:bench`).toString('base64url'), application_id: APP_ID,
      options: [{ name: 'user', type: 6, value: tid }, { name: 'reason', type: 3, value: `bench warning ${k}` }],
      resolved: {
        users: { [tid]: { id: tid, username: `target${ti}`, global_name: null, discriminator: '0', avatar: null, public_flags: 0 } },
        members: {
          [tid]: {
            avatar: null, banner: null, communication_disabled_until: null, flags: 0, joined_at: '2024-01-01T00:00:00.000000+00:00',
            nick: null, pending: false, premium_since: null, roles: [g.roles.member.id], permissions: PERMS.MEMBER,
          },
        },
      },
    });
    const text = JSON.stringify(body);
    const sig = crypto.sign(null, Buffer.from(ts + text), key).toString('hex');
    fs.writeSync(fd, `{"${sig}","${esc(text)}"},\n`);
  }
  fs.writeSync(fd, `}\nts = "${ts}"\n`);
  fs.closeSync(fd);
  fs.rmSync(`${out}.next`, { force: true }); // mod-warn.lua starts at the pool's first request
  fs.rmSync(`${out}.sent`, { force: true });
}

if (mode === 'setup') await setup(Number(args[0] ?? 100));
else if (mode === 'sign') sign(args[0], Number(args[1] ?? 20000), args[2], Number(args[3] ?? 100), Number(args[4] ?? 1000));
else {
  process.stderr.write(`usage: node ${path.relative(process.cwd(), path.join(here, 'mod-warn.mjs'))} setup [guilds] | sign <seed> <count> <out.lua> [guilds] [targets]\n`);
  process.exit(2);
}
