// api_health.test.mjs - the API service through nginx: /health (both paths),
// /metrics, 405 for other methods, 404 for unknown paths.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadStack } from '../lib/stack.mjs';

const base = loadStack().GH_HTTP_URL.replace(/\/$/, '');

async function get(path, method = 'GET') {
  const r = await fetch(`${base}${path}`, { method });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

for (const path of ['/health', '/api/v1/health']) {
  test(`GET ${path} reports PostgreSQL and Redis ok, uncached`, async () => {
    const r = await get(path);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const body = JSON.parse(r.text);
    assert.equal(body.status, 'ok');
    assert.equal(body.postgres, 'ok');
    assert.equal(body.redis, 'ok');
    assert.match(body.version, /^\d+\.\d+\.\d+/);
    assert.ok(Number.isInteger(body.uptime_s) && body.uptime_s >= 0);
  });
}

test('HEAD /health is allowed', async () => {
  const r = await get('/health', 'HEAD');
  assert.equal(r.status, 200);
  assert.equal(r.text, '');
});

test('GET /metrics is Prometheus text with queue gauges and build info', async () => {
  const r = await get('/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  assert.match(r.text, /^# TYPE gh_queue_jobs gauge$/m);
  assert.match(r.text, /^gh_queue_jobs\{queue="default",state="ready"\} \d+$/m);
  assert.match(r.text, /^gh_queue_oldest_ready_seconds\{queue="default"\} [\d.]+$/m);
  assert.match(r.text, /^gh_build_info\{version="[^"]+"\} 1$/m);
});

for (const method of ['POST', 'DELETE']) {
  test(`${method} /health is 405 with Allow: GET, HEAD`, async () => {
    const r = await get('/health', method);
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'GET, HEAD');
    assert.deepEqual(JSON.parse(r.text), {
      error: { code: 'method_not_allowed', message: 'use GET' },
    });
  });
}

test('an unknown API path is 404 not_found', async () => {
  const r = await get('/api/v1/no-such-endpoint');
  assert.equal(r.status, 404);
  assert.equal(JSON.parse(r.text).error.code, 'not_found');
});
