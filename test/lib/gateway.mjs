// gateway.mjs - tests and the fake Discord gateway: start gateway-lite
// against the stack, drive the fake gateway's /_fake/gateway/ control API,
// and a small gateway client (JSON, optional zlib-stream) for tests that talk
// to the fake directly.
//
//   const gw = gatewayControl(stack);               // the fake's gateway controls
//   await gw.config({ shards: 2 });
//   const proc = await startGateway({ shards: '0-1/2' });   // waits for "ready" in Redis
//   await gw.stream({ count: 1000, guild_ids: [g.guild.id] });
//   await proc.stop();
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import WebSocket from 'ws';
import { loadStack, REPO_ROOT } from './stack.mjs';
import { redis } from './store.mjs';
import { waitFor } from './wait.mjs';

// ------------------------------------------------------------ control API
export class GatewayControl {
  /** base: the fake's URL (with or without /api/v10). */
  constructor(base) {
    this.base = base.replace(/\/$/, '').replace(/\/api\/v10$/, '');
  }

  async call(method, p, body) {
    const res = await fetch(`${this.base}/_fake/gateway/${p}`, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let data = text;
    try { data = text ? JSON.parse(text) : null; } catch { /* text */ }
    if (!res.ok) throw new Error(`fake gateway ${method} /_fake/gateway/${p} -> ${res.status}: ${text.slice(0, 300)}`);
    return data;
  }

  /** {shards, max_concurrency, total, remaining, reset_after, heartbeat_interval, withhold_acks,
   *  allowed_intents, session_ttl_ms, require_compress, zlib_level} (any subset) -> the whole config. */
  config(cfg) { return cfg === undefined ? this.call('GET', 'config') : this.call('POST', 'config', cfg); }
  /** One dispatch {t, d, shard?} -> {seq, shard, delivered, session_id}. */
  dispatch(t, d, opts = {}) { return this.call('POST', 'dispatch', { t, d, ...opts }); }
  /** MESSAGE_CREATE flood {count, rate, guilds | guild_ids, users, bad_every, seed, channel_id?} -> {sent, ms, ...}. */
  stream(opts) { return this.call('POST', 'stream', opts); }
  /** {events: [{t, d, shard?}] | file: 'path/in/repo.jsonl', rate} -> {sent, delivered, ms}. */
  replay(opts) { return this.call('POST', 'replay', opts); }
  /** {shard, action: reconnect | invalid_session (resumable) | close (code, reason) | drop | heartbeat_request | withhold_acks (on)}. */
  action(shard, action, opts = {}) { return this.call('POST', 'action', { shard, action, ...opts }); }
  /** {sessions: [...], connections, identifies, resumes, start_limit_closes, session_start_limit, config}. */
  sessions() { return this.call('GET', 'sessions'); }
  /** Every op in and out since the entry numbered `since` (entries carry n). */
  log(since = 0) { return this.call('GET', `log?since=${since}`); }
  /** Synthetic guilds (deterministic per seed) the bot is in: {ids, added}. */
  guilds(count, seed = 1) { return this.call('POST', 'guilds', { guilds: count, seed }); }
  /** Drops every connection and session, restores the default config. */
  reset() { return this.call('POST', 'reset'); }

  /** The highest log entry number so far (use as `since`). */
  async logSeq() {
    const l = await this.log(0);
    return l.length ? l.at(-1).n : 0;
  }
}

/** The control API of the stack's fake Discord. */
export function gatewayControl(stack = loadStack()) {
  return new GatewayControl(stack.fakeUrl);
}

// ----------------------------------------------------------- a test client
/**
 * A minimal gateway client for tests: connect(url, {compress}) then read
 * messages in order with next(pred). zlib-stream frames are inflated on ONE
 * inflate context for the whole connection, in order, as Discord requires.
 */
export class GatewayClient {
  constructor(url, { compress = false, query = 'v=10&encoding=json' } = {}) {
    const sep = url.includes('?') ? '&' : '?';
    this.url = `${url}${query ? sep + query : ''}${compress ? '&compress=zlib-stream' : ''}`;
    this.compress = compress;
    this.messages = [];
    this.waiters = [];
    this.binaryFrames = 0;
    this.textFrames = 0;
    this.frameTails = [];
    this.rawFrames = []; // the first 100 binary frames as received
    this.closeInfo = null;
    this.seq = null;
    this.errors = [];
    if (compress) {
      this.inflate = zlib.createInflate();
      this.chunks = [];
      this.inflate.on('data', (c) => this.chunks.push(c));
      this.inflate.on('error', (e) => this.errors.push(e.message));
      this.chain = Promise.resolve();
    }
  }

