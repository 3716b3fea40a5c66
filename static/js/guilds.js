// guilds.js - the guild picker (#/guilds), the frame every guild page shares
// (header + tabs), and the overview with a toggle per feature (#/g/<id>).
import { get, put } from './api.js';
import {
  ACCESS_LABEL, avatar, badge, busy, errorText, h, loadInto, lockBadge, pageTitle, safeUrl, titleCase, toast,
} from './ui.js';

// ------------------------------------------------------------ guild cache
const guilds = new Map(); // id -> {data, at}
const premiums = new Map(); // id -> {data, at}
const FRESH_MS = 30000;

export async function loadGuild(id, signal, fresh = false) {
  const c = guilds.get(id);
  if (!fresh && c && Date.now() - c.at < FRESH_MS) return c.data;
  const data = await get(`/guilds/${id}`, signal);
  guilds.set(id, { data, at: Date.now() });
  return data;
}

export async function loadPremium(id, signal, fresh = false) {
  const c = premiums.get(id);
  if (!fresh && c && Date.now() - c.at < FRESH_MS) return c.data;
  const data = await get(`/guilds/${id}/premium`, signal);
  premiums.set(id, { data, at: Date.now() });
  return data;
}

export function rememberPremium(id, data) {
  premiums.set(id, { data, at: Date.now() });
  guilds.delete(id);
}

export function forgetGuilds() {
  guilds.clear();
  premiums.clear();
}

// ------------------------------------------------------------ premium tiers
const ACTIVE = new Set(['active', 'grace', 'trial']);

/** {effective, tiers} for gating: from /premium when loaded, else the guild's summary. */
export function tierInfo(guild, premium) {
  if (premium) return { effective: paid(premium.effective_tier) ? premium.effective_tier : null, tiers: premium.tiers ?? [] };
  const p = guild?.premium ?? {};
  return { effective: ACTIVE.has(p.status) && paid(p.tier) ? p.tier : null, tiers: [] };
}

const paid = (tier) => Boolean(tier) && tier !== 'free' && tier !== 'none';

function rank(tiers, name) {
  if (!name || name === 'free' || name === 'none') return 0;
  const t = tiers.find((x) => x.name === name);
  return t ? Number(t.rank) || 0 : 1;
}

/** True when the guild's effective tier reaches `need` (a tier name, or true for any paid tier). */
export function hasTier(info, need) {
  if (!need || need === 'free' || need === 'none') return true;
  if (!info.effective) return false;
  if (need === true || info.effective === need) return true;
  return rank(info.tiers, info.effective) >= rank(info.tiers, String(need));
}

export const premiumHref = (id) => `#/g/${id}/premium`;

// ------------------------------------------------------------------ picker
export function guildsPage(view) {
  view.main.replaceChildren(pageTitle('Your servers'));
  const body = h('div');
  view.main.append(body);
  return loadInto(body, () => get('/guilds', view.signal), (data) => {
    const installed = data?.guilds ?? [];
    const missing = data?.not_installed ?? [];
    if (!installed.length && !missing.length) {
      body.append(h('div', { class: 'panel empty' },
        h('h2', { text: 'No servers yet' }),
        h('p', { text: 'Guildhall shows the Discord servers where you have Manage Server or Administrator, and servers whose owner granted you access.' }),
        h('p', { text: 'Create a server in Discord (or ask for Manage Server in one), then come back here to add Guildhall to it.' })));
      return;
    }
    if (installed.length) {
      body.append(h('ul', { class: 'cards', 'aria-label': 'Servers with Guildhall' }, installed.map(guildCard)));
    } else {
      body.append(h('p', { class: 'panel empty', text: 'Guildhall is not in any of your servers yet. Add it to one below; it appears here once it has joined.' }));
    }
    if (missing.length) {
      body.append(h('h2', { text: 'Add Guildhall to a server you manage' }),
        h('ul', { class: 'list', 'aria-label': 'Servers without Guildhall' }, missing.map(installRow)));
    }
  }, { retry: view.reload, what: 'your servers' });
}

function guildCard(g) {
  return h('li', { class: 'card guild-card' },
    h('a', { href: `#/g/${g.id}`, class: 'card-link' },
      avatar('guild', g.id, g.icon, g.name),
      h('span', { class: 'card-main' },
        h('span', { class: 'name', text: g.name ?? g.id }),
        h('span', { class: 'badges' },
          badge(ACCESS_LABEL[g.access] ?? titleCase(g.access), 'access'),
          paid(g.premium_tier) ? badge(titleCase(g.premium_tier), 'premium') : badge('Free', 'free')))));
}

function installRow(g) {
  const href = safeUrl(g.install_url) ?? `/api/v1/auth/discord/install?guild_id=${encodeURIComponent(g.id)}`;
  return h('li', { class: 'row' },
    avatar('guild', g.id, g.icon, g.name, 'sm'),
    h('span', { class: 'name grow', text: g.name ?? g.id }),
    h('a', { class: 'btn', href, text: 'Add Guildhall', 'aria-label': `Add Guildhall to ${g.name ?? g.id}` }));
}

