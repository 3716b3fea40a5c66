// gateway.mjs - the fake Discord's gateway: a WebSocket server speaking the
// real gateway protocol (v10, JSON, optional zlib-stream transport
// compression) on the fake's own HTTP port, plus its /_fake/gateway/ control
// API. Wire facts: shared/reference/discord-protocol.md section 1b.
//
// Paths: /gateway (the url of GET /gateway/bot) and /gateway-resume (the
// resume_gateway_url given in READY). Sessions outlive their connection for
// session_ttl_ms (unless the client closed with 1000/1001); dispatches to a
// disconnected session get seqs and are buffered (the last 50,000) for RESUME.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import { makeGuild } from '../../lib/fixtures.mjs';
import { DISCORD_EPOCH } from '../../lib/snowflake.mjs';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const BUFFER_MAX = 50000;
const LOG_MAX = 50000;
const MAX_PAYLOAD = 4096;
const RATE_WINDOW_MS = 60000;
const RATE_MAX = 120;
const CONCURRENCY_WINDOW_MS = 5000;
const HIGH_WATER = 4 * 1024 * 1024; // bytes queued on a socket before a stream waits for 'drain'
const SESSIONS_KEPT = 2000; // invalidated sessions still listed by GET sessions
const PRE_MAX = 200000; // stream events built ahead of sending

// intents (discord-protocol.md 1b)
const VALID_INTENTS = ((1 << 17) - 1) | (1 << 20) | (1 << 21) | (1 << 24) | (1 << 25);
const PRIVILEGED = { members: 1 << 1, presences: 1 << 8, message_content: 1 << 15 };
// ops a client may send (0 Dispatch, 7, 9, 10, 11 are server-only)
const CLIENT_OPS = new Set([1, 2, 3, 4, 6, 8, 31, 43]);

const DEFAULTS = Object.freeze({
  shards: 1,
  max_concurrency: 1,
  total: 1000,
  remaining: 1000,
  reset_after: 14400000,
  heartbeat_interval: 41250,
  withhold_acks: false,
  allowed_intents: ['members', 'presences', 'message_content'],
  session_ttl_ms: 5 * 60 * 1000,
  require_compress: false,
  zlib_level: 1,
  filter_intents: false,
  stall_ms: 30000, // a stream drops a connection that takes nothing for this long
});

/** The intent an event needs (guild events; DM variants in DM_INTENT_OF). */
const INTENT_OF = {
  GUILD_CREATE: 1, GUILD_UPDATE: 1, GUILD_DELETE: 1, GUILD_ROLE_CREATE: 1, GUILD_ROLE_UPDATE: 1, GUILD_ROLE_DELETE: 1,
  CHANNEL_CREATE: 1, CHANNEL_UPDATE: 1, CHANNEL_DELETE: 1, CHANNEL_PINS_UPDATE: 1, THREAD_CREATE: 1, THREAD_UPDATE: 1,
  THREAD_DELETE: 1, THREAD_LIST_SYNC: 1, THREAD_MEMBER_UPDATE: 1, STAGE_INSTANCE_CREATE: 1, STAGE_INSTANCE_UPDATE: 1,
  STAGE_INSTANCE_DELETE: 1, GUILD_MEMBER_ADD: 2, GUILD_MEMBER_UPDATE: 2, GUILD_MEMBER_REMOVE: 2, THREAD_MEMBERS_UPDATE: 2,
  GUILD_AUDIT_LOG_ENTRY_CREATE: 4, GUILD_BAN_ADD: 4, GUILD_BAN_REMOVE: 4, GUILD_EMOJIS_UPDATE: 8, GUILD_STICKERS_UPDATE: 8,
  GUILD_INTEGRATIONS_UPDATE: 16, INTEGRATION_CREATE: 16, INTEGRATION_UPDATE: 16, INTEGRATION_DELETE: 16, WEBHOOKS_UPDATE: 32,
  INVITE_CREATE: 64, INVITE_DELETE: 64, VOICE_STATE_UPDATE: 128, PRESENCE_UPDATE: 256,
  MESSAGE_CREATE: 512, MESSAGE_UPDATE: 512, MESSAGE_DELETE: 512, MESSAGE_DELETE_BULK: 512,
  MESSAGE_REACTION_ADD: 1024, MESSAGE_REACTION_REMOVE: 1024, MESSAGE_REACTION_REMOVE_ALL: 1024, MESSAGE_REACTION_REMOVE_EMOJI: 1024,
  TYPING_START: 2048, GUILD_SCHEDULED_EVENT_CREATE: 1 << 16, GUILD_SCHEDULED_EVENT_UPDATE: 1 << 16, GUILD_SCHEDULED_EVENT_DELETE: 1 << 16,
  AUTO_MODERATION_RULE_CREATE: 1 << 20, AUTO_MODERATION_RULE_UPDATE: 1 << 20, AUTO_MODERATION_RULE_DELETE: 1 << 20,
  AUTO_MODERATION_ACTION_EXECUTION: 1 << 21, MESSAGE_POLL_VOTE_ADD: 1 << 24, MESSAGE_POLL_VOTE_REMOVE: 1 << 24,
};
const DM_INTENT_OF = { MESSAGE_CREATE: 4096, MESSAGE_UPDATE: 4096, MESSAGE_DELETE: 4096, CHANNEL_PINS_UPDATE: 4096,
  MESSAGE_REACTION_ADD: 8192, MESSAGE_REACTION_REMOVE: 8192, MESSAGE_REACTION_REMOVE_ALL: 8192, MESSAGE_REACTION_REMOVE_EMOJI: 8192,
  TYPING_START: 16384, MESSAGE_POLL_VOTE_ADD: 1 << 25, MESSAGE_POLL_VOTE_REMOVE: 1 << 25 };

const reply = (status, body) => ({ status, body });
const bad = (msg) => reply(400, { error: msg });

function randomHex(n) { return crypto.randomBytes(n).toString('hex'); }

/** Discord's timestamp format: 2026-11-25T11:00:00.123000+00:00 */
function discordTime(ms) { return new Date(ms).toISOString().replace('Z', '000+00:00'); }

