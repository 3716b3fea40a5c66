// events_gateway.test.mjs - the events feature end to end THROUGH gateway-lite and the fake
// gateway: guildhall-gateway (--shards 0-0/1) connects to the fake Discord's gateway, the fake
// sends READY and one GUILD_CREATE per guild, and the test dispatches events with
// POST /_fake/gateway/dispatch. Checked: the Redis caches the inline handlers keep (and that
// gh_guildcache reads them instead of calling Discord), the gateway:event jobs the worker runs
// (job_runs, guilds rows), the legacy prefix commands (the reply the fake receives), the
// gh_before copy on MESSAGE_UPDATE (the job's payload as gateway-lite wrote it to Redis, seen
// with MONITOR), and that a replayed event is not queued twice (job id ev:<session>:<seq>).
//
// One gateway for the file (started once the test guilds exist, so their GUILD_CREATE comes on
// connect); the resume test restarts it. Guild A is installed (dashboard, settings, prefix
// commands); guild B is known to the fake only (its guilds row is made by the GUILD_CREATE job).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { makeGuild, users } from '../lib/fixtures.mjs';
import { startGateway } from '../lib/gateway.mjs';
import { harness, newGuildId } from '../lib/harness.mjs';
import { snowflake } from '../lib/snowflake.mjs';
import { cleanupGuild, query, redis, redisKeys } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();
const R = h.stack.REDIS_URL;
const DB = h.stack.DATABASE_URL;

const gw = (method, path, body) => h.fake.call(method, `/_fake/gateway${path}`, body);
const key = (g, k) => `bot:{${g}}:cache:${k}`;
const cachedArray = (g, k) => {
  const s = redis(R, 'GET', key(g, k));
  return s ? JSON.parse(s) : null;
};
const hash = (k) => {
  const flat = redis(R, 'HGETALL', k).split('\n');
  const o = {};
  for (let i = 0; i + 1 < flat.length; i += 2) o[flat[i]] = flat[i + 1];
  return o;
};
const guildRow = (g) => query(DB, "SELECT name, is_active FROM guilds WHERE id = :'g'", { g })[0] ?? null;
const jobRuns = (jobId) => query(DB,
  "SELECT kind, status, guild_id::text AS guild_id, attempt FROM job_runs WHERE job_id = :'j' ORDER BY id", { j: jobId });

/** Dispatches one event through the fake gateway; the answer has seq and session_id. */
async function dispatch(t, d) {
  const r = await gw('POST', '/dispatch', { t, d });
  assert.ok(r.seq, `dispatch ${t}: ${JSON.stringify(r)}`);
  assert.equal(r.delivered, true, `dispatch ${t} delivered to a connected session: ${JSON.stringify(r)}`);
  return r;
}

/** Waits for the worker's job_runs row of a gateway:event job (written in batches). */
async function jobRan(jobId, { timeout = 30000 } = {}) {
  return waitFor(() => {
    const rows = jobRuns(jobId);
    return rows.some((r) => r.status === 'done' || r.status === 'dead') ? rows : null;
  }, { timeout, interval: 200, message: `job_runs row of ${jobId}` });
}

async function putSettings(c, gid, feature, patch) {
  const cur = await c.get(`/guilds/${gid}/settings/${feature}`);
  assert.equal(cur.status, 200, cur.text);
  const r = await c.put(`/guilds/${gid}/settings/${feature}`,
    { document: { ...cur.body.document, ...patch }, version: cur.body.version });
  assert.equal(r.status, 200, r.text);
}

function messageFrom(g, who, content, extra = {}) {
  const m = g.members.find((x) => x.fixture_key === who);
  return {
    id: snowflake(), type: 0, guild_id: g.guild.id, channel_id: g.channels.general.id, content,
    author: { ...m.user }, member: { roles: m.roles, joined_at: m.joined_at, nick: null, deaf: false, mute: false },
    attachments: [], embeds: [], mentions: [], mention_roles: [], pinned: false, tts: false, mention_everyone: false,
    timestamp: new Date().toISOString(), edited_timestamp: null, flags: 0, ...extra,
  };
}

/**
 * redis-cli MONITOR for the whole file: every command Redis runs, with its arguments, so a test
 * can read a job exactly as gateway-lite queued it (the worker takes it off the list at once).
 */
