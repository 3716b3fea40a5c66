// wait.mjs - polling with a deadline (tests never sleep a fixed time).

/**
 * Calls fn until it returns a truthy value (returned) or the timeout passes
 * (throws with the last value or error). fn may be async and may throw:
 * a throw counts as "not yet".
 */
export async function waitFor(fn, { timeout = 15000, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      lastErr = undefined;
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const why = lastErr ? `last error: ${lastErr.message}` : `last value: ${JSON.stringify(last)?.slice(0, 500)}`;
      throw new Error(`timed out after ${timeout} ms waiting for ${message} (${why})`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}
