#!/usr/bin/env node
// server.mjs - a stateful fake of Discord's REST API (v10) for Guildhall's tests.
//
//   node server.mjs --port 18081 [--state-file f] [--host 127.0.0.1] [--verbose]
//
// Environment: DISCORD_PUBLIC_KEY_SEED (hex seed of the key the fake signs
// interactions and webhook events with), GH_INTERACTIONS_URL (where signed
// interactions go), GH_WEBHOOKS_URL (where signed webhook events go),
// FAKE_APPLICATION_ID, FAKE_BOT_TOKEN, optional FAKE_CLIENT_ID (default: the
// application id), FAKE_CLIENT_SECRET (when set, OAuth2 checks it),
// FAKE_GLOBAL_RATE_LIMIT (requests per second per bot, default 50).
// Prints "fake-discord listening on 127.0.0.1:<port>" once ready.
// See README.md beside this file for routes and the /_fake/ control API.
import http from 'node:http';
import { APPLICATION_ID, users } from '../../lib/fixtures.mjs';
import { TEST_SEED_HEX } from '../../lib/signer.mjs';
import { handleControl } from './control.mjs';
import { FakeGateway } from './gateway.mjs';
import { RateLimiter } from './ratelimit.mjs';
import { authorizeHandler, fail, matchRoute, reply } from './routes.mjs';
import { Store } from './state.mjs';
import { toDiscordErrors, toFlat, validateBody } from './validate.mjs';

const MAX_BODY = 26 * 1024 * 1024;
const MAX_LOG = 20000;

function parseArgs(argv) {
  const a = { port: 18081, host: '127.0.0.1', stateFile: null, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      return argv[++i];
    };
    if (k === '--port') a.port = Number(next());
    else if (k === '--host') a.host = next();
    else if (k === '--state-file') a.stateFile = next();
    else if (k === '--verbose') a.verbose = true;
    else if (k === '--help' || k === '-h') {
      process.stdout.write('usage: node server.mjs --port N [--state-file f] [--host 127.0.0.1] [--verbose]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${k}`);
  }
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) throw new Error('--port must be 0..65535');
  return a;
}

// ------------------------------------------------------------- body parsing
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) { reject(Object.assign(new Error('too large'), { tooLarge: true })); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseMultipart(buf, contentType) {
  const m = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!m) return null;
  const boundary = Buffer.from(`--${m[1] ?? m[2]}`);
  const out = { payload_json: undefined, files: [] };
  let pos = buf.indexOf(boundary);
  while (pos !== -1) {
    const start = pos + boundary.length;
    if (buf.subarray(start, start + 2).toString() === '--') break;
    const next = buf.indexOf(boundary, start);
    if (next === -1) break;
    const part = buf.subarray(start + 2, next - 2); // skip CRLF after boundary, before next
    const sep = part.indexOf('\r\n\r\n');
    const head = part.subarray(0, sep).toString('utf8');
    const data = part.subarray(sep + 4);
    const name = /name="([^"]*)"/i.exec(head)?.[1];
    const filename = /filename="([^"]*)"/i.exec(head)?.[1];
    const ctype = /content-type:\s*([^\r\n]+)/i.exec(head)?.[1];
    if (name === 'payload_json') out.payload_json = data.toString('utf8');
    else if (filename !== undefined) out.files.push({ name, filename, size: data.length, content_type: ctype ?? null });
    else out[name] = data.toString('utf8');
    pos = next;
  }
  return out;
}

const invalidJson = () => fail(400, 50109, 'The request body contains invalid JSON.');
const badContentType = () => reply(400, {
  code: 50035, message: 'Invalid Form Body',
  errors: { _errors: [{ code: 'CONTENT_TYPE_INVALID', message: 'Expected "Content-Type" header to be one of {\'application/json\', \'application/x-www-form-urlencoded\', \'multipart/form-data\'}.' }] },
});

/** -> {body, recordBody, form, error} */
function decodeBody(buf, contentType, route) {
  if (!buf.length) return { body: undefined, recordBody: null };
  const ct = (contentType ?? '').toLowerCase();
  const text = buf.toString('utf8');
  if (route?.form) {
    if (!ct.startsWith('application/x-www-form-urlencoded')) return { recordBody: text, form: null };
    const form = Object.fromEntries(new URLSearchParams(text));
    return { recordBody: form, form };
  }
  if (ct.startsWith('application/json')) {
    try { const body = JSON.parse(text); return { body, recordBody: body }; } catch { return { recordBody: text, error: invalidJson() }; }
  }
  if (ct.startsWith('multipart/form-data')) {
    const mp = parseMultipart(buf, contentType);
    if (!mp) return { recordBody: text, error: badContentType() };
    let body = {};
    if (mp.payload_json !== undefined) {
      try { body = JSON.parse(mp.payload_json); } catch { return { recordBody: mp, error: invalidJson() }; }
    }
    if (mp.files.length && body && typeof body === 'object') body.files = mp.files;
    return { body, recordBody: { ...mp, payload_json: body } };
  }
  if (ct.startsWith('application/x-www-form-urlencoded')) {
    const form = Object.fromEntries(new URLSearchParams(text));
    return { body: form, recordBody: form, form };
  }
  return { recordBody: text, error: badContentType() };
}

