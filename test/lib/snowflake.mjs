// snowflake.mjs - Discord snowflakes made from the current time.
//
// Layout (Discord's): 42 bits ms since 2015-01-01, 5 bits worker, 5 bits
// process, 12 bits increment. The worker/process bits come from the pid and
// a random draw, so two test processes running at once never collide.
export const DISCORD_EPOCH = 1420070400000n;

const workerBits = BigInt(Math.floor(Math.random() * 1024)) ^ BigInt(process.pid & 0x3ff);
let lastMs = 0n;
let increment = 0n;

/** A fresh snowflake (decimal string) for the current time, or for atMs. */
export function snowflake(atMs) {
  let ms = BigInt(Math.floor(atMs ?? Date.now()));
  if (atMs === undefined) {
    if (ms <= lastMs) {
      increment += 1n;
      if (increment > 0xfffn) { lastMs += 1n; increment = 0n; }
      ms = lastMs;
    } else {
      lastMs = ms;
      increment = 0n;
    }
  } else {
    increment = (increment + 1n) & 0xfffn;
  }
  return (((ms - DISCORD_EPOCH) << 22n) | ((workerBits & 0x3ffn) << 12n) | (increment & 0xfffn)).toString();
}

/** Milliseconds since the Unix epoch encoded in a snowflake. */
export function snowflakeTime(id) {
  return Number((BigInt(id) >> 22n) + DISCORD_EPOCH);
}

export function isSnowflake(s) {
  return typeof s === 'string' && /^(0|[1-9][0-9]*)$/.test(s) && BigInt(s) < (1n << 64n);
}
