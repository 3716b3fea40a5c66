// The gateway benchmark's driver (test/bench/gateway.sh runs it; never a test), against the running
// bench stack (its stack.env in the environment). Node's own CPU does not matter: it runs on CPU 1.
//
//   node gateway.mjs setup
//     the bench guilds (BENCH_GW_GUILDS, fixed ids) in PostgreSQL (guilds rows, the "automod"
//     document with every rule on and the "levels" document with text XP on, written with SQL) and
//     in the fake Discord (roles, channels, the bot's member); their Redis keys dropped, so both
//     contestants start from fresh keys and ours reads its settings from PostgreSQL once.
//   node gateway.mjs fresh
//     drops the bench guilds' Redis keys (bot:{<guild>}:*), shard 0's status, session and lease and
//     the REST client's shared rate-limit state, resets the fake gateway (sessions, buffered
//     events) and sets its heartbeat interval.
//   node gateway.mjs run <name> <cpu pid> <peer output file | "status">
//     waits until the contestant identified with the fake and its CPU settled, reads its CPU
//     (test/bench/cpu.py over <cpu pid>'s tree), asks the fake for the stream, waits until every
//     event is handled (the peer: its JSON line in <peer output file>; ours: its shard status
//     field "messages" reaches the count sent), reads the CPU again and prints one JSON line:
//     {name, sent, bad, send_ms, handled, wall_ms, per_s, cpu_s, per_cpu_s, actions, heartbeat
//     gaps the fake saw, reconnections during the stream, and ours' status fields}.
//
// Settings: BENCH_GW_EVENTS (100000), BENCH_GW_GUILDS (20), BENCH_GW_USERS (5000),
// BENCH_GW_BAD_EVERY (10), BENCH_GW_RATE (0 = as fast as the fake sends), BENCH_GW_SEED (7),
// BENCH_GW_HB_MS (heartbeat interval the fake asks for, 10000), BENCH_GW_TIMEOUT_S.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeGuild } from '../lib/fixtures.mjs';
import { GatewayControl } from '../lib/gateway.mjs';
import { redis, redisKeys } from '../lib/store.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const num = (v, d) => (v === undefined || v === '' ? d : Number(v));
const N = num(env.BENCH_GW_EVENTS, 100000);
const GUILDS = num(env.BENCH_GW_GUILDS, 20);
const USERS = num(env.BENCH_GW_USERS, 5000);
const BAD_EVERY = num(env.BENCH_GW_BAD_EVERY, 10);
const RATE = num(env.BENCH_GW_RATE, 0);
const SEED = num(env.BENCH_GW_SEED, 7);
const HB_MS = num(env.BENCH_GW_HB_MS, 10000);
// a bound, not an expectation: 250 events/s is ten times slower than either contestant on a busy machine
const TIMEOUT_MS = num(env.BENCH_GW_TIMEOUT_S, Math.max(120, Math.ceil(N / 250))) * 1000;
const APP_ID = env.DISCORD_APPLICATION_ID ?? '1234567890123456789';
const FAKE = (env.GH_FAKE_DISCORD_URL ?? '').replace(/\/$/, '');
const GUILD_BASE = 1330000000000000000n; // bench guild i: GUILD_BASE + i * 1_000_000
const SHARD_KEY = 'bot:{global}:shards:0';

export function guildIds() {
  return Array.from({ length: GUILDS }, (_, i) => (GUILD_BASE + BigInt(i) * 1000000n).toString());
}

function benchGuild(i) {
  const gid = GUILD_BASE + BigInt(i) * 1000000n;
  const ids = { guild: gid.toString() };
  ['category', 'general', 'modLog', 'welcome', 'member', 'muted', 'moderator', 'bot', 'admin']
    .forEach((k, n) => { ids[k] = (gid + BigInt(n + 1)).toString(); });
  return makeGuild({ name: `Gateway bench ${i}`, ids, botUserId: APP_ID });
}