// ------------------------------------------------------------- guild frame
const TABS = [
  ['', 'Overview'],
  ['cases', 'Cases'],
  ['premium', 'Premium'],
  ['access', 'Access'],
];

/**
 * Loads the guild and draws its header and tabs into view.main. Resolves
 * with {guild, body} (body: where the page goes) or null after showing why
 * it could not (403: no access).
 */
export async function guildFrame(view, id, active, { fresh = false } = {}) {
  let guild = null;
  await loadInto(view.main, () => loadGuild(id, view.signal, fresh), (g) => { guild = g; },
    { retry: view.reload, what: 'this server' });
  if (!guild) return null;
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Server' });
  for (const [path, label] of TABS) {
    if (path === 'access' && !guild.can_manage_access) continue;
    if (path === 'cases' && !(guild.features ?? []).some((f) => f.name === 'moderation')) continue;
    const href = `#/g/${id}${path ? `/${path}` : ''}`;
    tabs.append(h('a', { href, text: label, 'aria-current': active === path ? 'page' : null }));
  }
  const p = guild.premium ?? {};
  const head = h('div', { class: 'guild-head' },
    avatar('guild', guild.id, guild.icon, guild.name),
    h('div', { class: 'grow' },
      pageTitle(guild.name ?? id),
      h('span', { class: 'badges' },
        badge(ACCESS_LABEL[guild.access] ?? titleCase(guild.access), 'access'),
        paid(p.tier) && ACTIVE.has(p.status) ? badge(`${titleCase(p.tier)}${p.status === 'active' ? '' : ` (${p.status})`}`, 'premium') : badge('Free', 'free'))));
  const body = h('div', { class: 'guild-body' });
  view.main.replaceChildren(head, tabs, body);
  view.setGuild(guild);
  return { guild, body };
}

// ---------------------------------------------------------------- overview
export async function overviewPage(view) {
  const id = view.params[0];
  const frame = await guildFrame(view, id, '', { fresh: true });
  if (!frame) return;
  const { guild, body } = frame;
  const features = guild.features ?? [];
  let info = tierInfo(guild, null);
  if (features.some((f) => f.premium_tier)) {
    try { info = tierInfo(guild, await loadPremium(id, view.signal)); } catch (e) {
      if (e?.name === 'AbortError') return;
    }
  }
  body.append(h('h2', { text: 'Features' }));
  if (!features.length) {
    body.append(h('p', { class: 'panel empty', text: 'This Guildhall has no features to configure yet.' }));
    return;
  }
  body.append(h('ul', { class: 'features' }, features.map((f) => featureRow(id, f, info))));
}

function featureRow(guildId, f, info) {
  const locked = !hasTier(info, f.premium_tier);
  const toggleId = `toggle-${f.name}`;
  const descId = `desc-${f.name}`;
  const input = h('input', {
    type: 'checkbox', role: 'switch', id: toggleId, class: 'switch', checked: Boolean(f.enabled),
    disabled: f.can_disable === false || (locked && !f.enabled), 'aria-describedby': descId,
  });
  const state = h('span', { class: 'switch-state', 'aria-hidden': 'true', text: f.enabled ? 'On' : 'Off' });
  const li = h('li', { class: 'feature card', 'data-feature': f.name },
    h('div', { class: 'feature-main' },
      h('h3', {}, h('label', { for: toggleId, text: f.title ?? titleCase(f.name) }), locked ? lockBadge(f.premium_tier) : null),
      h('p', { id: descId, class: 'muted', text: f.description ?? '' }),
      f.can_disable === false ? h('p', { class: 'small muted', text: 'Always on: Guildhall needs it.' }) : null,
      locked ? h('p', { class: 'small' }, `Needs ${titleCase(f.premium_tier)}. `, h('a', { href: premiumHref(guildId), text: 'See premium' })) : null),
    h('div', { class: 'feature-actions' },
      h('span', { class: 'switch-wrap' }, input, state),
      f.has_settings ? h('a', { class: 'btn', href: `#/g/${guildId}/settings/${encodeURIComponent(f.name)}`, text: 'Settings', 'aria-label': `${f.title ?? f.name} settings` }) : null));
  input.addEventListener('change', () => toggleFeature(guildId, f, input, state, li));
  return li;
}

async function toggleFeature(guildId, f, input, state, li) {
  const want = input.checked;
  state.textContent = want ? 'On' : 'Off';
  li.setAttribute('aria-busy', 'true');
  const path = `/guilds/${guildId}/settings/${encodeURIComponent(f.name)}`;
  try {
    await busy(input, async () => {
      const cur = await get(path);
      const doc = { ...(cur?.document ?? {}), enabled: want };
      await put(path, { document: doc, version: cur?.version ?? 0 });
    });
    f.enabled = want;
    guilds.delete(guildId);
    toast(`${f.title ?? f.name} ${want ? 'enabled' : 'disabled'}.`);
  } catch (e) {
    input.checked = !want;
    state.textContent = !want ? 'On' : 'Off';
    toast(`${f.title ?? f.name} was not ${want ? 'enabled' : 'disabled'}: ${errorText(e)}`, 'error', 10000);
  } finally {
    li.removeAttribute('aria-busy');
    input.focus();
  }
}