function hasAllowedMentions(body) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return false;
  if ('allowed_mentions' in body) return true;
  return Boolean(body.data && typeof body.data === 'object' && 'allowed_mentions' in body.data);
}

// ------------------------------------------------------------------ server
function send(res, out, record, ctx) {
  const headers = { ...(out.headers ?? {}) };
  let payload = '';
  if (out.status !== 204 && out.body !== undefined && out.body !== null) {
    payload = JSON.stringify(out.body);
    headers['Content-Type'] = 'application/json';
  }
  headers['Content-Length'] = Buffer.byteLength(payload);
  headers['Via'] = '1.1 google';
  res.writeHead(out.status, headers);
  res.end(payload);
  if (record) {
    record.status = out.status;
    record.response_headers = headers;
    record.response = out.body ?? null;
    if (ctx.verbose) process.stdout.write(`${JSON.stringify({ seq: record.seq, method: record.method, path: record.path, status: out.status })}\n`);
  }
}

const API_PREFIX = '/api/v10';

async function handle(ctx, req, res) {
  const url = new URL(req.url, 'http://fake.invalid');
  const path = url.pathname;
  const query = Object.fromEntries(url.searchParams);
  let buf;
  try {
    buf = await readBody(req);
  } catch (e) {
    if (e.tooLarge) return send(res, fail(413, 40005, 'Request entity too large'), null, ctx);
    return undefined;
  }

  if (path.startsWith('/_fake/')) {
    let body;
    if (buf.length) {
      try { body = JSON.parse(buf.toString('utf8')); } catch { return send(res, reply(400, { error: 'control API bodies are JSON' }), null, ctx); }
    }
    try {
      if (path.startsWith('/_fake/gateway/')) return send(res, await ctx.gateway.control(req.method, path, query, body), null, ctx);
      return send(res, await handleControl(ctx, { method: req.method, path, query, body }), null, ctx);
    } catch (e) {
      process.stderr.write(`fake-discord: control ${req.method} ${path} failed: ${e.stack}\n`);
      return send(res, reply(500, { error: e.message }), null, ctx);
    }
  }

  const record = {
    seq: ++ctx.seq, time: performance.timeOrigin + performance.now(), method: req.method, path, query,
    headers: { ...req.headers }, body: null, valid: true, errors: [], status: null, route: null,
    has_allowed_mentions: false, injected: false,
  };
  ctx.log.push(record);
  if (ctx.log.length > MAX_LOG) ctx.log.splice(0, ctx.log.length - MAX_LOG);

  // OAuth2 authorize (the browser page) and the unversioned token URL
  if (req.method === 'GET' && ['/oauth2/authorize', '/api/oauth2/authorize', `${API_PREFIX}/oauth2/authorize`].includes(path)) {
    record.route = '/oauth2/authorize';
    const out = authorizeHandler(ctx, { query, headers: req.headers });
    ctx.store.changed();
    return send(res, out, record, ctx);
  }
  let rel = null;
  if (path.startsWith(`${API_PREFIX}/`)) rel = path.slice(API_PREFIX.length);
  else if (path.startsWith('/api/oauth2/')) rel = path.slice('/api'.length);
  const m = rel ? matchRoute(req.method, rel) : null;
  if (!m) {
    const decoded = decodeBody(buf, req.headers['content-type'], null);
    record.body = decoded.recordBody;
    return send(res, fail(404, 0, '404: Not Found'), record, ctx);
  }
  if (m.methodNotAllowed) return send(res, fail(405, 0, '405: Method Not Allowed'), record, ctx);
  const { route, params } = m;
  record.route = route.template;

  const decoded = decodeBody(buf, req.headers['content-type'], route);
  record.body = decoded.recordBody;
  record.has_allowed_mentions = hasAllowedMentions(decoded.body);

  // injected failures come first: tests use them to simulate Discord trouble
  const rule = ctx.fails.find((f) => (!f.method || f.method === req.method) && f.re.test(path));
  if (rule) {
    rule.count -= 1;
    if (rule.count <= 0) ctx.fails.splice(ctx.fails.indexOf(rule), 1);
    record.injected = true;
    if (rule.status === 429) {
      const headers = ctx.limiter.exhaustedHeaders(route.rl, rule.retry_after, rule.scope, rule.global);
      const body = rule.body ?? { message: 'You are being rate limited.', retry_after: rule.retry_after, global: rule.global };
      return send(res, reply(429, body, headers), record, ctx);
    }
    return send(res, reply(rule.status, rule.body ?? defaultFailBody(rule.status)), record, ctx);
  }

  // authentication
  const authz = req.headers.authorization ?? '';
  const auth = { kind: 'none' };
  if (route.auth !== 'none') {
    if (authz === `Bot ${ctx.botToken}` && route.auth !== 'bearer') auth.kind = 'bot';
    else if (authz.startsWith('Bearer ') && (route.auth === 'bearer' || route.auth === 'bot_or_bearer')) {
      const t = ctx.store.st.oauth.tokens[authz.slice(7)];
      if (t && t.expires_at > Date.now() && (!route.scope || t.scope.split(' ').includes(route.scope))) {
        auth.kind = 'bearer'; auth.userId = t.user_id; auth.scopes = t.scope.split(' ');
      }
    }
    if (auth.kind === 'none') return send(res, fail(401, 0, '401: Unauthorized'), record, ctx);
    if (auth.kind === 'bot' && !String(req.headers['user-agent'] ?? '').startsWith('DiscordBot (')) {
      return send(res, fail(400, 0, 'Invalid User-Agent: bot requests must send "User-Agent: DiscordBot ($url, $versionNumber)"'), record, ctx);
    }
  }

  // path parameters that are snowflakes
  for (const [k, v] of Object.entries(params)) {
    if (!k.endsWith('_id') || (k === 'message_id' && v === '@original')) continue;
    if (!/^(0|[1-9][0-9]*)$/.test(v)) {
      record.valid = false;
      record.errors = [{ path: k, code: 'NUMBER_TYPE_COERCE', message: `Value "${v}" is not snowflake.` }];
      return send(res, reply(400, { code: 50035, message: 'Invalid Form Body', errors: { [k]: { _errors: [{ code: 'NUMBER_TYPE_COERCE', message: `Value "${v}" is not snowflake.` }] } } }), record, ctx);
    }
  }

  // rate limits
  let rlHeaders = {};
  if (route.rl) {
    let major = route.major === 'webhook' ? `${params.webhook_id}:${params.webhook_token}` : (params[route.major] ?? '');
    // limits count per token: every OAuth2 user has buckets of their own (the bot has one token)
    if (auth.kind === 'bearer') major = `${major}|user:${auth.userId}`;
    const r = ctx.limiter.take(route.rl, major, { global: auth.kind === 'bot' && route.global !== false });
    rlHeaders = r.headers;
    if (!r.ok) {
      return send(res, reply(429, { message: 'You are being rate limited.', retry_after: Math.round(r.retryAfter * 1000) / 1000, global: r.global, code: 0 }, rlHeaders), record, ctx);
    }
  }
  const withRl = (out) => ({ ...out, headers: { ...rlHeaders, ...(out.headers ?? {}) } });

  if (decoded.error) {
    record.valid = false;
    record.errors = [{ path: '', code: decoded.error.body.code === 50109 ? 'INVALID_JSON' : 'CONTENT_TYPE_INVALID', message: decoded.error.body.message }];
    return send(res, withRl(decoded.error), record, ctx);
  }

  // request body validation against the spec's schema for this operation
  if (route.schema) {
    const bodyRequired = !['UnbanUserFromGuildRequest', 'BanUserFromGuildRequest', 'CreateRoleRequest', 'UpdateRoleRequestPartial'].includes(route.schema)
      && req.method !== 'GET';
    if (decoded.body === undefined && bodyRequired) {
      record.valid = false;
      record.errors = [{ path: '', code: 'BASE_TYPE_REQUIRED', message: 'A request body is required' }];
      if (['MessageCreateRequest', 'IncomingWebhookRequestPartial'].includes(route.schema)) return send(res, withRl(fail(400, 50006, 'Cannot send an empty message')), record, ctx);
      return send(res, withRl(reply(400, { code: 50035, message: 'Invalid Form Body', errors: { _errors: [{ code: 'BASE_TYPE_REQUIRED', message: 'This field is required' }] } })), record, ctx);
    }
    const v = validateBody(route.schema, decoded.body);
    if (v.issues.length) {
      record.valid = false;
      record.errors = toFlat(v.issues);
      return send(res, withRl(reply(400, { code: 50035, errors: toDiscordErrors(v.issues), message: 'Invalid Form Body' })), record, ctx);
    }
    if (v.empty) {
      record.valid = false;
      record.errors = [{ path: '', code: 'EMPTY_MESSAGE', message: 'Cannot send an empty message' }];
      return send(res, withRl(fail(400, 50006, 'Cannot send an empty message')), record, ctx);
    }
  }

  let out;
  try {
    // the gateway answers /gateway/bot and the deletes of its streamed messages
    out = ctx.gateway.routeHook(req.method, route.template, params) ?? await route.handler(ctx, { params, query, body: decoded.body, form: decoded.form, headers: req.headers, auth, record });
  } catch (e) {
    process.stderr.write(`fake-discord: ${req.method} ${path} failed: ${e.stack}\n`);
    out = fail(500, 0, '500: Internal Server Error');
  }
  if (req.method !== 'GET' && out.status < 400) ctx.store.changed();
  return send(res, withRl(out), record, ctx);
}