// The settings documents (features/automod/schema.json, features/levels/schema.json): every AutoMod
// rule on with the peer's parameters and its action (delete), text XP on with the defaults. The
// stream's ordinary chat must trip no rule, as for the peer: each user sends count/users messages
// (20 for the reference run), below the rate rule's 30 per 60 s, and picks sentences at random
// from 25, so the repeat rule (on, default history of 10) acts only when all 10 are alike. The
// regex rule (on) matches what the word list matches, so it adds cost, not actions.
export function automodDoc() {
  const rule = (extra) => ({ enabled: true, log_only: false, actions: ['delete'], ...extra });
  return {
    enabled: true,
    exempt_managers: true,
    rate: rule({ max_messages: 30, window_s: 60 }),
    repeat: rule({ max_repeats: 10, history: 10, window_s: 120 }),
    caps: rule({ percent: 70, min_letters: 10 }),
    invites: rule({}),
    links: rule({ mode: 'deny', domains: ['bad.example'] }),
    words: rule({ words: ['scam', 'free nitro', 'idiot'] }),
    regex: rule({ patterns: ['\\b(sc[a4]m|fr[e3]{2}\\s*n[i1]tr[o0]|[i1]d[i1][o0]t)\\b'] }),
    mentions: rule({ everyone: true, max_mentions: 5 }),
  };
}
export function levelsDoc() {
  return { enabled: true, multiplier: 1, cooldown_seconds: 60, voice_enabled: true };
}

function psql(sql) {
  execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', env.DATABASE_URL, '-f', '-'],
    { input: sql, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 30000 });
}
const q = (s) => `'${String(s).replace(/'/g, "''")}'`;

/** A control call that cannot hang the bench: it fails after the bench's timeout. */
function bounded(what, promise) {
  let timer;
  const t = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`the fake did not answer ${what} within ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS); });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}
const gw = new GatewayControl(FAKE);

async function fake(method, p, body) {
  const res = await fetch(`${FAKE}${p}`, {
    method, headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`fake ${method} ${p}: ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

function dropRedis() {
  const keys = [];
  for (const gid of guildIds()) keys.push(...redisKeys(env.REDIS_URL, `bot:{${gid}}:*`));
  keys.push(SHARD_KEY, 'bot:{global}:gateway:session:0', 'bot:{global}:gateway:lease:0');
  keys.push(...redisKeys(env.REDIS_URL, 'bot:{global}:rest:*')); // the REST client's shared rate-limit state
  for (let i = 0; i < keys.length; i += 500) redis(env.REDIS_URL, 'DEL', ...keys.slice(i, i + 500));
  redis(env.REDIS_URL, 'SREM', 'bot:{global}:shards', '0');
}

async function setup() {
  const guilds = Array.from({ length: GUILDS }, (_, i) => benchGuild(i));
  const rows = guilds.map((g) => `(${g.guild.id}, ${q(g.guild.name)})`).join(',');
  const docs = [];
  for (const g of guilds) {
    docs.push(`(${g.guild.id}, 'automod', ${q(JSON.stringify(automodDoc()))}::jsonb)`);
    docs.push(`(${g.guild.id}, 'levels', ${q(JSON.stringify(levelsDoc()))}::jsonb)`);
  }
  psql(`INSERT INTO guilds (id, name) VALUES ${rows} ON CONFLICT (id) DO UPDATE SET is_active = true;
INSERT INTO guild_settings (guild_id, feature, document) VALUES ${docs.join(',')}
  ON CONFLICT (guild_id, feature) DO UPDATE SET document = EXCLUDED.document, version = guild_settings.version + 1;`);
  for (const g of guilds) await fake('POST', '/_fake/guilds', { guild: g });
  dropRedis();
  process.stderr.write(`gateway bench: ${GUILDS} guilds ready (automod: every rule on; levels: text XP on)\n`);
}

async function fresh() {
  dropRedis();
  await bounded('reset', gw.reset());
  await bounded('config', gw.config({ heartbeat_interval: HB_MS }));
}

const cpu = (pid) => Number(execFileSync(path.join(here, 'cpu.py'), [String(pid)], { encoding: 'utf8' }).trim());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };

