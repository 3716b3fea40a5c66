// ratelimit.mjs - Discord-style rate limits for the fake.
//
// Each route belongs to a bucket (a limit per window); the limit is counted
// per (bucket, major parameter): channel_id, guild_id or webhook id + token
// (shared/reference/discord-protocol.md 1c). A global limit of 50 requests per
// second per bot token applies to bot routes, not to interaction routes.
import crypto from 'node:crypto';

function bucketHash(name) {
  return crypto.createHash('md5').update(`guildhall-fake:${name}`).digest('hex');
}

export class RateLimiter {
  constructor({ globalLimit = 50, clock = () => Date.now() } = {}) {
    this.clock = clock;
    this.globalLimit = globalLimit;
    this.buckets = new Map(); // `${bucket}:${major}` -> {remaining, resetAt}
    this.globalWindow = { start: 0, count: 0 };
  }

  reset() {
    this.buckets.clear();
    this.globalWindow = { start: 0, count: 0 };
  }

  /**
   * Takes one request from the bucket. spec: {name, limit, windowMs}.
   * Returns {ok, headers, retryAfter, scope, global}.
   */
  take(spec, major, { global = true } = {}) {
    const now = this.clock();
    if (global) {
      const w = this.globalWindow;
      if (now - w.start >= 1000) { w.start = now; w.count = 0; }
      if (w.count >= this.globalLimit) {
        const retryAfter = (w.start + 1000 - now) / 1000;
        return {
          ok: false, global: true, scope: 'global', retryAfter,
          headers: { 'X-RateLimit-Global': 'true', 'X-RateLimit-Scope': 'global', 'Retry-After': String(Math.max(1, Math.ceil(retryAfter))) },
        };
      }
      w.count += 1;
    }
    const key = `${spec.name}:${major}`;
    let b = this.buckets.get(key);
    if (!b || now >= b.resetAt) {
      b = { remaining: spec.limit, resetAt: now + spec.windowMs };
      this.buckets.set(key, b);
    }
    const resetAfter = Math.max(0, (b.resetAt - now) / 1000);
    const base = {
      'X-RateLimit-Limit': String(spec.limit),
      'X-RateLimit-Reset': (b.resetAt / 1000).toFixed(3),
      'X-RateLimit-Reset-After': resetAfter.toFixed(3),
      'X-RateLimit-Bucket': bucketHash(spec.name),
    };
    if (b.remaining <= 0) {
      if (global) this.globalWindow.count -= 1; // a 429 is not a served request
      return {
        ok: false, global: false, scope: 'user', retryAfter: resetAfter,
        headers: {
          ...base, 'X-RateLimit-Remaining': '0', 'X-RateLimit-Scope': 'user',
          'Retry-After': String(Math.max(1, Math.ceil(resetAfter))),
        },
      };
    }
    b.remaining -= 1;
    return { ok: true, headers: { ...base, 'X-RateLimit-Remaining': String(b.remaining) } };
  }

  /** Headers for an injected 429 on a route (as if its bucket were empty). */
  exhaustedHeaders(spec, retryAfter, scope, global) {
    const now = this.clock();
    const h = {
      'X-RateLimit-Limit': String(spec?.limit ?? 1),
      'X-RateLimit-Remaining': '0',
      'X-RateLimit-Reset': ((now + retryAfter * 1000) / 1000).toFixed(3),
      'X-RateLimit-Reset-After': retryAfter.toFixed(3),
      'X-RateLimit-Bucket': bucketHash(spec?.name ?? 'injected'),
      'X-RateLimit-Scope': scope,
      'Retry-After': String(Math.max(1, Math.ceil(retryAfter))),
    };
    if (global) h['X-RateLimit-Global'] = 'true';
    return h;
  }
}