function monitor() {
  const url = new URL(R);
  const proc = spawn('redis-cli', ['-h', url.hostname, '-p', url.port, 'monitor'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const lines = [];
  let rest = '';
  proc.stdout.on('data', (c) => {
    rest += c.toString('latin1');
    const parts = rest.split('\n');
    rest = parts.pop();
    lines.push(...parts);
  });
  return { proc, lines };
}

/** The quoted arguments of a MONITOR line, unescaped (sdscatrepr: \" \\ \n \r \t \a \b \xHH). */
function monitorArgs(line) {
  const out = [];
  const re = /"((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(line))) {
    const bytes = [];
    const s = m[1];
    for (let i = 0; i < s.length; i++) {
      if (s[i] !== '\\') { bytes.push(s.charCodeAt(i) & 0xff); continue; }
      const n = s[++i];
      if (n === 'x') { bytes.push(parseInt(s.slice(i + 1, i + 3), 16)); i += 2; } else {
        bytes.push({ n: 10, r: 13, t: 9, a: 7, b: 8 }[n] ?? n.charCodeAt(0));
      }
    }
    out.push(Buffer.from(bytes).toString('utf8'));
  }
  return out;
}

/** The job (parsed) that some command seen by MONITOR carried with the id jobId. */
function queuedJob(mon, jobId) {
  for (const line of mon.lines) {
    if (!line.includes(jobId) || !line.includes('gateway:event')) continue;
    for (const arg of monitorArgs(line)) {
      if (!arg.startsWith('{')) continue;
      try {
        const job = JSON.parse(arg);
        if (job.id === jobId) return job;
      } catch { /* not a job */ }
    }
  }
  return null;
}

let A; // installed guild (fixture layout)
let B; // guild only the fake knows
let owner;
let proc; // the running guildhall-gateway
let mon;

async function startGw() {
  proc = await startGateway({ shards: '0-0/1', env: { GATEWAY_STATUS_INTERVAL_MS: '200', GATEWAY_SETTINGS_TTL_MS: '500' } });
  return proc;
}

/** The connected session of shard 0 and its id. */
async function currentSession() {
  return waitFor(async () => {
    const v = await gw('GET', '/sessions');
    return v.sessions.find((x) => x.shard === 0 && x.current && x.connected && !x.invalidated) ?? null;
  }, { timeout: 20000, message: 'shard 0 connected' });
}

before(async () => {
  // a clean fake gateway, no gateway state left in Redis
  await gw('POST', '/reset');
  const gkeys = [...redisKeys(R, 'bot:{global}:gateway:*'), ...redisKeys(R, 'bot:{global}:shards:*')];
  if (gkeys.length) redis(R, 'DEL', ...gkeys);
  redis(R, 'DEL', 'bot:{global}:shards');

  A = makeGuild({ ids: { guild: newGuildId() }, botUserId: h.stack.DISCORD_APPLICATION_ID });
  B = makeGuild({ ids: { guild: newGuildId() }, botUserId: h.stack.DISCORD_APPLICATION_ID });
  await h.fake.addGuild(A);
  await h.fake.addGuild(B);
  await installGuild(h.fake, A.guild.id, users.owner.id);
  owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, A.guild.id);
  await putSettings(owner, A.guild.id, 'events', { prefix_enabled: true, prefix: '!' });
  // whatever the dashboard fetched from REST (300 s copies) goes: only GUILD_CREATE may fill them
  for (const g of [A, B]) {
    const ks = redisKeys(R, `bot:{${g.guild.id}}:cache:*`);
    if (ks.length) redis(R, 'DEL', ...ks);
  }
  assert.equal(guildRow(B.guild.id), null, 'guild B has no row before the gateway connects');
  mon = monitor();
  await startGw();
});

after(async () => {
  if (proc) await proc.stop();
  if (mon) mon.proc.kill();
  for (const g of [A, B]) {
    if (!g) continue;
    const errors = cleanupGuild(h.stack, g.guild.id);
    if (errors.length) process.stderr.write(`# cleanup of guild ${g.guild.id}: ${errors.join('; ')}\n`);
  }
});

