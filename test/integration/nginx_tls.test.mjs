// nginx_tls.test.mjs - nginx's security headers and caching on the running (plain HTTP) test stack,
// and the production TLS mode: scripts/render-nginx.sh with an https PUBLIC_URL and a self-signed
// certificate, run as a second nginx in front of the test stack's FastCGI sockets (redirect, HSTS,
// protocols, ciphers, HTTP/2, tickets), and the renderer refusing https without a certificate.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, loadStack } from '../lib/stack.mjs';
import { waitFor } from '../lib/wait.mjs';

const stack = loadStack();
const RENDER = path.join(REPO_ROOT, 'scripts', 'render-nginx.sh');
const HSTS = 'max-age=63072000; includeSubDomains';
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https://cdn.discordapp.com; " +
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; " +
    "form-action 'self' https://discord.com; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'strict-origin-when-cross-origin',
  'x-frame-options': 'DENY',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
  'cross-origin-opener-policy': 'same-origin',
};

/** One request with node's http/https (no redirect following, no decompression). */
function request(url, { method = 'GET', headers = {}, body, ca, maxVersion } = {}) {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      { hostname: u.hostname, port: u.port, path: u.pathname + u.search, method, headers, ca, maxVersion, agent: false },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function assertSecurityHeaders(headers, where) {
  for (const [name, want] of Object.entries(SECURITY_HEADERS)) {
    assert.equal(headers[name], want, `${where}: header ${name}`);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function render(out, env) {
  const clean = { ...process.env };
  for (const k of ['PUBLIC_URL', 'TLS_CERT_FILE', 'TLS_KEY_FILE', 'NGINX_USER', 'NGINX_LISTEN_ADDR']) delete clean[k];
  return spawnSync(RENDER, [out], { env: { ...clean, ...env }, encoding: 'utf8' });
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// (a) the running test stack: plain HTTP, PUBLIC_URL http.
describe('plain HTTP (the test stack)', () => {
  const base = stack.GH_HTTP_URL.replace(/\/$/, '');

  test('the dashboard, the API and an API 404 carry the security headers, and no HSTS', async () => {
    for (const p of ['/', '/api/v1/health', '/api/v1/no-such-endpoint']) {
      const r = await request(`${base}${p}`);
      assertSecurityHeaders(r.headers, p);
      assert.equal(r.headers['strict-transport-security'], undefined, `${p}: HSTS on plain HTTP`);
    }
    const missing = await request(`${base}/api/v1/no-such-endpoint`);
    assert.equal(missing.status, 404);
    assert.equal(JSON.parse(missing.body).error.code, 'not_found');
  });

  test('HTML is revalidated every time; scripts and styles get a short cache, gzipped', async () => {
    for (const p of ['/index.html', '/']) {
      const r = await request(`${base}${p}`);
      assert.equal(r.status, 200);
      assert.match(r.headers['content-type'], /^text\/html/);
      assert.equal(r.headers['cache-control'], 'no-cache', p);
    }
    for (const p of ['/app.js', '/style.css']) {
      const r = await request(`${base}${p}`, { headers: { 'Accept-Encoding': 'gzip' } });
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['cache-control'], 'max-age=300, must-revalidate', p);
      assert.equal(r.headers['content-encoding'], 'gzip', p);
      assertSecurityHeaders(r.headers, p);
    }
  });

  test("the API's own Cache-Control is kept, once; JSON is never gzipped", async () => {
    const r = await request(`${base}/api/v1/health`, { headers: { 'Accept-Encoding': 'gzip' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['cache-control'], 'no-store'); // node joins repeated headers with ", "
    assert.equal(r.headers['content-encoding'], undefined);
    const missing = await request(`${base}/api/v1/no-such-endpoint`);
    assert.match(missing.headers['cache-control'] ?? '', /\bno-store\b/, 'an API error must not be cached');
  });

  test('a body over the limit is a JSON 413 with the security headers, not cached', async () => {
    const limit = Number(stack.MAX_BODY_BYTES || 262144);
    const r = await request(`${base}/api/v1/health`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Length': String(limit + 1) },
      body: Buffer.alloc(limit + 1, 0x20),
    });
    assert.equal(r.status, 413);
    assert.equal(JSON.parse(r.body).error.code, 'body_too_large');
    assert.equal(r.headers['cache-control'], 'no-store');
    assertSecurityHeaders(r.headers, '413');
  });
});

// (b) TLS mode, in a second nginx beside the test stack.
describe('TLS mode (PUBLIC_URL https)', () => {
  let dir;
  let conf;
  let cert;
  let httpPort;
  let tlsPort;
  let pid;

  before(async () => {
    fs.mkdirSync(path.join(REPO_ROOT, '.run', 'test'), { recursive: true });
    dir = fs.mkdtempSync(path.join(REPO_ROOT, '.run', 'test', 'nginx-tls-'));
    fs.mkdirSync(path.join(dir, 'logs'));
    fs.mkdirSync(path.join(dir, 'nginx'));
    const certFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    const ossl = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', keyFile, '-out', certFile,
    ], { encoding: 'utf8' });
    assert.equal(ossl.status, 0, `openssl: ${ossl.stderr}`);
    cert = fs.readFileSync(certFile);

    const sockets = {
      INTERACTIONS_SOCKET: path.join(stack.GH_RUN_DIR, 'interactions.sock'),
      API_SOCKET: path.join(stack.GH_RUN_DIR, 'api.sock'),
    };
    for (const s of Object.values(sockets)) assert.ok(fs.existsSync(s), `the test stack's socket ${s} is missing`);

    httpPort = await freePort();
    do tlsPort = await freePort(); while (tlsPort === httpPort);
    conf = path.join(dir, 'nginx.conf');
    const r = render(conf, {
      PUBLIC_URL: `https://127.0.0.1:${tlsPort}`,
      TLS_CERT_FILE: certFile,
      TLS_KEY_FILE: keyFile,
      GH_RUN_DIR: dir,
      GH_HTTP_PORT: String(httpPort),
      NGINX_WORKERS: '1',
      ...sockets,
    });
    assert.equal(r.status, 0, `render-nginx.sh: ${r.stderr}`);
    const nginxArgs = ['-p', path.join(dir, 'nginx'), '-e', path.join(dir, 'logs', 'nginx-error.log'), '-c', conf];
    const t = spawnSync('nginx', ['-t', ...nginxArgs], { encoding: 'utf8' });
    assert.equal(t.status, 0, `nginx -t: ${t.stderr}`);
    // nginx binds its ports before it daemonizes, so they accept as soon as this returns.
    const s = spawnSync('nginx', nginxArgs, { encoding: 'utf8' });
    assert.equal(s.status, 0, `nginx: ${s.stderr}`);
    pid = Number(fs.readFileSync(path.join(dir, 'nginx.pid'), 'utf8').trim());
  });

  after(async () => {
    if (pid && pidAlive(pid)) {
      process.kill(pid, 'SIGQUIT');
      await waitFor(() => !pidAlive(pid), { timeout: 10000, message: `nginx ${pid} to exit` }).catch(() => {
        if (pidAlive(pid)) process.kill(pid, 'SIGTERM');
      });
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('plain HTTP answers 301 to the same path on PUBLIC_URL, Host header ignored', async () => {
    for (const p of ['/x', '/api/v1/guilds?a=1&b=2', '/']) {
      const r = await request(`http://127.0.0.1:${httpPort}${p}`, { headers: { Host: 'evil.example' } });
      assert.equal(r.status, 301, p);
      assert.equal(r.headers.location, `https://127.0.0.1:${tlsPort}${p}`, p);
      assert.equal(r.headers['strict-transport-security'], undefined);
    }
  });

  test('plain HTTP still serves /health, /metrics (loopback), /interactions and /webhooks/', async () => {
    const health = await request(`http://127.0.0.1:${httpPort}/health`);
    assert.equal(health.status, 200);
    assert.equal(JSON.parse(health.body).status, 'ok');
    assertSecurityHeaders(health.headers, 'http /health');
    assert.equal(health.headers['strict-transport-security'], undefined, 'HSTS is for the TLS server only');
    const metrics = await request(`http://127.0.0.1:${httpPort}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body.toString(), /^gh_build_info\{/m);
    // Unsigned: the application refuses it (401), nginx does not redirect it.
    const inter = await request(`http://127.0.0.1:${httpPort}/interactions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"type":1}',
    });
    assert.equal(inter.status, 401);
    const hook = await request(`http://127.0.0.1:${httpPort}/webhooks/discord`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    assert.notEqual(hook.status, 301, '/webhooks/ must not be redirected');
    assert.equal(hook.headers.location, undefined);
  });

  test('HTTPS serves the API and the dashboard with HSTS and the security headers', async () => {
    const r = await request(`https://127.0.0.1:${tlsPort}/api/v1/health`, { ca: cert });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).status, 'ok');
    assert.equal(r.headers['strict-transport-security'], HSTS);
    assert.equal(r.headers['cache-control'], 'no-store');
    assertSecurityHeaders(r.headers, 'https /api/v1/health');
    const page = await request(`https://127.0.0.1:${tlsPort}/`, { ca: cert });
    assert.equal(page.status, 200);
    assert.match(page.body.toString(), /<html/);
    assert.equal(page.headers['strict-transport-security'], HSTS);
    assert.equal(page.headers['cache-control'], 'no-cache');
    assertSecurityHeaders(page.headers, 'https /');
    const missing = await request(`https://127.0.0.1:${tlsPort}/api/v1/no-such-endpoint`, { ca: cert });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers['strict-transport-security'], HSTS);
    assertSecurityHeaders(missing.headers, 'https 404');
  });

  function handshake(opts) {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: tlsPort, ca: cert, ...opts }, () => {
        const info = {
          protocol: s.getProtocol(),
          cipher: s.getCipher().name,
          alpn: s.alpnProtocol,
          ticket: s.getTLSTicket(),
        };
        s.end();
        resolve(info);
      });
      s.on('error', reject);
    });
  }

  test('TLS 1.3 by default, HTTP/2 offered by ALPN', async () => {
    const h = await handshake({ ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(h.protocol, 'TLSv1.3');
    assert.equal(h.alpn, 'h2');
  });

  test('TLS 1.2 gets a forward-secret AEAD suite, no session ticket; CBC suites are refused', async () => {
    const h = await handshake({ maxVersion: 'TLSv1.2' });
    assert.equal(h.protocol, 'TLSv1.2');
    assert.match(h.cipher, /^ECDHE-ECDSA-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)$/);
    assert.equal(h.ticket, undefined, 'ssl_session_tickets off');
    await assert.rejects(handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA' }));
  });
});