/** A deterministic PRNG (mulberry32). */
function prng(seed) {
  let a = (Number(seed) >>> 0) || 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shardOf(guildId, shards) {
  return Number((BigInt(guildId) >> 22n) % BigInt(shards));
}

/**
 * zlib-stream: every message goes through the connection's one deflate stream and is flushed
 * with Z_SYNC_FLUSH (so it ends with 00 00 ff ff); the output of one flush is one binary frame.
 * Fast path: the zlib handle's synchronous write (what zlib.deflateSync uses inside, minus the
 * close at its end) keeps one context per connection on the main thread. When this Node lacks
 * it (checked once by SYNC_ZLIB_OK), frames go through the stream API: in order, asynchronously,
 * conn.zpending counting the messages not yet sent.
 */
function syncDeflater(level = zlib.constants.Z_DEFAULT_COMPRESSION) {
  const z = zlib.createDeflate({ level });
  z.on('error', () => {});
  const h = z._handle;
  const st = z._writeState;
  if (!h || typeof h.writeSync !== 'function' || !st) { z.close(); return null; }
  return { z, h, st };
}

function syncDeflate(d, input) {
  const parts = [];
  let inOff = 0;
  let inLen = input.length;
  for (;;) {
    const out = Buffer.allocUnsafe(inLen + 64);
    d.h.writeSync(zlib.constants.Z_SYNC_FLUSH, input, inOff, inLen, out, 0, out.length);
    const availOut = d.st[0];
    const availIn = d.st[1];
    if (out.length - availOut > 0) parts.push(out.subarray(0, out.length - availOut));
    if (availOut !== 0) break;
    inOff += inLen - availIn;
    inLen = availIn;
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

const SYNC_ZLIB_OK = (() => {
  try {
    const d = syncDeflater();
    if (!d) return false;
    const msgs = ['{"op":10,"d":{"heartbeat_interval":41250}}', 'x'.repeat(70000), '{"op":11}'];
    const outs = msgs.map((m) => syncDeflate(d, Buffer.from(m)));
    d.z.close();
    if (!outs.every((o) => o.subarray(-4).equals(Buffer.from([0, 0, 0xff, 0xff])))) return false;
    const back = zlib.inflateSync(Buffer.concat(outs), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString();
    return back === msgs.join('');
  } catch { return false; }
})();

function zlibSetup(conn) {
  if (SYNC_ZLIB_OK) { conn.zsync = syncDeflater(conn.zlevel); conn.deflate = conn.zsync.z; conn.zpending = 0; conn.zwaiters = []; conn.zidle = []; return; }
  const z = zlib.createDeflate({ level: conn.zlevel });
  conn.deflate = z;
  conn.zchunks = [];
  conn.zpending = 0;
  conn.zwaiters = [];
  conn.zidle = [];
  z.on('data', (c) => conn.zchunks.push(c));
  z.on('error', () => {});
}

function zlibSend(conn, text) {
  if (conn.zsync) { conn.ws.send(syncDeflate(conn.zsync, Buffer.from(text)), { binary: true }); return; }
  const z = conn.deflate;
  conn.zpending += 1;
  z.write(Buffer.from(text));
  z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
    const out = conn.zchunks.length === 1 ? conn.zchunks[0] : Buffer.concat(conn.zchunks);
    conn.zchunks = [];
    conn.zpending -= 1;
    if (conn.ws.readyState === 1) conn.ws.send(out, { binary: true });
    if (conn.zwaiters.length && conn.zpending <= ZLIB_LOW) for (const w of conn.zwaiters.splice(0)) w();
    if (conn.zidle.length && conn.zpending === 0) for (const w of conn.zidle.splice(0)) w();
  });
}

const ZLIB_HIGH = 4096; // messages queued on a deflate stream before a stream waits
const ZLIB_LOW = 512;

/** A fixed-size ring of buffered dispatches (seq, frame), oldest first. */
class Ring {
  constructor(cap) { this.cap = cap; this.seqs = new Float64Array(cap); this.frames = new Array(cap); this.start = 0; this.len = 0; }
  push(s, frame) {
    const i = (this.start + this.len) % this.cap;
    this.seqs[i] = s;
    this.frames[i] = frame;
    if (this.len < this.cap) this.len += 1; else this.start = (this.start + 1) % this.cap;
  }
  oldest() { return this.len ? this.seqs[this.start] : null; }
  *after(seq) {
    for (let k = 0; k < this.len; k++) {
      const i = (this.start + k) % this.cap;
      if (this.seqs[i] > seq) yield { s: this.seqs[i], frame: this.frames[i] };
    }
  }
}

// ------------------------------------------------- the stream's messages
const SENTENCES = [
  'good morning everyone', 'anyone up for a game tonight?', 'I just finished the new chapter',
  'that was a great match', 'does anyone know how to fix this build error?', 'lol same here',
  'the weather is lovely today', 'who is joining the voice channel later?', 'thanks for the help earlier',
  'I think the patch notes are out', 'brb getting coffee', 'nice screenshot', 'see you all tomorrow',
  'has anyone tried the new map yet?', 'my cat keeps sitting on the keyboard', 'happy friday folks',
  'the event starts in an hour', 'can someone pin that message?', 'that song is stuck in my head',
  'welcome to the server', 'I agree with that idea', 'let me check and get back to you',
  'what time is the raid?', 'the new update broke my settings', 'pizza or pasta tonight?',
];
/** The peer's AutoMod rules (shared/peers/discordjs/bot.mjs), one message breaking each, in turn. */
export const BAD_KINDS = ['caps', 'invite', 'url', 'words', 'everyone', 'mentions'];

export class FakeGateway {
  constructor(ctx) {
    this.ctx = ctx;
    this.wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024, perMessageDeflate: false, clientTracking: false });
    this.resetState();
  }

  resetState() {
    this.cfg = { ...DEFAULTS, allowed_intents: [...DEFAULTS.allowed_intents] };
    this.remaining = this.cfg.remaining;
    this.resetAt = Date.now() + this.cfg.reset_after;
    this.conns = new Map(); // id -> conn
    this.sessions = new Map(); // session_id -> session
    this.current = new Map(); // shard id -> the session events go to
    this.connSeq = 0;
    this.logSeq = 0;
    this.logBuf = [];
    this.identifies = []; // {time, shard, conn, session_id?, outcome}
    this.resumes = []; // {time, shard, conn, session_id, seq, path, outcome, replayed}
    this.limitCloses = []; // identifies refused by session_start_limit (close 4008)
    this.lastIdentifyByKey = new Map(); // rate_limit_key -> time
    this.withholdShards = new Set();
    this.streamMessages = []; // [{lo, hi (BigInt), channels: Set}]
    this.deletedStream = new Set();
    this.lastStreamId = 0n;
    this.streams = 0;
  }

  // ---------------------------------------------------------------- REST
  url(p = '/gateway') { return `ws://127.0.0.1:${this.ctx.port}${p}`; }

  botInfo() {
    const now = Date.now();
    if (now >= this.resetAt) { this.remaining = this.cfg.total; this.resetAt = now + this.cfg.reset_after; }
    return {
      url: this.url('/gateway'), shards: this.cfg.shards,
      session_start_limit: {
        total: this.cfg.total, remaining: this.remaining, reset_after: Math.max(0, this.resetAt - now),
        max_concurrency: this.cfg.max_concurrency,
      },
    };
  }

  /** server.mjs asks before a REST handler runs; an answer replaces the route's. */
  routeHook(method, template, params) {
    if (method === 'GET' && template === '/gateway/bot') return reply(200, this.botInfo());
    if (method === 'GET' && template === '/gateway') return reply(200, { url: this.url('/gateway') });
    if (method === 'DELETE' && template === '/channels/:channel_id/messages/:message_id') {
      const { channel_id: ch, message_id: mid } = params;
      if (this.ctx.store.messagesOf(ch)[mid]) return null; // a real stored message: the route handles it
      if (this.isStreamMessage(ch, mid)) {
        if (this.deletedStream.has(mid)) return reply(404, { message: 'Unknown Message', code: 10008 });
        this.deletedStream.add(mid);
        return { status: 204 };
      }
    }
    return null;
  }

  isStreamMessage(ch, mid) {
    let id;
    try { id = BigInt(mid); } catch { return false; }
    return this.streamMessages.some((r) => id >= r.lo && id <= r.hi && r.channels.has(ch));
  }

  // ------------------------------------------------------------------ log
  log(entry) {
    const e = { n: ++this.logSeq, time: Date.now(), ...entry };
    this.logBuf.push(e);
    if (this.logBuf.length > LOG_MAX) this.logBuf.splice(0, this.logBuf.length - LOG_MAX);
    return e;
  }

  // ------------------------------------------------------------ upgrades
  /** server.on('upgrade'): true when the request was the gateway's. */
  handleUpgrade(req, socket, head) {
    const url = new URL(req.url, 'http://fake.invalid');
    if (url.pathname !== '/gateway' && url.pathname !== '/gateway-resume' && url.pathname !== '/gateway/' && url.pathname !== '/gateway-resume/') {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found');
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, url));
    return true;
  }

  onConnection(ws, url) {
    const q = url.searchParams;
    const conn = {
      id: ++this.connSeq, ws, path: url.pathname.replace(/\/$/, ''), query: Object.fromEntries(q),
      compress: q.get('compress') === 'zlib-stream', deflate: null, opened_at: Date.now(),
      identified: false, session: null, shard: null, recv: [], last_heartbeat: null, heartbeats: 0,
      closing: null, closed: null, withhold: false,
    };
    this.conns.set(conn.id, conn);
    this.log({ conn: conn.id, dir: 'open', path: conn.path, query: conn.query });
    ws.on('message', (data, isBinary) => this.onMessage(conn, data, isBinary));
    ws.on('close', (code, reason) => this.onClose(conn, code, reason.toString()));
    ws.on('error', (e) => this.log({ conn: conn.id, dir: 'error', error: e.message }));

    const v = q.get('v');
    if (v !== '10') return this.close(conn, 4012, 'Invalid API version');
    const enc = q.get('encoding') ?? 'json';
    if (enc !== 'json') return this.close(conn, 4002, `encoding ${enc} is not supported by the fake (json only)`);
    const comp = q.get('compress');
    if (comp !== null && comp !== 'zlib-stream') return this.close(conn, 4002, `compress ${comp} is not supported by the fake (zlib-stream only)`);
    conn.zlevel = this.cfg.zlib_level;
    if (conn.compress) zlibSetup(conn);
    if (this.cfg.require_compress && !conn.compress) return this.close(conn, 4000, 'compress=zlib-stream required (fake config)');
    this.send(conn, { op: 10, d: { heartbeat_interval: this.cfg.heartbeat_interval, _trace: ['["fake-gateway",{"micros":0}]'] }, s: null, t: null });
    return undefined;
  }

  /** Writes one gateway message (object or pre-serialized JSON string). false when not sent. */
  sendRaw(conn, text) {
    const ws = conn.ws;
    if (ws.readyState !== 1 || conn.closing) return false;
    if (conn.deflate) zlibSend(conn, text);
    else ws.send(text, { binary: false });
    return true;
  }

  send(conn, msg, logExtra = {}) {
    const ok = this.sendRaw(conn, JSON.stringify(msg));
    this.log({ conn: conn.id, shard: conn.shard, dir: 'out', op: msg.op, t: msg.t ?? null, s: msg.s ?? null, sent: ok, ...logExtra });
    return ok;
  }

  close(conn, code, reason) {
    if (conn.closing || conn.ws.readyState > 1) return;
    conn.closing = { code, reason, by: 'server' };
    this.log({ conn: conn.id, shard: conn.shard, dir: 'close', by: 'server', code, reason });
    // compressed frames still in the deflate stream leave before the close frame
    if (conn.deflate && conn.zpending > 0) conn.zidle.push(() => conn.ws.close(code, reason.slice(0, 120)));
    else conn.ws.close(code, reason.slice(0, 120));
    // a client that never answers the close frame is cut off
    const t = setTimeout(() => { if (conn.ws.readyState !== 3) conn.ws.terminate(); }, 3000);
    t.unref();
  }

  onClose(conn, code, reason) {
    conn.closed = { code, reason, at: Date.now(), by: conn.closing ? 'server' : 'client' };
    this.conns.delete(conn.id);
    if (conn.deflate) { conn.deflate.close(); for (const w of conn.zwaiters.splice(0)) w(); conn.zidle.length = 0; }
    this.log({ conn: conn.id, shard: conn.shard, dir: 'closed', code, reason, by: conn.closed.by });
    const s = conn.session;
    if (!s || s.conn !== conn) return;
    s.conn = null;
    s.disconnected_at = Date.now();
    s.last_close = { code, by: conn.closed.by };
    const clientInvalidates = !conn.closing && (code === 1000 || code === 1001);
    const serverInvalidates = conn.closing && [4007, 4009].includes(conn.closing.code);
    if (clientInvalidates || serverInvalidates) this.invalidate(s, `closed with ${code} by ${conn.closed.by}`);
    else this.armExpiry(s);
  }

  armExpiry(s) {
    clearTimeout(s.timer);
    s.expires_at = Date.now() + this.cfg.session_ttl_ms;
    s.timer = setTimeout(() => { if (!s.conn) this.invalidate(s, 'session timed out'); }, this.cfg.session_ttl_ms);
    s.timer.unref();
  }

  invalidate(s, why) {
    if (s.invalidated) return;
    s.invalidated = why;
    s.ring = null; // frees the buffer
    clearTimeout(s.timer);
    if (this.current.get(s.shard[0]) === s) this.current.delete(s.shard[0]);
    this.log({ shard: s.shard[0], dir: 'session', session_id: s.id, invalidated: why });
  }

  // ------------------------------------------------------- client frames
  onMessage(conn, data, _isBinary) {
    if (conn.closing) return;
    const size = Array.isArray(data) ? data.reduce((a, b) => a + b.length, 0) : data.length;
    const text = (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString('utf8');
    const now = Date.now();
    conn.recv.push(now);
    while (conn.recv.length && conn.recv[0] <= now - RATE_WINDOW_MS) conn.recv.shift();
    if (size > MAX_PAYLOAD) {
      this.log({ conn: conn.id, shard: conn.shard, dir: 'in', op: null, size });
      return this.close(conn, 4002, `payload of ${size} bytes exceeds 4096`);
    }
    let msg;
    try { msg = JSON.parse(text); } catch {
      this.log({ conn: conn.id, shard: conn.shard, dir: 'in', op: null, size, bad_json: true });
      return this.close(conn, 4002, 'Error while decoding payload.');
    }
    const op = msg && typeof msg === 'object' ? msg.op : undefined;
    this.log({ conn: conn.id, shard: conn.shard, dir: 'in', op: op ?? null, size, d: op === 2 || op === 6 || op === 1 ? msg.d : undefined });
    if (conn.recv.length > RATE_MAX) return this.close(conn, 4008, 'Rate limited.');
    if (!Number.isInteger(op) || !CLIENT_OPS.has(op)) return this.close(conn, 4001, 'Unknown opcode.');
    if (!conn.identified && op !== 1 && op !== 2 && op !== 6) return this.close(conn, 4003, 'Not authenticated.');
    switch (op) {
      case 1: return this.onHeartbeat(conn, msg.d);
      case 2: return this.onIdentify(conn, msg.d);
      case 6: return this.onResume(conn, msg.d);
      case 8: return this.onRequestMembers(conn, msg.d);
      default: return undefined; // presence, voice state, ...: accepted, nothing to do
    }
  }

  onHeartbeat(conn, d) {
    conn.last_heartbeat = Date.now();
    conn.heartbeats += 1;
    conn.heartbeat_seq = d ?? null;
    if (conn.session) conn.session.last_heartbeat = conn.last_heartbeat;
    const withhold = this.cfg.withhold_acks || conn.withhold || (conn.shard !== null && this.withholdShards.has(conn.shard));
    if (withhold) { this.log({ conn: conn.id, shard: conn.shard, dir: 'withheld', op: 11 }); return; }
    this.send(conn, { op: 11 });
  }

  onIdentify(conn, d) {
    if (conn.identified) return this.close(conn, 4005, 'Already authenticated.');
    if (!d || typeof d !== 'object') return this.close(conn, 4002, 'Error while decoding payload.');
    const rec = { time: Date.now(), conn: conn.id, shard: null, outcome: null };
    this.identifies.push(rec);
    if (this.identifies.length > 10000) this.identifies.splice(0, 1000);
    if (d.token !== this.ctx.botToken) { rec.outcome = 'close 4004'; return this.close(conn, 4004, 'Authentication failed.'); }
    const intents = d.intents;
    if (!Number.isInteger(intents) || intents < 0 || (intents & ~VALID_INTENTS) !== 0) {
      rec.outcome = 'close 4013';
      return this.close(conn, 4013, 'Invalid intent(s).');
    }
    const allowed = this.allowedMask();
    const priv = PRIVILEGED.members | PRIVILEGED.presences | PRIVILEGED.message_content;
    if ((intents & priv & ~allowed) !== 0) { rec.outcome = 'close 4014'; return this.close(conn, 4014, 'Disallowed intent(s).'); }
    let shard = d.shard;
    if (shard === undefined || shard === null) {
      if (this.cfg.shards !== 1) { rec.outcome = 'close 4011'; return this.close(conn, 4011, 'Sharding required.'); }
      shard = [0, 1];
    }
    if (!Array.isArray(shard) || shard.length !== 2 || !shard.every(Number.isInteger)
        || shard[0] < 0 || shard[0] >= shard[1] || shard[1] !== this.cfg.shards) {
      rec.outcome = 'close 4010';
      return this.close(conn, 4010, 'Invalid shard.');
    }
    rec.shard = shard[0];
    conn.shard = shard[0];
    // identify concurrency: one per rate_limit_key per 5 s
    const key = shard[0] % this.cfg.max_concurrency;
    const last = this.lastIdentifyByKey.get(key);
    if (last !== undefined && rec.time - last < CONCURRENCY_WINDOW_MS) {
      rec.outcome = 'invalid_session (max_concurrency)';
      return this.send(conn, { op: 9, d: false, s: null, t: null }, { reason: 'max_concurrency' });
    }
    // session start limit
    this.botInfo(); // refreshes the window
    if (this.remaining <= 0) {
      rec.outcome = 'close 4008 (session_start_limit)';
      this.limitCloses.push({ time: rec.time, conn: conn.id, shard: shard[0] });
      return this.close(conn, 4008, 'Session start limit reached.');
    }
    this.remaining -= 1;
    this.lastIdentifyByKey.set(key, rec.time);

    const s = {
      id: randomHex(16), shard: [shard[0], shard[1]], seq: 0, ring: new Ring(BUFFER_MAX), conn,
      intents, identified_at: rec.time, resumed: 0, invalidated: null, timer: null, expires_at: null,
      last_heartbeat: conn.last_heartbeat, paths: [conn.path], compress: conn.compress,
      properties: d.properties ?? null, large_threshold: d.large_threshold ?? 50, disconnected_at: null, last_close: null,
    };
    rec.session_id = s.id;
    rec.outcome = 'ready';
    this.sessions.set(s.id, s);
    this.pruneSessions();
    // an older session of the shard stays resumable (Discord allows several); events go to the newest
    this.current.set(shard[0], s);
    conn.session = s;
    conn.identified = true;

    const guilds = this.shardGuilds(shard[0], shard[1]);
    const bot = this.ctx.store.botUser();
    this.dispatch(s, 'READY', {
      v: 10,
      user: { ...structuredClone(bot), verified: true, mfa_enabled: false, email: null, flags: 0 },
      guilds: guilds.map((g) => ({ id: g.guild.id, unavailable: true })),
      session_id: s.id,
      session_type: 'normal',
      resume_gateway_url: this.url('/gateway-resume'),
      shard: s.shard,
      application: { id: this.ctx.applicationId, flags: this.applicationFlags() },
      private_channels: [], relationships: [], presences: [], guild_join_requests: [], geo_ordered_rtc_regions: ['fake'],
      user_settings: {}, auth: {}, _trace: ['["fake-gateway",{"micros":0}]'],
    });
    for (const g of guilds) this.dispatch(s, 'GUILD_CREATE', this.guildCreate(g, s));
    return undefined;
  }

  pruneSessions() {
    if (this.sessions.size <= SESSIONS_KEPT) return;
    for (const [id, s] of this.sessions) {
      if (this.sessions.size <= SESSIONS_KEPT) break;
      if (s.invalidated) this.sessions.delete(id);
    }
  }

  allowedMask() {
    const a = this.cfg.allowed_intents;
    if (Number.isInteger(a)) return a;
    let m = 0;
    for (const n of a) m |= PRIVILEGED[n] ?? 0;
    return m;
  }

  applicationFlags() {
    const m = this.allowedMask();
    let f = 0;
    if (m & PRIVILEGED.presences) f |= 1 << 13; // GATEWAY_PRESENCE_LIMITED
    if (m & PRIVILEGED.members) f |= 1 << 15; // GATEWAY_GUILD_MEMBERS_LIMITED
    if (m & PRIVILEGED.message_content) f |= 1 << 19; // GATEWAY_MESSAGE_CONTENT_LIMITED
    return f;
  }

  /** The fake's guilds the bot is in that belong to shard id of num. */
  shardGuilds(id, num) {
    const st = this.ctx.store;
    return Object.values(st.st.guilds).filter((g) => st.botMember(g) && shardOf(g.guild.id, num) === id);
  }

  guildCreate(g, s) {
    const st = this.ctx.store;
    const members = Object.values(g.members);
    const threshold = Math.min(250, Math.max(50, Number(s?.large_threshold) || 50));
    const large = members.length > threshold;
    const botMember = st.botMember(g);
    const channels = Object.values(g.channels).map((c) => { const x = structuredClone(c); delete x.guild_id; return x; });
    return {
      ...structuredClone(g.guild),
      roles: Object.values(g.roles).sort((a, b) => a.position - b.position).map((r) => structuredClone(r)),
      channels,
      threads: [],
      members: structuredClone(large ? [botMember] : members),
      member_count: members.length,
      joined_at: botMember?.joined_at ?? discordTime(Date.now()),
      large,
      unavailable: false,
      lazy: true,
      voice_states: [], presences: [], stage_instances: [], guild_scheduled_events: [], soundboard_sounds: [],
      emojis: [], stickers: [], embedded_activities: [],
      max_members: 500000, max_video_channel_users: 25, premium_subscription_count: 0,
      application_id: null, vanity_url_code: null, banner: null, splash: null, discovery_splash: null,
      safety_alerts_channel_id: null, public_updates_channel_id: null, incidents_data: null, hub_type: null,
    };
  }

  onResume(conn, d) {
    if (conn.identified) return this.close(conn, 4005, 'Already authenticated.');
    if (!d || typeof d !== 'object') return this.close(conn, 4002, 'Error while decoding payload.');
    const rec = { time: Date.now(), conn: conn.id, path: conn.path, session_id: d.session_id ?? null, seq: d.seq ?? null, shard: null, outcome: null, replayed: 0 };
    this.resumes.push(rec);
    if (this.resumes.length > 10000) this.resumes.splice(0, 1000);
    if (d.token !== this.ctx.botToken) { rec.outcome = 'close 4004'; return this.close(conn, 4004, 'Authentication failed.'); }
    const s = this.sessions.get(d.session_id);
    const seq = d.seq === null || d.seq === undefined ? 0 : d.seq;
    if (!s || s.invalidated || !Number.isInteger(seq) || seq < 0) {
      rec.outcome = s ? `invalid_session (${s.invalidated ?? 'bad seq'})` : 'invalid_session (unknown session)';
      return this.send(conn, { op: 9, d: false, s: null, t: null }, { reason: rec.outcome });
    }
    rec.shard = s.shard[0];
    if (seq > s.seq) { rec.outcome = 'close 4007'; return this.close(conn, 4007, 'Invalid seq.'); }
    const oldest = s.ring.oldest();
    if (oldest !== null && seq + 1 < oldest) {
      rec.outcome = 'invalid_session (seq older than the buffer)';
      return this.send(conn, { op: 9, d: false, s: null, t: null }, { reason: 'seq older than the buffer' });
    }
    if (s.conn && s.conn !== conn) {
      const old = s.conn;
      s.conn = null;
      old.session = null;
      this.close(old, 4000, 'Session resumed on another connection.');
    }
    clearTimeout(s.timer);
    s.expires_at = null;
    s.conn = conn;
    s.resumed += 1;
    s.paths.push(conn.path);
    s.compress = conn.compress;
    conn.session = s;
    conn.shard = s.shard[0];
    conn.identified = true;
    if (this.current.get(s.shard[0]) !== s) {
      const cur = this.current.get(s.shard[0]);
      if (!cur || !cur.conn) this.current.set(s.shard[0], s);
    }
    let n = 0;
    for (const it of s.ring.after(seq)) { this.sendRaw(conn, it.frame); n += 1; }
    rec.replayed = n;
    rec.outcome = 'resumed';
    this.log({ conn: conn.id, shard: conn.shard, dir: 'out', op: 0, t: 'REPLAY', count: n, from_seq: seq });
    this.dispatch(s, 'RESUMED', { _trace: ['["fake-gateway",{"micros":0}]'] });
    return undefined;
  }

  onRequestMembers(conn, d) {
    const g = d?.guild_id ? this.ctx.store.guild(String(d.guild_id)) : null;
    if (!g || !conn.session) return;
    let members = Object.values(g.members);
    if (Array.isArray(d.user_ids)) members = members.filter((m) => d.user_ids.map(String).includes(m.user.id));
    else if (typeof d.query === 'string' && d.query) members = members.filter((m) => m.user.username.startsWith(d.query));
    if (Number.isInteger(d.limit) && d.limit > 0) members = members.slice(0, d.limit);
    this.dispatch(conn.session, 'GUILD_MEMBERS_CHUNK', {
      guild_id: g.guild.id, members: structuredClone(members), chunk_index: 0, chunk_count: 1,
      not_found: [], ...(d.nonce !== undefined ? { nonce: d.nonce } : {}),
    });
  }

  // ------------------------------------------------------------ dispatch
  /** Gives the event the session's next seq, buffers it and sends it when connected. */
  dispatch(s, t, d, { log = true } = {}) {
    s.seq += 1;
    const frame = `{"op":0,"t":${JSON.stringify(t)},"s":${s.seq},"d":${typeof d === 'string' ? d : JSON.stringify(d)}}`;
    s.ring?.push(s.seq, frame);
    const sent = s.conn ? this.sendRaw(s.conn, frame) : false;
    if (log) this.log({ conn: s.conn?.id ?? null, shard: s.shard[0], dir: 'out', op: 0, t, s: s.seq, sent });
    return { seq: s.seq, sent };
  }

  /** The session events for a guild (or shard) go to, and that shard. */
  route(guildId, shard) {
    const sh = Number.isInteger(shard) ? shard : guildId ? shardOf(guildId, this.cfg.shards) : 0;
    const s = this.current.get(sh);
    return { shard: sh, session: s && !s.invalidated ? s : null };
  }

  // --------------------------------------------------------- synthetic guilds
  /** Deterministic synthetic guilds (seed, i): ids whose timestamps spread them over shards. */
  syntheticGuilds(n, seed) {
    const st = this.ctx.store;
    const out = [];
    const added = [];
    const base = 1577836800000n - DISCORD_EPOCH + BigInt(seed % 1000) * 100000n; // 2020 + seed
    for (let i = 0; i < n; i++) {
      const ts = base + BigInt(i);
      const sf = (k) => ((ts << 22n) | (BigInt(k) << 12n) | 0xabcn).toString();
      const ids = {
        guild: sf(1), category: sf(2), general: sf(3), modLog: sf(4), welcome: sf(5),
        member: sf(6), moderator: sf(7), muted: sf(8), bot: sf(9), admin: sf(10),
      };
      if (!st.guild(ids.guild)) {
        const g = makeGuild({ name: `Stream Guild ${seed}-${i}`, ids, botUserId: this.ctx.applicationId });
        st.addGuild(g);
        added.push(ids.guild);
      }
      out.push(ids.guild);
    }
    // the bot "joins" the new guilds: GUILD_CREATE to the shard's session
    for (const gid of added) {
      const { session } = this.route(gid);
      if (session) this.dispatch(session, 'GUILD_CREATE', this.guildCreate(st.guild(gid), session));
    }
    return { ids: out, added };
  }

  // -------------------------------------------------------------- stream
  async stream(b) {
    const count = b.count ?? 1000;
    const rate = b.rate ?? 0;
    const seed = b.seed ?? 1;
    const usersN = b.users ?? 1000;
    const badEvery = b.bad_every ?? 10;
    if (!Number.isInteger(count) || count < 0 || count > 10000000) return bad('count must be an integer 0..10000000');
    if (typeof rate !== 'number' || rate < 0) return bad('rate must be a number >= 0 (events/s, 0 = as fast as possible)');
    if (!Number.isInteger(usersN) || usersN < 1 || usersN > 10000000) return bad('users must be an integer >= 1');
    if (!Number.isInteger(badEvery) || badEvery < 0) return bad('bad_every must be an integer >= 0 (0: no rule-breaking messages)');
    if (!Number.isInteger(seed) || seed < 0) return bad('seed must be an integer >= 0');
    const st = this.ctx.store;
    let guildIds;
    if (Array.isArray(b.guild_ids)) {
      for (const id of b.guild_ids) if (!st.guild(String(id))) return bad(`guild_ids: ${id} is not a known guild`);
      guildIds = b.guild_ids.map(String);
    } else {
      const n = b.guilds ?? 1;
      if (!Number.isInteger(n) || n < 1 || n > 100000) return bad('guilds must be an integer 1..100000 (or give guild_ids)');
      guildIds = this.syntheticGuilds(n, seed).ids;
    }
    if (b.channel_id !== undefined && guildIds.length !== 1) return bad('channel_id needs exactly one guild');
    // per guild: channel, member role, shard route
    const gi = guildIds.map((gid) => {
      const g = st.guild(gid);
      const text = Object.values(g.channels).filter((c) => c.type === 0).sort((a, c) => a.position - c.position);
      const ch = b.channel_id !== undefined ? String(b.channel_id) : text[0]?.id;
      if (!ch) return null;
      const memberRole = Object.values(g.roles).find((r) => r.name === 'Member');
      return { gid, ch, roles: JSON.stringify(memberRole ? [memberRole.id] : []), shard: shardOf(gid, this.cfg.shards) };
    });
    if (gi.some((x) => !x)) return bad('a guild without a text channel');

    const rnd = prng(seed);
    const userBase = ((1609459200000n - DISCORD_EPOCH) << 22n) + BigInt(seed % 1000) * 10000000n; // 2021 + seed
    const userJson = new Map();
    const userOf = (k) => {
      let u = userJson.get(k);
      if (!u) {
        const id = (userBase + BigInt(k)).toString();
        u = { id, json: `{"id":"${id}","username":"user${k}","global_name":"User ${k}","discriminator":"0","avatar":null,"public_flags":0,"flags":0,"bot":false,"avatar_decoration_data":null,"clan":null,"primary_guild":null}` };
        if (userJson.size < 200000) userJson.set(k, u);
      }
      return u;
    };
    const startMs = Date.now();
    let idBase = (BigInt(startMs) - DISCORD_EPOCH) << 22n;
    if (idBase <= this.lastStreamId) idBase = this.lastStreamId + 1n;
    const lo = idBase;
    const hi = idBase + BigInt(Math.max(0, count - 1));
    if (count) {
      this.streamMessages.push({ lo, hi, channels: new Set(gi.map((x) => x.ch)) });
      this.lastStreamId = hi;
    }
    const joined = discordTime(startMs - 86400000);
    const memberTail = `,"joined_at":"${joined}","premium_since":null,"deaf":false,"mute":false,"flags":0,"pending":false,"communication_disabled_until":null,"nick":null,"avatar":null,"banner":null}`;
    const sentences = SENTENCES.map((x) => JSON.stringify(x));
    const badCounts = Object.fromEntries(BAD_KINDS.map((k) => [k, 0]));
    let badN = 0;
    const streamNo = ++this.streams;

    const build = (i) => {
      const g = gi[Math.floor(rnd() * gi.length)];
      const u = userOf(i % usersN);
      const id = (idBase + BigInt(i)).toString();
      const ts = discordTime(startMs + Math.floor(i / 1000));
      let content;
      let mentions = '[]';
      let everyone = false;
      if (badEvery > 0 && i % badEvery === badEvery - 1) {
        const kind = BAD_KINDS[badN % BAD_KINDS.length];
        badN += 1;
        badCounts[kind] += 1;
        if (kind === 'caps') content = '"THIS IS ALL CAPS SHOUTING"';
        else if (kind === 'invite') content = '"come join discord.gg/abc123 now"';
        else if (kind === 'url') content = '"look at http://bad.example/x for details"';
        else if (kind === 'words') content = (badCounts.words % 2) ? '"get free nitro here"' : '"this is a scam"';
        else if (kind === 'everyone') { content = '"@everyone look at this"'; everyone = true; } else {
          const ms = [];
          const ids = [];
          for (let k = 1; k <= 6; k++) { const m = userOf((i + k * 7919) % Math.max(usersN, 7)); ms.push(m.json); ids.push(`<@${m.id}>`); }
          content = JSON.stringify(`hey ${ids.join(' ')}`);
          mentions = `[${ms.join(',')}]`;
        }
      } else {
        const a = sentences[Math.floor(rnd() * sentences.length)];
        content = a;
      }
      const d = `{"id":"${id}","channel_id":"${g.ch}","guild_id":"${g.gid}","author":${u.json},"member":{"roles":${g.roles}${memberTail},"content":${content},"timestamp":"${ts}","edited_timestamp":null,"tts":false,"mention_everyone":${everyone},"mentions":${mentions},"mention_roles":[],"attachments":[],"embeds":[],"components":[],"pinned":false,"type":0,"flags":0,"channel_type":0,"nonce":null}`;
      return { d, shard: g.shard };
    };

    // pre-serialized: the events are built before the clock starts (up to PRE_MAX of them)
    const tg = performance.now();
    let pre = null;
    if (count <= PRE_MAX) { pre = new Array(count); for (let i = 0; i < count; i++) pre[i] = build(i); }
    const genMs = performance.now() - tg;
    const t0 = performance.now();
    const res = await this.pump(count, rate, pre ? (i) => pre[i] : build, 'MESSAGE_CREATE');
    const ms = performance.now() - t0;
    pre = null;
    this.log({ dir: 'out', op: 0, t: 'MESSAGE_CREATE', stream: streamNo, count, delivered: res.delivered, ms: Math.round(ms) });
    return reply(200, {
      sent: count, delivered: res.delivered, buffered_only: count - res.delivered, ms: Math.round(ms * 1000) / 1000,
      build_ms: Math.round(genMs),
      per_s: ms > 0 ? Math.round(count * 1000 / ms) : null, bad: badN, bad_kinds: badCounts, guild_ids: guildIds.length <= 100 ? guildIds : undefined,
      guilds: guildIds.length, first_id: count ? lo.toString() : null, last_id: count ? hi.toString() : null,
    });
  }

  /**
   * Sends n events built by build(i) -> {d (JSON string), shard, t?} at rate/s (0: as fast as
   * the sockets take them), waiting for 'drain' when a socket holds more than HIGH_WATER bytes.
   */
  async pump(n, rate, build, defaultT) {
    let delivered = 0;
    let i = 0;
    const t0 = performance.now();
    const batch = rate > 0 ? Math.max(1, Math.min(500, Math.ceil(rate / 200))) : 256;
    const corked = new Set();
    while (i < n) {
      if (rate > 0) {
        const due = Math.floor(((performance.now() - t0) / 1000) * rate) + 1;
        if (due <= i) { await sleep(Math.max(1, Math.min(50, ((i - due + 1) / rate) * 1000))); continue; }
      }
      const end = Math.min(n, i + batch, rate > 0 ? Math.floor(((performance.now() - t0) / 1000) * rate) + 1 : n);
      for (; i < end; i++) {
        const ev = build(i);
        if (ev.skip) continue;
        const { session } = this.route(null, ev.shard);
        if (!session) continue;
        const c = session.conn;
        if (c && !corked.has(c)) { c.ws._socket?.cork(); corked.add(c); }
        if (this.dispatch(session, ev.t ?? defaultT, ev.d, { log: false }).sent) delivered += 1;
      }
      for (const c of corked) c.ws._socket?.uncork();
      corked.clear();
      // backpressure: wait while any connected session's socket holds too much
      for (const s of this.current.values()) {
        const sock = s.conn?.ws?._socket;
        if (sock && s.conn.ws.bufferedAmount > HIGH_WATER && !(await waitDrain(sock, this.cfg.stall_ms))) {
          // a client that reads nothing for stall_ms is cut off (its session stays resumable)
          this.log({ conn: s.conn?.id ?? null, shard: s.shard[0], dir: 'drop', reason: `stalled: no drain in ${this.cfg.stall_ms} ms` });
          sock.destroy();
        }
        const c = s.conn;
        if (c?.deflate && c.zpending > ZLIB_HIGH && c.ws.readyState === 1) await new Promise((r) => c.zwaiters.push(r));
      }
      await new Promise((r) => setImmediate(r));
    }
    return { delivered };
  }

  async replay(b) {
    const rate = b.rate ?? 0;
    if (typeof rate !== 'number' || rate < 0) return bad('rate must be a number >= 0');
    let events = b.events;
    if (events === undefined && typeof b.file === 'string') {
      const full = path.resolve(REPO_ROOT, b.file);
      if (!full.startsWith(`${REPO_ROOT}${path.sep}`)) return bad('file must be inside the repository');
      let text;
      try { text = fs.readFileSync(full, 'utf8'); } catch (e) { return bad(`file: ${e.message}`); }
      events = [];
      const lines = text.split('\n');
      for (let k = 0; k < lines.length; k++) {
        const line = lines[k].trim();
        if (!line) continue;
        try { events.push(JSON.parse(line)); } catch { return bad(`file ${b.file} line ${k + 1}: not JSON`); }
      }
    }
    if (!Array.isArray(events)) return bad('events ([{t, d, shard?}]) or file (JSON lines, relative to the repository) required');
    const prepared = [];
    for (const [k, e] of events.entries()) {
      if (!e || typeof e.t !== 'string' || e.d === undefined) return bad(`events[${k}]: {t, d} required`);
      const gid = e.d && typeof e.d === 'object' ? e.d.guild_id : undefined;
      const shard = Number.isInteger(e.shard) ? e.shard : gid ? shardOf(gid, this.cfg.shards) : 0;
      prepared.push({ t: e.t, raw: e.d, d: null, shard });
    }
    const t0 = performance.now();
    const filter = this.cfg.filter_intents;
    const res = await this.pump(prepared.length, rate, (i) => {
      const e = prepared[i];
      let d = e.raw;
      if (filter) {
        const session = this.route(null, e.shard).session;
        if (session) d = this.intentFilter(session, e.t, d);
        if (d === null) return { skip: true, shard: e.shard };
      }
      return { t: e.t, d: JSON.stringify(d), shard: e.shard };
    }, null);
    const ms = performance.now() - t0;
    this.log({ dir: 'out', op: 0, t: 'REPLAY_STREAM', count: prepared.length, delivered: res.delivered, ms: Math.round(ms) });
    return reply(200, { sent: prepared.length, delivered: res.delivered, ms: Math.round(ms * 1000) / 1000 });
  }

  // ------------------------------------------------------------- control
  setConfig(b) {
    if (!b || typeof b !== 'object') return bad('JSON body required');
    const c = { ...this.cfg };
    const int = (k, min, max) => {
      if (b[k] === undefined) return null;
      if (!Number.isInteger(b[k]) || b[k] < min || b[k] > max) return `${k} must be an integer ${min}..${max}`;
      c[k] = b[k];
      return null;
    };
    const err = int('shards', 1, 4096) ?? int('max_concurrency', 1, 1024) ?? int('total', 0, 1e9) ?? int('remaining', 0, 1e9)
      ?? int('reset_after', 0, 864e5 * 7) ?? int('heartbeat_interval', 1, 864e5) ?? int('session_ttl_ms', 0, 864e5)
      ?? int('zlib_level', 0, 9) ?? int('stall_ms', 1, 864e5);
    if (err) return bad(err);
    for (const k of ['withhold_acks', 'require_compress', 'filter_intents']) {
      if (b[k] !== undefined) { if (typeof b[k] !== 'boolean') return bad(`${k} must be a boolean`); c[k] = b[k]; }
    }
    if (b.allowed_intents !== undefined) {
      const a = b.allowed_intents;
      if (!(Number.isInteger(a) && a >= 0) && !(Array.isArray(a) && a.every((n) => PRIVILEGED[n] !== undefined))) {
        return bad('allowed_intents: a list of members, presences, message_content (or an intents integer)');
      }
      c.allowed_intents = a;
    }
    const known = new Set([...Object.keys(DEFAULTS)]);
    const unknown = Object.keys(b).filter((k) => !known.has(k));
    if (unknown.length) return bad(`unknown config keys: ${unknown.join(', ')}`);
    this.cfg = c;
    if (b.remaining !== undefined) this.remaining = b.remaining;
    if (b.reset_after !== undefined) this.resetAt = Date.now() + b.reset_after;
    if (b.max_concurrency !== undefined) this.lastIdentifyByKey.clear();
    return reply(200, { ...this.cfg, remaining: this.remaining });
  }

  dispatchControl(b) {
    if (!b || typeof b.t !== 'string' || !/^[A-Z_]+$/.test(b.t)) return bad('t (an event name like MESSAGE_CREATE) required');
    if (b.d === undefined) return bad('d required');
    if (b.shard !== undefined && (!Number.isInteger(b.shard) || b.shard < 0 || b.shard >= this.cfg.shards)) return bad(`shard must be 0..${this.cfg.shards - 1}`);
    const gid = b.d && typeof b.d === 'object' && b.d.guild_id ? String(b.d.guild_id) : null;
    const { shard, session } = this.route(gid, b.shard);
    if (!session) return reply(200, { seq: null, shard, delivered: false, session_id: null });
    const d = this.cfg.filter_intents ? this.intentFilter(session, b.t, b.d) : b.d;
    if (d === null) return reply(200, { seq: null, shard, delivered: false, session_id: session.id, filtered: 'intents' });
    const r = this.dispatch(session, b.t, d);
    return reply(200, { seq: r.seq, shard, delivered: r.sent, session_id: session.id });
  }

  /**
   * filter_intents: what Discord would send a session for (t, d): null when the session lacks
   * the event's intent; MESSAGE_CREATE/UPDATE without MESSAGE_CONTENT lose content, embeds,
   * attachments, components and poll (unless by the bot or mentioning it).
   */
  intentFilter(s, t, d) {
    const guild = d && typeof d === 'object' && d.guild_id;
    const need = guild ? INTENT_OF[t] : (DM_INTENT_OF[t] ?? INTENT_OF[t]);
    if (need !== undefined && (s.intents & need) === 0) return null;
    if ((t === 'MESSAGE_CREATE' || t === 'MESSAGE_UPDATE') && guild && (s.intents & PRIVILEGED.message_content) === 0) {
      const app = this.ctx.applicationId;
      const mine = d.author?.id === app || (Array.isArray(d.mentions) && d.mentions.some((u) => u?.id === app));
      if (!mine) {
        const x = { ...d };
        if ('content' in x) x.content = '';
        if ('embeds' in x) x.embeds = [];
        if ('attachments' in x) x.attachments = [];
        if ('components' in x) x.components = [];
        delete x.poll;
        return x;
      }
    }
    return d;
  }

  action(b) {
    if (!b || typeof b.action !== 'string') return bad('action required: reconnect | invalid_session | close | drop | heartbeat_request | withhold_acks');
    const shard = b.shard ?? 0;
    if (!Number.isInteger(shard) || shard < 0) return bad('shard must be an integer >= 0');
    if (b.action === 'withhold_acks') {
      const on = b.on !== false;
      if (on) this.withholdShards.add(shard); else this.withholdShards.delete(shard);
      return reply(200, { shard, withhold_acks: on });
    }
    // the target connection: an explicit one, else the shard's session's, else the newest on the shard
    let conn = null;
    if (b.connection !== undefined) conn = this.conns.get(b.connection) ?? null;
    else {
      conn = this.current.get(shard)?.conn ?? null;
      if (!conn) for (const c of this.conns.values()) if (c.shard === shard && !c.closing) conn = c;
    }
    if (!conn) return reply(409, { error: `no open connection for shard ${shard}` });
    const out = { shard, connection: conn.id, session_id: conn.session?.id ?? null };
    switch (b.action) {
      case 'reconnect': {
        this.send(conn, { op: 7, d: null, s: null, t: null });
        const t = setTimeout(() => this.close(conn, 4000, 'Reconnect requested.'), b.close_after_ms ?? 5000);
        t.unref();
        return reply(200, out);
      }
      case 'invalid_session': {
        const resumable = Boolean(b.resumable ?? b.d);
        this.send(conn, { op: 9, d: resumable, s: null, t: null });
        if (!resumable && conn.session) this.invalidate(conn.session, 'invalid_session action');
        return reply(200, { ...out, resumable });
      }
      case 'close': {
        const code = b.code ?? 4000;
        if (!Number.isInteger(code) || !(code === 1000 || code === 1001 || (code >= 3000 && code <= 4999))) return bad('code must be 1000, 1001 or 3000..4999');
        this.close(conn, code, b.reason ?? 'closed by the fake');
        return reply(200, { ...out, code });
      }
      case 'drop':
        this.log({ conn: conn.id, shard: conn.shard, dir: 'drop' });
        conn.ws._socket?.destroy();
        return reply(200, out);
      case 'heartbeat_request':
        this.send(conn, { op: 1, d: null, s: null, t: null });
        return reply(200, out);
      default:
        return bad(`unknown action ${b.action}`);
    }
  }

  sessionsView() {
    const view = (s) => ({
      id: s.id, shard: s.shard[0], shard_count: s.shard[1], seq: s.seq, connected: Boolean(s.conn),
      connection: s.conn?.id ?? null, path: s.conn?.path ?? s.paths.at(-1), paths: s.paths, compress: s.compress,
      intents: s.intents, identified_at: s.identified_at, resumed: s.resumed, last_heartbeat: s.last_heartbeat ?? null,
      buffered: s.ring ? s.ring.len : 0, oldest_buffered: s.ring?.oldest() ?? null, invalidated: s.invalidated,
      current: this.current.get(s.shard[0]) === s, expires_at: s.expires_at, last_close: s.last_close, properties: s.properties,
    });
    return {
      sessions: [...this.sessions.values()].map(view),
      connections: [...this.conns.values()].map((c) => ({
        id: c.id, path: c.path, query: c.query, compress: c.compress, shard: c.shard, identified: c.identified,
        session_id: c.session?.id ?? null, opened_at: c.opened_at, last_heartbeat: c.last_heartbeat, heartbeats: c.heartbeats,
        buffered_bytes: c.ws.bufferedAmount,
      })),
      identifies: this.identifies,
      resumes: this.resumes,
      start_limit_closes: this.limitCloses,
      session_start_limit: this.botInfo().session_start_limit,
      config: this.cfg,
      zlib: SYNC_ZLIB_OK ? 'sync' : 'async',
    };
  }

  reset() {
    for (const c of [...this.conns.values()]) c.ws.terminate();
    for (const s of this.sessions.values()) clearTimeout(s.timer);
    this.resetState();
    return reply(200, { reset: true });
  }

  async control(method, p, query, b) {
    switch (`${method} ${p}`) {
      case 'POST /_fake/gateway/config': return this.setConfig(b);
      case 'GET /_fake/gateway/config': return reply(200, { ...this.cfg, remaining: this.remaining });
      case 'POST /_fake/gateway/dispatch': return this.dispatchControl(b);
      case 'POST /_fake/gateway/stream': return this.stream(b ?? {});
      case 'POST /_fake/gateway/replay': return this.replay(b ?? {});
      case 'POST /_fake/gateway/action': return this.action(b);
      case 'POST /_fake/gateway/guilds': {
        const n = b?.guilds ?? b?.count;
        if (!Number.isInteger(n) || n < 1 || n > 100000) return bad('guilds (1..100000) required');
        return reply(200, this.syntheticGuilds(n, b.seed ?? 1));
      }
      case 'GET /_fake/gateway/sessions': return reply(200, this.sessionsView());
      case 'GET /_fake/gateway/log': {
        const since = query.since !== undefined ? Number(query.since) : 0;
        if (!Number.isFinite(since)) return bad('since must be a number');
        return reply(200, this.logBuf.filter((e) => e.n > since));
      }
      case 'POST /_fake/gateway/reset': return this.reset();
      default: return reply(404, { error: `no control route ${method} ${p}` });
    }
  }
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

/** true when the socket drained (or closed), false after ms without. */
function waitDrain(sock, ms) {
  return new Promise((resolve) => {
    let t = null;
    const done = (v) => { clearTimeout(t); sock.off('drain', onDrain); sock.off('close', onDrain); resolve(v); };
    const onDrain = () => done(true);
    t = setTimeout(() => done(false), ms);
    sock.once('drain', onDrain);
    sock.once('close', onDrain);
  });
}