async function until(what, fn, { timeout = TIMEOUT_MS, interval = 50, progress } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${Math.round(timeout / 1000)} s waiting for ${what}${progress ? ` (${progress()})` : ''}`);
    }
    await sleep(interval);
  }
}

/** The fake's current gateway sessions (IDENTIFY answered with READY, still connected). */
async function readySessions() {
  const v = await bounded('sessions', gw.sessions());
  return (v?.sessions ?? []).filter((x) => x.connected && x.current && !x.invalidated);
}

/**
 * Ours' shard status, read over one kept Redis connection: a redis-cli per poll would cost CPU 1
 * (where Redis and the fake run) several ms each time, slowing ours' Redis round trips.
 */
class StatusReader {
  constructor(url) {
    const u = new URL(url);
    this.sock = net.connect(Number(u.port || 6379), u.hostname);
    this.sock.setNoDelay(true);
    this.buf = Buffer.alloc(0);
    this.waiting = null;
    this.sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.parse(); });
    this.sock.on('error', (e) => { if (this.waiting) { this.waiting.reject(e); this.waiting = null; } this.error = e; });
    const db = u.pathname.replace('/', '');
    this.ready = db && db !== '0' ? this.cmd('SELECT', db) : Promise.resolve();
  }

  cmd(...args) {
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
  }

  /** One reply: +simple, -error, :int, $bulk, *array of bulks (all HGETALL and SELECT need). */
  parse() {
    const b = this.buf;
    const line = (at) => { const e = b.indexOf('\r\n', at); return e < 0 ? null : [b.toString('utf8', at + 1, e), e + 2]; };
    let l = line(0);
    if (!l || !this.waiting) return;
    let [head, at] = l;
    let value;
    if (b[0] === 0x2a) { // '*'
      const n = Number(head);
      value = [];
      for (let i = 0; i < n; i++) {
        l = line(at);
        if (!l) return;
        const len = Number(l[0]);
        if (l[1] + len + 2 > b.length) return;
        value.push(b.toString('utf8', l[1], l[1] + len));
        at = l[1] + len + 2;
      }
    } else if (b[0] === 0x24) { // '$'
      const len = Number(head);
      if (len >= 0 && at + len + 2 > b.length) return;
      value = len < 0 ? null : b.toString('utf8', at, at + len);
      at = len < 0 ? at : at + len + 2;
    } else value = head;
    this.buf = b.subarray(at);
    const w = this.waiting;
    this.waiting = null;
    if (b[0] === 0x2d) w.reject(new Error(`Redis: ${head}`)); else w.resolve(value); // '-'
  }

  async hgetall(key) {
    await this.ready;
    const arr = await this.cmd('HGETALL', key);
    const h = {};
    for (let i = 0; i + 1 < arr.length; i += 2) h[arr[i]] = arr[i + 1];
    return h;
  }

  close() { this.sock.destroy(); }
}

/**
 * Heartbeat lateness as the fake saw it (the same yardstick for both): the gaps between the
 * contestant's heartbeats (op 1) received during the stream, minus the interval asked for.
 */
async function heartbeatGaps(from, to) {
  const log = await bounded('log', gw.log(0));
  const times = log.filter((e) => e.dir === 'in' && e.op === 1 && e.time >= from - HB_MS && e.time <= to).map((e) => e.time);
  const late = [];
  for (let i = 1; i < times.length; i++) late.push(Math.max(0, times[i] - times[i - 1] - HB_MS));
  late.sort((a, b) => a - b);
  const p99 = late.length ? late[Math.min(late.length - 1, Math.ceil(late.length * 0.99) - 1)] : -1;
  return { fake_heartbeats: times.length, fake_hb_late_p99_ms: p99, fake_hb_late_max_ms: late.length ? late.at(-1) : -1 };
}

function peerLine(file) {
  let text = '';
  try { text = fs.readFileSync(file, 'utf8'); } catch { return null; }
  for (const line of text.split('\n')) {
    if (line.startsWith('{') && line.includes('"processed"')) { try { return JSON.parse(line); } catch { /* partial */ } }
  }
  return null;
}

async function run(name, pid, source) {
  const ours = source === 'status';
  const sr = ours ? new StatusReader(env.REDIS_URL) : null;
  try {
    await measure(name, pid, source, ours, sr);
  } catch (e) {
    // say what the fake saw: a reconnection during the stream loses events a resume cannot replay
    const v = await bounded('sessions', gw.sessions()).catch(() => null);
    if (v) {
      e.message += `; the fake saw ${(v.identifies ?? []).length} identify(ies), resumes: ${(v.resumes ?? []).map((r) => `seq ${r.seq} ${r.outcome}`).join(', ') || 'none'}`;
    }
    throw e;
  } finally {
    sr?.close();
  }
}

async function measure(name, pid, source, ours, sr) {
  let st = {};
  const status = async () => { st = await sr.hgetall(SHARD_KEY); return st; };
  const dead = () => (alive(pid) ? '' : `; ${name} (pid ${pid}) exited`);
  await until(`${name} to connect to the fake gateway (READY)`, async () => {
    if (!alive(pid)) throw new Error(`${name} (pid ${pid}) exited before it connected`);
    return (await readySessions()).length > 0 && (!ours || (await status()).state === 'ready');
  }, { timeout: 60000, interval: 100, progress: () => (ours ? `shard state ${st.state ?? 'none'}` : 'no READY session') });
  const session = (await readySessions())[0];
  // Startup (module loading, GUILD_CREATE caches, settings) is over when the CPU stops moving.
  let last = cpu(pid);
  let calm = 0;
  await until(`${name}'s CPU to settle after connecting`, async () => {
    await sleep(200);
    const now = cpu(pid);
    calm = now - last < 0.01 ? calm + 1 : 0;
    last = now;
    return calm >= 2;
  }, { timeout: 60000, interval: 0 });
  const c0 = cpu(pid);
  const t0 = performance.now();
  const wall0 = Date.now();
  const body = { count: N, rate: RATE, guilds: GUILDS, users: USERS, bad_every: BAD_EVERY, seed: SEED, guild_ids: guildIds() };
  const sent = await bounded('the stream', gw.stream(body));
  if (!sent || !(sent.sent > 0)) throw new Error(`the fake sent nothing: ${JSON.stringify(sent)}`);
  let result;
  if (ours) {
    await until(`${name} to handle ${sent.sent} messages`, async () => {
      if (!alive(pid)) throw new Error(`${name} (pid ${pid}) exited during the stream`);
      return Number((await status()).messages ?? 0) >= sent.sent;
    }, { interval: 20, progress: () => `its shard status says messages=${st.messages ?? 'none'}${dead()}` });
  } else {
    result = await until(`${name} to print its result after ${sent.sent} messages`, () => {
      const r = peerLine(source);
      if (!r && !alive(pid)) throw new Error(`${name} (pid ${pid}) exited without a result (see ${source})`);
      return r;
    }, { interval: 20, progress: dead });
  }
  const wallMs = performance.now() - t0;
  const c1 = cpu(pid);
  const hb = await heartbeatGaps(wall0, Date.now());
  // reconnections during the stream (a zombie connection, a lost socket): a contestant that
  // reconnected may have lost or been replayed events, and paid for it
  const v = await bounded('sessions', gw.sessions());
  const later = (r) => r.time >= wall0;
  const reconnects = {
    identifies: (v.identifies ?? []).filter(later).length,
    resumes: (v.resumes ?? []).filter(later).map((r) => r.outcome).join(', '),
  };
  const out = { name, compress: session?.compress ? 'zlib-stream' : 'none', sent: sent.sent, bad: sent.bad ?? null, send_ms: sent.ms, wall_ms: Math.round(wallMs), cpu_s: +(c1 - c0).toFixed(3) };
  if (ours) {
    // the histograms are published with the status: one more publication carries the last events
    const interval = num(env.GATEWAY_STATUS_INTERVAL_MS, 5000);
    await sleep(2 * interval + 50);
    await status();
    Object.assign(out, {
      handled: Number(st.messages ?? 0), events: Number(st.events ?? 0),
      actions: Number(st.urgent_calls ?? 0), automod_hits: Number(st.automod_hits ?? 0),
      hb_late_p99_us: Number(st.hb_late_p99_us ?? -1), urgent_p50_us: Number(st.urgent_p50_us ?? -1),
      urgent_p99_us: Number(st.urgent_p99_us ?? -1), latency_ms: Number(st.latency_ms ?? -1),
      jobs_enqueued: Number(st.jobs_enqueued ?? -1),
    });
  } else {
    Object.assign(out, { handled: result.processed, actions: result.actions, self_ms: result.ms, self_per_s: result.per_s });
  }
  Object.assign(out, hb);
  out.identifies_during = reconnects.identifies;
  out.resumes_during = reconnects.resumes || 'none';
  out.per_s = Math.round(out.handled * 1000 / wallMs);
  out.per_cpu_s = out.cpu_s > 0 ? Math.round(out.handled / out.cpu_s) : 0;
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

const [mode, ...args] = process.argv.slice(2);
try {
  if (mode === 'setup') await setup();
  else if (mode === 'fresh') await fresh();
  else if (mode === 'run') await run(args[0], Number(args[1]), args[2]);
  else if (mode === 'guilds') process.stdout.write(`${guildIds().join(' ')}\n`);
  else throw new Error('usage: gateway.mjs setup | fresh | run <name> <cpu pid> <peer output file|status> | guilds');
} catch (e) {
  process.stderr.write(`gateway bench: ${e.message}\n`);
  process.exit(1);
}