// (c) the renderer refuses https without a usable certificate and key, and writes nothing.
describe('render-nginx.sh', () => {
  let dir;
  before(() => {
    fs.mkdirSync(path.join(REPO_ROOT, '.run', 'test'), { recursive: true });
    dir = fs.mkdtempSync(path.join(REPO_ROOT, '.run', 'test', 'nginx-render-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const base = () => ({ GH_RUN_DIR: dir, GH_HTTP_PORT: '18999', PUBLIC_URL: 'https://127.0.0.1:18998' });

  test('https without TLS_CERT_FILE fails naming TLS_CERT_FILE', () => {
    const out = path.join(dir, 'a.conf');
    const r = render(out, { ...base(), TLS_KEY_FILE: path.join(dir, 'key.pem') });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /TLS_CERT_FILE/);
    assert.equal(fs.existsSync(out), false, 'nothing written');
  });

  test('https with a missing key file fails naming TLS_KEY_FILE', () => {
    const certFile = path.join(dir, 'cert.pem');
    fs.writeFileSync(certFile, 'not used\n');
    const out = path.join(dir, 'b.conf');
    const r = render(out, { ...base(), TLS_CERT_FILE: certFile, TLS_KEY_FILE: path.join(dir, 'nope.pem') });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /TLS_KEY_FILE/);
    assert.equal(fs.existsSync(out), false, 'nothing written');
  });

  test('plain http renders without TLS and without a redirect', () => {
    const out = path.join(dir, 'c.conf');
    const r = render(out, { ...base(), PUBLIC_URL: 'http://127.0.0.1:18999' });
    assert.equal(r.status, 0, r.stderr);
    const pieces = fs.readdirSync(path.join(dir, 'c.d')).sort();
    assert.deepEqual(pieces, ['app.conf', 'common.conf', 'endpoints.conf', 'headers.conf', 'server-http.conf']);
    assert.doesNotMatch(fs.readFileSync(out, 'utf8'), /@[A-Z_]+@/);
  });
});