  open() {
    this.ws = new WebSocket(this.url);
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        // frames still being inflated come first
        const done = () => { this.closeInfo = { code, reason: reason.toString() }; this.wake(); resolve(this.closeInfo); };
        if (this.chain) this.chain.then(done); else done();
      });
    });
    this.ws.on('error', (e) => this.errors.push(e.message));
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.binaryFrames += 1;
        if (this.frameTails.length < 1000) this.frameTails.push(Buffer.from(data.subarray(-4)).toString('hex'));
        if (this.rawFrames.length < 100) this.rawFrames.push(Buffer.from(data));
        if (!this.inflate) { this.errors.push('binary frame without compression'); return; }
        this.chain = this.chain.then(() => new Promise((resolve) => {
          this.inflate.write(data);
          this.inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
            const text = Buffer.concat(this.chunks).toString('utf8');
            this.chunks = [];
            this.push(text);
            resolve();
          });
        }));
      } else {
        this.textFrames += 1;
        this.push(data.toString('utf8'));
      }
    });
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve(this));
      this.ws.once('error', reject);
    });
  }

  push(text) {
    let m;
    try { m = JSON.parse(text); } catch { this.errors.push(`bad JSON: ${text.slice(0, 100)}`); return; }
    if (m.s !== null && m.s !== undefined) this.seq = m.s;
    this.messages.push(m);
    this.wake();
  }

  wake() { for (const w of this.waiters.splice(0)) w(); }

  send(op, d) { this.ws.send(JSON.stringify({ op, d })); }
  sendRaw(text) { this.ws.send(text); }

  /**
   * The first message (from position `from`, default: after the last one
   * returned) matching pred; rejects on timeout or when the socket closed first.
   */
  async next(pred = () => true, { timeout = 5000, from } = {}) {
    const deadline = Date.now() + timeout;
    let i = from ?? this.cursor ?? 0;
    for (;;) {
      for (; i < this.messages.length; i++) {
        if (pred(this.messages[i])) { this.cursor = i + 1; return this.messages[i]; }
      }
      if (this.closeInfo) throw new Error(`connection closed (${this.closeInfo.code} ${this.closeInfo.reason}) before the expected message`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching gateway message within ${timeout} ms (got ${this.messages.length}: ${JSON.stringify(this.messages.slice(-3)).slice(0, 300)})`);
      await new Promise((r) => { const t = setTimeout(r, left); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }

  op(n, opts) { return this.next((m) => m.op === n, opts); }
  event(t, opts) { return this.next((m) => m.op === 0 && m.t === t, opts); }

  /** Resolves with {code, reason} when the server closes (rejects after timeout). */
  async waitClose(timeout = 5000) {
    return Promise.race([this.closed, new Promise((_, rej) => setTimeout(() => rej(new Error(`not closed within ${timeout} ms`)), timeout).unref())]);
  }

  /** HELLO, IDENTIFY and READY; returns the READY dispatch. */
  async identify(d) {
    await this.op(10);
    this.send(2, { properties: { os: 'linux', browser: 'guildhall-test', device: 'guildhall-test' }, ...d });
    return this.event('READY');
  }

  close(code = 1000) { this.ws.close(code); return this.closed; }
  terminate() { this.ws.terminate(); return this.closed; }
}

// --------------------------------------------------------- gateway-lite
/** '0-1/2' -> {first: 0, last: 1, count: 2}; '3/4' -> {first: 3, last: 3, count: 4}. */
export function parseShards(spec) {
  const m = /^(\d+)(?:-(\d+))?\/(\d+)$/.exec(String(spec));
  if (!m) throw new Error(`shards must look like i-j/N, got ${spec}`);
  const first = Number(m[1]);
  const last = m[2] === undefined ? first : Number(m[2]);
  const count = Number(m[3]);
  if (first > last || last >= count) throw new Error(`shards ${spec}: need i <= j < N`);
  return { first, last, count };
}

let started = 0;

function tailOf(file, n = 30) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch (e) {
    return `(no log: ${e.code ?? e.message})`;
  }
}

/**
 * Starts build/bin/guildhall-gateway --shards <shards> with the stack's
 * environment plus LOG_FILE=<run dir>/logs/gateway-<name>.log and `env`
 * overrides, and (waitReady) waits until every shard in range has state
 * "ready" in bot:{global}:shards:<id> written by this process (its
 * GATEWAY_OWNER). Returns {pid, proc, owner, logFile, logLines(), exited,
 * stop() (SIGTERM, waits for the exit; resolves {code, signal}), kill() (SIGKILL)}.
 */
export async function startGateway({ shards = '0-0/1', env = {}, waitReady = true, name, timeout = 30000, stack = loadStack() } = {}) {
  const range = shards === null ? null : parseShards(shards);
  started += 1;
  const label = name ?? `${String(shards ?? 'all').replace(/[^0-9a-z]+/gi, '_')}-${process.pid}-${started}`;
  const runDir = stack.GH_RUN_DIR ?? path.join(REPO_ROOT, '.run', stack.profile);
  fs.mkdirSync(path.join(runDir, 'logs'), { recursive: true });
  const logFile = path.join(runDir, 'logs', `gateway-${label}.log`);
  const bin = path.join(stack.GH_BIN ?? path.join(REPO_ROOT, 'build', 'bin'), 'guildhall-gateway');
  if (!fs.existsSync(bin)) throw new Error(`${bin} does not exist: build it with \`make all\``);

  const stackEnv = Object.fromEntries(Object.entries(stack).filter(([k, v]) => /^[A-Z][A-Z0-9_]*$/.test(k) && typeof v === 'string'));
  const owner = env.GATEWAY_OWNER ?? `${os.hostname()}:test-${label}-${crypto.randomBytes(3).toString('hex')}`;
  const childEnv = {
    PATH: process.env.PATH, HOME: process.env.HOME ?? '/root', ...stackEnv,
    LOG_FILE: logFile, GATEWAY_OWNER: owner, ...env,
  };
  for (const [k, v] of Object.entries(childEnv)) if (v === undefined || v === null) delete childEnv[k];
  const args = range ? ['--shards', `${range.first}-${range.last}/${range.count}`] : [];
  const proc = spawn(bin, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = [];
  const keep = (c) => { output.push(c.toString('utf8')); if (output.length > 200) output.shift(); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exitInfo = null;
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => { exitInfo = { code, signal }; resolve(exitInfo); }));
  const describe = () => `log tail (${logFile}):\n${tailOf(logFile)}\nstdout/stderr:\n${output.join('').split('\n').slice(-15).join('\n')}`;

  const g = {
    pid: proc.pid, proc, owner, logFile, name: label, exited,
    logLines: () => { try { return fs.readFileSync(logFile, 'utf8').split('\n').filter(Boolean); } catch { return []; } },
    output: () => output.join(''),
    async stop(ms = 15000) {
      if (exitInfo) return exitInfo;
      proc.kill('SIGTERM');
      const t = new Promise((resolve) => setTimeout(resolve, ms).unref());
      const r = await Promise.race([exited, t]);
      if (r) return r;
      proc.kill('SIGKILL');
      await exited;
      throw new Error(`guildhall-gateway ${label} (pid ${proc.pid}) did not exit within ${ms} ms of SIGTERM; killed. ${describe()}`);
    },
    async kill() {
      if (exitInfo) return exitInfo;
      proc.kill('SIGKILL');
      return exited;
    },
  };
  if (!waitReady) return g;

  let ids;
  if (range) ids = Array.from({ length: range.last - range.first + 1 }, (_, k) => range.first + k);
  else {
    const cfg = await new GatewayControl(stack.fakeUrl).config();
    ids = Array.from({ length: cfg.shards }, (_, k) => k);
  }
  let r;
  try {
    r = await waitFor(() => {
      if (exitInfo) return { exited: exitInfo };
      const ready = ids.every((id) => {
        const out = redis(stack.REDIS_URL, 'HMGET', `bot:{global}:shards:${id}`, 'state', 'owner').split('\n');
        return out[0] === 'ready' && (out[1] === owner || !out[1]);
      });
      return ready ? { ready: true } : false;
    }, { timeout, interval: 100, message: `shards ${ids.join(',')} state "ready" in bot:{global}:shards:<id> (owner ${owner})` });
  } catch (e) {
    if (!exitInfo) { proc.kill('SIGKILL'); await exited; }
    throw new Error(`startGateway(${shards}): ${e.message}\n${describe()}`);
  }
  if (r.exited) throw new Error(`startGateway(${shards}): guildhall-gateway exited before its shards were ready (${JSON.stringify(r.exited)})\n${describe()}`);
  return g;
}
