// stack.mjs - where the running stack is: .run/<profile>/stack.env.
//
// scripts/stack.sh writes that file when it starts a profile; tests find
// every URL, port and key there and nowhere else (DESIGN.md).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function unquote(v) {
  const t = v.trim();
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'"))) {
    return t.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
  }
  return t;
}

/** Parses KEY=VALUE lines (optional `export`, quotes, # comments). */
export function parseEnvFile(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]] = unquote(m[2]);
  }
  return out;
}

const cache = new Map();

/**
 * The stack.env of a profile (default $GH_PROFILE or "test") as an object,
 * plus derived fields: interactionsUrl, profile, envFile. Throws a clear
 * error when the stack has not been started.
 */
export function loadStack(profile = process.env.GH_PROFILE || 'test') {
  if (cache.has(profile)) return cache.get(profile);
  const envFile = path.join(REPO_ROOT, '.run', profile, 'stack.env');
  if (!fs.existsSync(envFile)) {
    throw new Error(`stack.env not found at ${envFile}: start the stack first with ` +
      `\`scripts/stack.sh start ${profile}\` (or \`make test\`)`);
  }
  const env = parseEnvFile(fs.readFileSync(envFile, 'utf8'));
  const need = ['GH_HTTP_URL', 'GH_FAKE_DISCORD_URL', 'DATABASE_URL', 'REDIS_URL', 'GH_TEST_SIGNING_SEED', 'DISCORD_APPLICATION_ID'];
  const missing = need.filter((k) => !env[k]);
  if (missing.length) throw new Error(`${envFile} lacks ${missing.join(', ')}`);
  const stack = {
    ...env,
    profile,
    envFile,
    interactionsUrl: `${env.GH_HTTP_URL.replace(/\/$/, '')}/interactions`,
    fakeUrl: env.GH_FAKE_DISCORD_URL.replace(/\/$/, '').replace(/\/api\/v10$/, ''),
  };
  cache.set(profile, stack);
  return stack;
}

/** Path of scripts/stack.sh (may not exist yet). */
export const STACK_SCRIPT = path.join(REPO_ROOT, 'scripts', 'stack.sh');