test('GUILD_CREATE on connect fills the caches; the role picker reads them without calling Discord; the job makes the guilds row', async () => {
  for (const g of [A, B]) {
    const gid = g.guild.id;
    const summary = await waitFor(() => {
      const o = hash(key(gid, 'guild'));
      return o.id ? o : null;
    }, { timeout: 20000, message: `${key(gid, 'guild')} written by GUILD_CREATE` });
    assert.equal(summary.id, gid);
    assert.equal(summary.name, g.guild.name);
    assert.equal(summary.owner_id, g.guild.owner_id);
    assert.equal(summary.unavailable, '0');
    assert.equal(Number(summary.member_count), g.members.length);
    const roles = cachedArray(gid, 'roles');
    assert.deepEqual(roles.map((r) => r.id).sort(), Object.values(g.roles).map((r) => r.id).sort());
    const channels = cachedArray(gid, 'channels');
    assert.deepEqual(channels.map((c) => c.id).sort(), Object.values(g.channels).map((c) => c.id).sort());
    // the gateway's copies live 24 h (guildcache's own REST copies 300 s): they are the gateway's
    for (const k of ['guild', 'roles', 'channels']) {
      const ttl = Number(redis(R, 'TTL', key(gid, k)));
      assert.ok(ttl > 3600, `${key(gid, k)} TTL ${ttl} s is the gateway's (24 h)`);
    }
  }

  const since = await h.fake.seq();
  const r = await owner.get(`/guilds/${A.guild.id}/roles`);
  assert.equal(r.status, 200, r.text);
  const names = JSON.stringify(r.body);
  for (const role of Object.values(A.roles).filter((x) => x.name !== '@everyone')) assert.ok(names.includes(role.name), `${role.name} in ${names}`);
  const calls = await h.fake.requests({ method: 'GET', path: `/api/v10/guilds/${A.guild.id}/roles`, since });
  assert.equal(calls.length, 0, 'no GET /guilds/{g}/roles: the roles came from the gateway\'s cache');

  const row = await waitFor(() => guildRow(B.guild.id), { timeout: 30000, message: 'guilds row of B made by the GUILD_CREATE job' });
  assert.equal(row.name, B.guild.name);
  assert.equal(row.is_active, true);
});

test('GUILD_ROLE_CREATE and CHANNEL_DELETE through the gateway edit the cached arrays', async () => {
  const gid = A.guild.id;
  const role = {
    id: snowflake(), name: 'Gateway Role', color: 0, hoist: false, icon: null, unicode_emoji: null,
    position: 6, permissions: '0', managed: false, mentionable: false, flags: 0,
  };
  await dispatch('GUILD_ROLE_CREATE', { guild_id: gid, role });
  const roles = await waitFor(() => {
    const arr = cachedArray(gid, 'roles');
    return arr?.some((r) => r.id === role.id) ? arr : null;
  }, { timeout: 15000, message: 'the new role in the cached roles' });
  assert.equal(roles.length, Object.keys(A.roles).length + 1);
  assert.equal(roles.find((r) => r.id === role.id).name, 'Gateway Role');

  const gone = A.channels.welcome;
  await dispatch('CHANNEL_DELETE', { ...gone, guild_id: gid });
  const channels = await waitFor(() => {
    const arr = cachedArray(gid, 'channels');
    return arr && !arr.some((c) => c.id === gone.id) ? arr : null;
  }, { timeout: 15000, message: 'the deleted channel out of the cached channels' });
  assert.equal(channels.length, Object.keys(A.channels).length - 1);
  assert.ok(channels.some((c) => c.id === A.channels.general.id), 'the other channels stay');

  // the role picker shows the new role, still without calling Discord
  const since = await h.fake.seq();
  const r = await owner.get(`/guilds/${gid}/roles`);
  assert.equal(r.status, 200, r.text);
  assert.ok(JSON.stringify(r.body).includes(role.id), 'the role picker lists the role created through the gateway');
  assert.equal((await h.fake.requests({ method: 'GET', path: `/api/v10/guilds/${gid}/roles`, since })).length, 0);
});

test('GUILD_MEMBER_ADD counts the member in the summary and runs a gateway:event job', async () => {
  const gid = B.guild.id;
  const before = Number(hash(key(gid, 'guild')).member_count);
  assert.ok(before > 0, 'the summary exists (GUILD_CREATE)');
  const user = { id: snowflake(), username: 'newcomer', global_name: null, discriminator: '0', avatar: null, bot: false };
  const r = await dispatch('GUILD_MEMBER_ADD', {
    guild_id: gid, user, roles: [], joined_at: new Date().toISOString(), nick: null, deaf: false, mute: false, flags: 0, pending: false,
  });
  await waitFor(() => Number(hash(key(gid, 'guild')).member_count) === before + 1,
    { timeout: 15000, message: `member_count ${before} + 1` });
  const rows = await jobRan(`ev:${r.session_id}:${r.seq}`);
  assert.equal(rows.length, 1, JSON.stringify(rows));
  assert.equal(rows[0].kind, 'gateway:event');
  assert.equal(rows[0].status, 'done');
  assert.equal(rows[0].guild_id, gid);
  assert.ok(guildRow(gid), 'the guilds row exists');
});

