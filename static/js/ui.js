// ui.js - DOM building, loading states, errors that say what to do, toasts.
//
// Every piece of data reaches the DOM through textContent or setAttribute
// (h() below); nothing here parses HTML.

/**
 * h('a', {href, class, onclick, text}, ...children). Keys: class, text,
 * on<event>, hidden/disabled/checked/value/selected (properties),
 * everything else setAttribute (skipped when null/undefined/false).
 * Children: nodes, strings (text nodes), arrays; null/false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    else if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'hidden' || k === 'disabled') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

let uid = 0;
export const nextId = (p = 'f') => `${p}${++uid}`;

// ------------------------------------------------------------------ images
const SNOWFLAKE = /^[0-9]{1,20}$/;
const HASH = /^(a_)?[0-9a-f]{32}$/;

export function initials(name) {
  const words = String(name ?? '').split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  const s = words.slice(0, 2).map((w) => [...w][0]).join('');
  return (s || '?').toUpperCase();
}

/** An avatar: the CDN image when id and hash look right, else initials. */
export function avatar(kind, id, hash, name, size = 'md') {
  const valid = SNOWFLAKE.test(String(id ?? '')) && HASH.test(String(hash ?? ''));
  if (!valid) return h('span', { class: ['avatar', size, 'initials'], 'aria-hidden': 'true', text: initials(name) });
  const dir = kind === 'guild' ? 'icons' : 'avatars';
  return h('img', {
    class: ['avatar', size], alt: '', width: size === 'sm' ? 28 : 48, height: size === 'sm' ? 28 : 48,
    src: `https://cdn.discordapp.com/${dir}/${id}/${hash}.png?size=64`, loading: 'lazy', referrerpolicy: 'no-referrer',
  });
}

export const userName = (u) => u?.global_name || u?.username || u?.user_id || u?.id || 'Unknown user';

