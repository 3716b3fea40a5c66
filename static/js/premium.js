// premium.js - #/g/<id>/premium: status, what each tier unlocks, redeem a
// code, start the trial, history.
import { post } from './api.js';
import { guildFrame, loadPremium, rememberPremium } from './guilds.js';
import { badge, busy, errorText, fmtDate, h, loadInto, nextId, safeUrl, titleCase, toast } from './ui.js';

const paid = (t) => Boolean(t) && t !== 'free' && t !== 'none';
const STATUS = {
  active: ['Active', 'on'],
  trial: ['Trial', 'on'],
  grace: ['In grace period', 'warn'],
  expired: ['Expired', 'off'],
  none: ['Free', 'free'],
};

export async function premiumPage(view) {
  const id = view.params[0];
  const frame = await guildFrame(view, id, 'premium');
  if (!frame) return;
  const { guild, body } = frame;
  const box = h('div');
  body.append(h('h2', { text: 'Premium' }), box);
  const render = (p) => {
    box.replaceChildren(statusPanel(p), tierTable(p), actions(id, guild, p, render), history(p));
  };
  return loadInto(box, () => loadPremium(id, view.signal, true), render, { retry: view.reload });
}

function statusPanel(p) {
  const [label, kind] = STATUS[p.status] ?? [titleCase(p.status ?? 'unknown'), ''];
  const dl = h('dl', { class: 'facts' });
  const fact = (k, v) => { if (v) dl.append(h('dt', { text: k }), h('dd', { text: v })); };
  const tierTitle = (name) => (p.tiers ?? []).find((t) => t.name === name)?.title ?? titleCase(name);
  fact('Tier', paid(p.tier) ? tierTitle(p.tier) : 'Free');
  fact('In effect', paid(p.effective_tier) ? tierTitle(p.effective_tier) : 'Free');
  fact('Source', p.source ? titleCase(p.source) : null);
  fact('Started', p.starts_at ? fmtDate(p.starts_at) : null);
  fact('Expires', p.expires_at ? fmtDate(p.expires_at) : null);
  fact('Grace period until', p.grace_until ? fmtDate(p.grace_until) : null);
  const upgrade = safeUrl(p.upgrade_url);
  let note = null;
  if (p.status === 'grace') note = `Premium has ended; its features keep working until ${fmtDate(p.grace_until)}. Renew before then to keep them.`;
  else if (p.status === 'expired') note = 'Premium has expired: premium features are off, and their settings are kept for when you renew.';
  else if (!paid(p.effective_tier)) note = 'This server uses the free tier.';
  return h('section', { class: 'panel', 'aria-label': 'Status' },
    h('p', {}, badge(label, kind)),
    dl,
    note ? h('p', { class: p.status === 'grace' || p.status === 'expired' ? 'notice warn' : 'muted', text: note }) : null,
    upgrade ? h('p', {}, h('a', { class: 'btn primary', href: upgrade, target: '_blank', rel: 'noopener noreferrer', text: paid(p.effective_tier) ? 'Manage or renew' : 'Upgrade' })) : null);
}

function listOf(v) {
  if (Array.isArray(v)) return v.length ? h('ul', { class: 'plain' }, v.map((x) => h('li', { text: typeof x === 'object' ? x.title ?? x.name ?? JSON.stringify(x) : titleCase(String(x)) }))) : '-';
  if (v && typeof v === 'object') {
    const e = Object.entries(v);
    return e.length ? h('ul', { class: 'plain' }, e.map(([k, x]) => h('li', { text: `${titleCase(k)}: ${x === null || x < 0 ? 'unlimited' : x}` }))) : '-';
  }
  return v === undefined || v === null ? '-' : String(v);
}

function tierTable(p) {
  const tiers = [...(p.tiers ?? [])].sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0));
  if (!tiers.length) return null;
  return h('section', { 'aria-label': 'Tiers' },
    h('h3', { text: 'What each tier unlocks' }),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Tier' }), h('th', { scope: 'col', text: 'Unlocks' }), h('th', { scope: 'col', text: 'Limits' }))),
      h('tbody', {}, tiers.map((t) => h('tr', { class: t.name === p.effective_tier ? 'current' : null },
        h('th', { scope: 'row' }, t.title ?? titleCase(t.name), t.name === p.effective_tier ? badge('Current', 'on') : null),
        h('td', {}, listOf(t.unlocks)), h('td', {}, listOf(t.limits))))))));
}

function actions(id, guild, p, render) {
  const sec = h('section', { class: 'panel', 'aria-label': 'Redeem' }, h('h3', { text: 'Redeem a code' }));
  if (!guild.can_manage_access) {
    sec.append(h('p', { class: 'muted', text: 'Only the server\'s owner and administrators can redeem codes or start a trial.' }));
    return sec;
  }
  const codeId = nextId('code');
  const input = h('input', { id: codeId, type: 'text', autocomplete: 'off', spellcheck: 'false', class: 'grow', required: true });
  const btn = h('button', { type: 'submit', class: 'btn primary', text: 'Redeem' });
  const err = h('p', { class: 'field-error', hidden: true, role: 'alert' });
  const apply = (np, text) => { rememberPremium(id, np); render(np); toast(text); };
  const form = h('form', { novalidate: true, class: 'stack' },
    h('label', { for: codeId, text: 'Code' }), h('div', { class: 'inline' }, input, btn), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    const code = input.value.trim();
    if (!code) { err.textContent = 'Enter the code you received.'; err.hidden = false; input.focus(); return; }
    try {
      const np = await busy(btn, () => post(`/guilds/${id}/premium/redeem`, { code }));
      apply(np, 'Code redeemed.');
    } catch (e) {
      err.textContent = errorText(e);
      err.hidden = false;
      input.focus();
    }
  });
  sec.append(form);
  if (p.trial_available) {
    const trial = h('button', { type: 'button', class: 'btn', text: 'Start free trial' });
    trial.addEventListener('click', async () => {
      try {
        const np = await busy(trial, () => post(`/guilds/${id}/premium/trial`));
        apply(np, 'Trial started.');
      } catch (e) {
        toast(`Trial not started: ${errorText(e)}`, 'error', 10000);
      }
    });
    sec.append(h('h3', { text: 'Trial' }), h('p', { class: 'muted', text: 'Try premium once per server, free.' }), trial);
  }
  return sec;
}

function history(p) {
  const list = p.history ?? [];
  const sec = h('section', { 'aria-label': 'History' }, h('h3', { text: 'History' }));
  if (!list.length) {
    sec.append(h('p', { class: 'muted', text: 'No premium changes yet.' }));
    return sec;
  }
  sec.append(h('ul', { class: 'list' }, list.map((e) => {
    const when = e.created_at ?? e.at ?? e.changed_at;
    const what = [e.action ?? e.event ?? e.change, e.tier ? titleCase(e.tier) : null, e.source ? `(${e.source})` : null].filter(Boolean).join(' ');
    return h('li', { class: 'row' }, h('span', { class: 'small muted', text: fmtDate(when) }), h('span', { class: 'grow', text: titleCase(what || e.status || 'change') }));
  })));
  return sec;
}