test('MESSAGE_CREATE "!ping" with prefix commands enabled is answered in the channel as a reply', async () => {
  const since = await h.fake.seq();
  const msg = messageFrom(A, 'member', '!ping');
  await dispatch('MESSAGE_CREATE', msg);
  const path = `/api/v10/channels/${A.channels.general.id}/messages`;
  const found = await waitFor(async () => {
    const reqs = await h.fake.requests({ method: 'POST', path, since });
    return reqs.find((x) => x.body?.message_reference?.message_id === msg.id) ?? null;
  }, { timeout: 30000, message: 'the reply to !ping' });
  assert.equal(found.status, 200, JSON.stringify(found.response));
  assert.match(found.body.content, /^Pong!/);
  assert.deepEqual(found.body.allowed_mentions, { parse: [], replied_user: false });
  assert.equal(found.body.message_reference.channel_id, A.channels.general.id);
  // the command ran through the interactions router: command_log has it (interaction id = message id)
  const logRow = await h.commandLogRow(msg.id);
  assert.equal(String(logRow.guild_id), A.guild.id);
  // (no XP assertion: the levels feature is not on this branch)

  // a message that is not a command gets nothing; one from a bot neither
  const plain = messageFrom(A, 'member', 'ping without a prefix');
  const botMsg = messageFrom(A, 'bot', '!ping', { author: { ...A.members.find((m) => m.fixture_key === 'bot').user, bot: true } });
  await dispatch('MESSAGE_CREATE', plain);
  await dispatch('MESSAGE_CREATE', botMsg);
  // a later command is answered: by then the two above were handled (one connection, in order)
  const marker = messageFrom(A, 'moderator', '!ping');
  await dispatch('MESSAGE_CREATE', marker);
  await waitFor(async () => {
    const reqs = await h.fake.requests({ method: 'POST', path, since });
    return reqs.some((x) => x.body?.message_reference?.message_id === marker.id);
  }, { timeout: 30000, message: 'the reply to the marker !ping' });
  const reqs = await h.fake.requests({ method: 'POST', path, since });
  for (const m of [plain, botMsg]) {
    assert.equal(reqs.filter((x) => x.body?.message_reference?.message_id === m.id).length, 0, `no reply to ${m.content} (${m.author.bot ? 'bot' : 'member'})`);
  }
});

test('MESSAGE_UPDATE after MESSAGE_CREATE: the gateway:event job carries gh_before with the old content', async () => {
  const gid = A.guild.id;
  const oldContent = `first version ${snowflake()} — ünïcode`;
  const msg = messageFrom(A, 'member', oldContent);
  await dispatch('MESSAGE_CREATE', msg);
  await waitFor(() => redis(R, 'EXISTS', key(gid, `msg:${msg.id}`)) === '1', { timeout: 15000, message: 'the message copy cached' });

  const upd = await dispatch('MESSAGE_UPDATE', { ...msg, content: 'second version', edited_timestamp: new Date().toISOString() });
  const jobId = `ev:${upd.session_id}:${upd.seq}`;
  const job = await waitFor(() => queuedJob(mon, jobId), { timeout: 15000, message: `${jobId} seen queued by MONITOR` });
  assert.equal(job.kind, 'gateway:event');
  assert.equal(job.payload.t, 'MESSAGE_UPDATE');
  assert.equal(job.payload.seq, upd.seq);
  assert.equal(job.payload.d.content, 'second version');
  assert.ok(job.payload.d.gh_before, `gh_before in ${JSON.stringify(job.payload.d)}`);
  assert.equal(job.payload.d.gh_before.content, oldContent);
  assert.equal(job.payload.d.gh_before.author_id, msg.author.id);
  assert.equal(job.payload.d.gh_before.channel_id, msg.channel_id);
  const rows = await jobRan(jobId);
  assert.equal(rows[rows.length - 1].status, 'done');
  // the cached copy now holds the new content
  assert.equal(JSON.parse(redis(R, 'GET', key(gid, `msg:${msg.id}`))).content, 'second version');

  // an edit of a message never seen carries no gh_before
  const unseen = messageFrom(A, 'member', 'never cached');
  const upd2 = await dispatch('MESSAGE_UPDATE', { ...unseen, edited_timestamp: new Date().toISOString() });
  const job2 = await waitFor(() => queuedJob(mon, `ev:${upd2.session_id}:${upd2.seq}`), { timeout: 15000, message: 'second update queued' });
  assert.equal(job2.payload.d.gh_before, undefined);
});