/** Only same-origin paths and http(s) URLs become links. */
export function safeUrl(u) {
  if (typeof u !== 'string' || !u) return null;
  if (u.startsWith('/') && !u.startsWith('//')) return u;
  try {
    const url = new URL(u);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

// -------------------------------------------------------------- formatting
export function fmtDate(iso) {
  if (!iso) return '-';
  const d = new Date(typeof iso === 'number' && iso < 1e12 ? iso * 1000 : iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function fmtDuration(s) {
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0) return '-';
  if (n < 60) return `${Math.round(n)} s`;
  if (n < 3600) return `${Math.floor(n / 60)} min`;
  if (n < 86400) return `${Math.floor(n / 3600)} h ${Math.floor((n % 3600) / 60)} min`;
  return `${Math.floor(n / 86400)} d ${Math.floor((n % 86400) / 3600)} h`;
}

export const titleCase = (s) => String(s ?? '').replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());

export function badge(text, kind = '') {
  return h('span', { class: ['badge', kind], text });
}

export const ACCESS_LABEL = { owner: 'Owner', admin: 'Administrator', granted: 'Granted access' };

export function lockBadge(tier) {
  return h('span', { class: 'badge lock', title: `Needs ${titleCase(tier)}` }, h('span', { class: 'lock-icon', 'aria-hidden': 'true' }), `${titleCase(tier)}`);
}

// ------------------------------------------------------------------ errors
/**
 * What to tell the person about err: {title, text, retry, link: {href, text}}.
 * ctx.what names the thing that failed to load ("this server", ...).
 */
export function describe(err, ctx = {}) {
  const msg = err?.message || '';
  const s = err?.status;
  if (err?.name !== 'ApiError') {
    return { title: 'Something went wrong', text: 'The page hit an unexpected problem. Reload it and try again.', retry: true };
  }
  if (s === 0 || s >= 500) {
    if (err.code === 'discord_unavailable') {
      return { title: 'Discord did not answer', text: msg || 'Guildhall could not reach Discord. Wait a moment, then retry.', retry: true };
    }
    return { title: 'Guildhall could not be reached', text: 'Check your connection, then retry. If it keeps failing, the service may be down for a moment.', retry: true };
  }
  if (s === 401) {
    return { title: 'Your session ended', text: 'Your session ended, log in again.', link: { href: '#/login', text: 'Log in' } };
  }
  if (s === 429) {
    const n = err.retryAfter ?? 5;
    return { title: 'Too many requests', text: `Too many requests, try again in ${n} s.`, retry: true, wait: n };
  }
  if (s === 403) {
    if (err.code === 'premium_required') {
      const href = safeUrl(err.upgradeUrl);
      return { title: 'Premium needed', text: msg || 'This needs a higher premium tier.', link: href ? { href, text: 'Upgrade', external: true } : null };
    }
    if (err.code === 'role_hierarchy') return { title: 'Role too high', text: msg || 'That role is above your highest role or Guildhall\'s role.' };
    if (err.code === 'csrf_failed') return { title: 'Page out of date', text: 'Your session changed in another tab. Reload the page and try again.', retry: false };
    if (msg && !ctx.dev && ctx.what !== 'this server') return { title: 'Not allowed', text: msg };
    return {
      title: 'No access',
      text: ctx.dev ? 'You don\'t have access to this page: it is for Guildhall\'s operators.'
        : 'You don\'t have access to this server. Ask its owner to grant you access in Guildhall, or pick another server.',
      link: { href: '#/guilds', text: 'Your servers' },
    };
  }
  if (s === 404) {
    return { title: 'Not found', text: msg || `We could not find ${ctx.what ?? 'this'}. It may have been removed, or Guildhall is not in that server.`, link: { href: '#/guilds', text: 'Your servers' } };
  }
  if (s === 409 && err.code === 'version_conflict') {
    return { title: 'Changed elsewhere', text: 'Someone else saved these settings after you opened them. Reload to see their version.' };
  }
  if (s === 413) return { title: 'Too large', text: msg || 'That is too large. Make it shorter and try again.' };
  return { title: 'Could not do that', text: msg || 'The request was refused. Check what you entered and try again.' };
}

/** One line for a toast. */
export const errorText = (err, ctx) => describe(err, ctx).text;

/** A panel (role=alert) describing err, with a retry button when it helps. */
export function errorPanel(err, retry, ctx = {}) {
  const d = describe(err, ctx);
  const actions = h('div', { class: 'actions' });
  if (d.retry && retry) actions.append(h('button', { type: 'button', class: 'btn', onclick: retry, text: 'Retry' }));
  if (d.link) {
    actions.append(h('a', {
      class: 'btn', href: d.link.href, text: d.link.text,
      rel: d.link.external ? 'noopener noreferrer' : null, target: d.link.external ? '_blank' : null,
    }));
  }
  return h('div', { class: 'panel error', role: 'alert', 'data-status': err?.status ?? '' },
    h('h2', { text: d.title }), h('p', { text: d.text }), actions.childElementCount ? actions : null);
}

// ----------------------------------------------------------------- loading
export function skeleton(lines = 3) {
  const box = h('div', { class: 'skeleton', role: 'status' }, h('span', { class: 'sr-only', text: 'Loading…' }));
  for (let i = 0; i < lines; i++) box.append(h('div', { class: 'sk-line' }));
  return box;
}

/**
 * Shows a skeleton in el (aria-busy) while fetcher() runs, then
 * render(data) or an error panel with a retry. AbortErrors are ignored
 * (the page was left). ctx: retry (default: load again), what, dev, lines.
 * Resolves with the data or null.
 */
export async function loadInto(el, fetcher, render, ctx = {}) {
  el.setAttribute('aria-busy', 'true');
  el.replaceChildren(skeleton(ctx.lines));
  try {
    const data = await fetcher();
    el.removeAttribute('aria-busy');
    el.replaceChildren();
    render(data);
    return data;
  } catch (e) {
    if (e?.name === 'AbortError') return null;
    el.removeAttribute('aria-busy');
    if (e?.name !== 'ApiError') console.warn(e);
    el.replaceChildren(errorPanel(e, ctx.retry ?? (() => loadInto(el, fetcher, render, ctx)), ctx));
    return null;
  }
}

/** Runs fn() with btn disabled and busy; resolves with fn's result. */
export async function busy(btn, fn) {
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  btn.classList.add('loading');
  try {
    return await fn();
  } finally {
    btn.disabled = false;
    btn.removeAttribute('aria-busy');
    btn.classList.remove('loading');
  }
}

// ------------------------------------------------------------------ toasts
export function toast(text, kind = 'ok', ms = 6000) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('div', { class: ['toast', kind] },
    h('span', { text }),
    h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Dismiss', text: '×', onclick: () => t.remove() }));
  box.append(t);
  setTimeout(() => t.remove(), ms);
}

/** A page heading that takes focus after navigation (screen readers hear it). */
export function pageTitle(text, ...extra) {
  document.title = `${text} · Guildhall`;
  return h('h1', { tabindex: '-1', class: 'page-title' }, text, ...extra);
}