function defaultFailBody(status) {
  return {
    401: { message: '401: Unauthorized', code: 0 },
    403: { message: 'Missing Permissions', code: 50013 },
    404: { message: '404: Not Found', code: 0 },
    500: { message: '500: Internal Server Error', code: 0 },
    502: { message: '502: Bad Gateway', code: 0 },
    503: { message: '503: Service Unavailable', code: 0 },
  }[status] ?? { message: String(status), code: 0 };
}

export function createFake(opts = {}) {
  const applicationId = opts.applicationId ?? APPLICATION_ID;
  const ctx = {
    port: opts.port ?? 0,
    verbose: Boolean(opts.verbose),
    applicationId,
    botToken: opts.botToken ?? 'fake-bot-token',
    seedHex: opts.seedHex ?? TEST_SEED_HEX,
    interactionsUrl: opts.interactionsUrl ?? null,
    webhooksUrl: opts.webhooksUrl ?? null,
    clientId: opts.clientId ?? applicationId,
    clientSecret: opts.clientSecret ?? null,
    ownerId: users.owner.id,
    store: new Store({ applicationId, stateFile: opts.stateFile ?? null }),
    limiter: new RateLimiter({ globalLimit: opts.globalLimit ?? 50 }),
    log: [], seq: 0, fails: [], failSeq: 0, interactionLog: [], interactionSeq: 0,
    webhookLog: [], webhookSeq: 0, oauthDeny: 0,
    session: { remaining: 1000, resetAt: 0 },
  };
  const server = http.createServer((req, res) => {
    handle(ctx, req, res).catch((e) => {
      process.stderr.write(`fake-discord: ${e.stack}\n`);
      if (!res.headersSent) { res.writeHead(500, { 'Content-Type': 'application/json' }); res.end('{"message":"500: Internal Server Error","code":0}'); }
    });
  });
  server.keepAliveTimeout = 65000;
  ctx.gateway = new FakeGateway(ctx);
  // the gateway's WebSocket (/gateway, /gateway-resume) shares the REST port
  server.on('upgrade', (req, socket, head) => ctx.gateway.handleUpgrade(req, socket, head));
  return { server, ctx };
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`fake-discord: ${e.message}\n`);
    process.exit(2);
  }
  const env = process.env;
  const seedHex = env.DISCORD_PUBLIC_KEY_SEED ?? TEST_SEED_HEX;
  if (!/^[0-9a-fA-F]{64}$/.test(seedHex)) {
    process.stderr.write('fake-discord: DISCORD_PUBLIC_KEY_SEED must be 64 hex characters\n');
    process.exit(2);
  }
  const appId = env.FAKE_APPLICATION_ID ?? APPLICATION_ID;
  if (!/^[1-9][0-9]{5,19}$/.test(appId)) {
    process.stderr.write('fake-discord: FAKE_APPLICATION_ID must be a snowflake\n');
    process.exit(2);
  }
  const { server, ctx } = createFake({
    port: args.port, verbose: args.verbose, applicationId: appId, botToken: env.FAKE_BOT_TOKEN ?? 'fake-bot-token',
    seedHex, interactionsUrl: env.GH_INTERACTIONS_URL ?? null, webhooksUrl: env.GH_WEBHOOKS_URL || null, clientId: env.FAKE_CLIENT_ID ?? appId,
    clientSecret: env.FAKE_CLIENT_SECRET || null, stateFile: args.stateFile,
    globalLimit: env.FAKE_GLOBAL_RATE_LIMIT ? Number(env.FAKE_GLOBAL_RATE_LIMIT) : 50,
  });
  server.on('error', (e) => {
    process.stderr.write(`fake-discord: cannot listen on ${args.host}:${args.port}: ${e.message}\n`);
    process.exit(1);
  });
  server.listen(args.port, args.host, () => {
    ctx.port = server.address().port;
    process.stdout.write(`fake-discord listening on ${args.host}:${ctx.port}\n`);
  });
  const stop = () => {
    try { ctx.store.save(); } catch (e) { process.stderr.write(`fake-discord: saving state failed: ${e.message}\n`); }
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
    ctx.gateway.reset();
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/server.mjs')) main();