test('GUILD_DELETE without unavailable drops the caches and deactivates the guild', async () => {
  const gid = B.guild.id;
  assert.equal(guildRow(gid)?.is_active, true);
  await dispatch('GUILD_DELETE', { id: gid });
  await waitFor(() => ['guild', 'roles', 'channels', 'msgs'].every((k) => redis(R, 'EXISTS', key(gid, k)) === '0'),
    { timeout: 15000, message: `caches of ${gid} dropped` });
  await waitFor(() => guildRow(gid)?.is_active === false, { timeout: 30000, message: 'guilds.is_active = false' });
  const audit = query(DB, "SELECT count(*)::int AS n FROM audit_log WHERE guild_id = :'g' AND action = 'guild.removed'", { g: gid });
  assert.equal(audit[0].n, 1);
  // guild A (same shard) keeps its caches
  assert.equal(redis(R, 'EXISTS', key(A.guild.id, 'roles')), '1');
});

test('a replayed event after a resume is not queued twice (job id ev:<session>:<seq>)', async () => {
  const gid = A.guild.id;
  const s0 = await currentSession();
  const user = { id: snowflake(), username: 'replayed', discriminator: '0', avatar: null, bot: false };
  const ev = await dispatch('GUILD_MEMBER_ADD', { guild_id: gid, user, roles: [], joined_at: new Date().toISOString(), deaf: false, mute: false });
  assert.equal(ev.session_id, s0.id);
  const jobId = `ev:${ev.session_id}:${ev.seq}`;
  await jobRan(jobId);

  // 1. the connection dies (TCP drop): gateway-lite resumes; events sent meanwhile are replayed once
  await gw('POST', '/action', { shard: 0, action: 'drop' });
  const during = await gw('POST', '/dispatch', { t: 'GUILD_MEMBER_ADD', d: { guild_id: gid, user: { ...user, id: snowflake() }, roles: [], joined_at: new Date().toISOString() } });
  await waitFor(async () => {
    const v = await gw('GET', '/sessions');
    return v.resumes.some((r) => r.session_id === s0.id && r.outcome === 'resumed') ? v : null;
  }, { timeout: 20000, message: 'gateway-lite resumed after the drop' });
  const duringId = `ev:${s0.id}:${during.seq}`;
  const duringRows = await jobRan(duringId);
  assert.equal(duringRows.length, 1, `the event sent while disconnected ran once: ${JSON.stringify(duringRows)}`);

  // 2. a restart whose saved seq is older than the last event handled (a crash before the
  //    once-a-second save): Discord replays that event; its job id exists already
  await proc.stop();
  const sk = 'bot:{global}:gateway:session:0';
  assert.equal(hash(sk).session_id, s0.id, 'the session is saved for a resume');
  redis(R, 'HSET', sk, 'seq', String(ev.seq - 1));
  const resumesBefore = (await gw('GET', '/sessions')).resumes.length;
  await startGw();
  const resumed = await waitFor(async () => {
    const v = await gw('GET', '/sessions');
    return v.resumes.slice(resumesBefore).find((r) => r.session_id === s0.id && r.outcome === 'resumed') ?? null;
  }, { timeout: 20000, message: 'the restarted gateway resumed the session' });
  assert.equal(resumed.seq, ev.seq - 1, 'resumed from the older seq');
  assert.ok(resumed.replayed >= 2, `the fake replayed the events after seq ${ev.seq - 1}: ${JSON.stringify(resumed)}`);
  // an event after the replay: when its job has run, the replayed ones were handled before it
  const marker = await dispatch('GUILD_MEMBER_ADD', { guild_id: gid, user: { ...user, id: snowflake() }, roles: [], joined_at: new Date().toISOString() });
  assert.equal(marker.session_id, s0.id);
  await jobRan(`ev:${s0.id}:${marker.seq}`);
  assert.equal(jobRuns(jobId).length, 1, `${jobId} ran once: ${JSON.stringify(jobRuns(jobId))}`);
  assert.equal(jobRuns(duringId).length, 1, `${duringId} ran once`);
  // and gateway-lite did try to queue it again (MONITOR saw two enqueues of that id)
  // (the enqueue script's SET NX of the seen mark, logged by MONITOR whether it succeeds or not)
  const enqueues = mon.lines.filter((l) => l.includes(`seen:${jobId}" "queued" "NX"`));
  assert.ok(enqueues.length >= 2, `two attempts to queue ${jobId} (the second refused as a duplicate): ${enqueues.length}`);
});
