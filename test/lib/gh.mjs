// gh.mjs - talking to Guildhall's HTTP front directly (raw signed POSTs) and
// reading interaction responses.
import { sign } from './signer.mjs';

/**
 * POSTs raw bytes to /interactions, signed with seedHex unless opts.unsigned.
 * Returns {status, headers, text, json}.
 */
export async function postInteractionRaw(stack, raw, opts = {}) {
  const ts = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  const headers = { 'Content-Type': 'application/json', ...(opts.headers ?? {}) };
  if (!opts.unsigned) {
    headers['X-Signature-Ed25519'] = sign(raw, ts, opts.seedHex ?? stack.GH_TEST_SIGNING_SEED);
    headers['X-Signature-Timestamp'] = ts;
  }
  const res = await fetch(stack.interactionsUrl, { method: 'POST', headers, body: raw, signal: AbortSignal.timeout(opts.timeout ?? 10000) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, headers: Object.fromEntries(res.headers.entries()), text, json };
}

/** All human-readable text of a message payload, one piece per line. */
export function messageText(data) {
  if (!data || typeof data !== 'object') return '';
  const parts = [];
  if (typeof data.content === 'string') parts.push(data.content);
  for (const e of data.embeds ?? []) {
    for (const k of ['title', 'description']) if (e[k]) parts.push(e[k]);
    for (const f of e.fields ?? []) parts.push(`${f.name}: ${f.value}`);
    if (e.footer?.text) parts.push(e.footer.text);
  }
  const walk = (comps) => {
    for (const c of comps ?? []) {
      if (c.type === 10 && c.content) parts.push(c.content);
      if (c.components) walk(c.components);
      if (c.accessory?.label) parts.push(c.accessory.label);
      if (c.label) parts.push(c.label);
    }
  };
  walk(data.components);
  return parts.join('\n');
}

/** The line of text that mentions name (case-insensitive), or ''. */
export function lineAbout(text, name) {
  return text.split('\n').find((l) => l.toLowerCase().includes(name.toLowerCase())) ?? '';
}

export const EPHEMERAL = 64;
