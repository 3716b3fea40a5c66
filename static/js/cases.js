// cases.js - #/g/<id>/cases: the server's moderation cases (GET
// /guilds/{id}/moderation/cases) with filters kept in the address, paging,
// and one case's details with its reason edit and void
// (docs/features/moderation.md).
import { get, post, put } from './api.js';
import { guildFrame } from './guilds.js';
import { memberSearch } from './settings.js';
import { badge, busy, errorText, fmtDate, fmtDuration, h, loadInto, nextId, titleCase, toast, userName } from './ui.js';

const TYPES = ['WARN', 'TIMEOUT', 'UNTIMEOUT', 'KICK', 'BAN', 'TEMPBAN', 'UNBAN', 'SOFTBAN', 'HACKBAN', 'MUTE', 'JAIL', 'NOTE'];
const STATUSES = ['active', 'inactive', 'pending', 'failed', 'void'];
const STATUS_KIND = { active: 'on', failed: 'off', pending: 'warn' };
const FILTERS = { user: 'Member', moderator: 'Moderator', type: 'Type', status: 'Status', from: 'From', to: 'To', q: 'Reason contains' };
const ID_RE = /^[0-9]{15,20}$/;
const PAGE = 25;

const who = (id) => (!id || id === '0' ? 'Guildhall (automatic)' : h('code', { text: id }));
const failedLift = (c) => c.lift === 'failed';

function statusBadges(c) {
  return h('span', { class: 'badges' },
    badge(titleCase(c.status), STATUS_KIND[c.status] ?? ''),
    failedLift(c) ? badge('Lift failed', 'off') : null,
    c.lift === 'pending' ? badge('Lift scheduled') : null);
}

/** "Member: must be a Discord user id" from a 400's fields, else the usual words. */
function why(e) {
  const f = e?.fields?.[0];
  if (e?.status === 400 && f) return `${FILTERS[String(f.path).slice(1)] ?? titleCase(String(f.path).slice(1))}: ${f.message}`;
  return errorText(e);
}

export async function casesPage(view) {
  const id = view.params[0];
  const frame = await guildFrame(view, id, 'cases');
  if (!frame) return;
  const { body } = frame;
  const f = Object.fromEntries(Object.keys(FILTERS).map((k) => [k, view.query.get(k) ?? '']));
  let pages = [0]; // the "before" of every page up to the one shown
  const listBox = h('section', { 'aria-label': 'Cases', class: 'cases-list' });
  const detailBox = h('section', { class: 'panel case-detail', 'aria-label': 'Case details', hidden: true });

  // ------------------------------------------------------------ filters
  const inputs = {};
  const field = (k, el, help) => {
    inputs[k] = el;
    el.id = nextId('cf');
    el.name = k;
    return h('div', { class: 'field' }, h('label', { for: el.id, text: FILTERS[k] }), el, help ? h('p', { class: 'help', text: help }) : null);
  };
  const select = (k, values) => {
    const s = h('select', {}, h('option', { value: '', text: 'Any' }), values.map((v) => h('option', { value: v, text: titleCase(v.toLowerCase()) })));
    s.value = f[k];
    return s;
  };
  const formMsg = h('p', { class: 'field-error', role: 'alert', hidden: true });
  const form = h('form', { class: 'filters', 'aria-label': 'Filter cases', novalidate: true },
    field('user', h('input', { type: 'text', inputmode: 'numeric', value: f.user, placeholder: 'User id' }), 'Find a member below, or paste a user id (also of someone who left).'),
    field('moderator', h('input', { type: 'text', inputmode: 'numeric', value: f.moderator, placeholder: 'User id' })),
    field('type', select('type', TYPES)),
    field('status', select('status', STATUSES)),
    field('from', h('input', { type: 'date', value: f.from }), 'Dates are in UTC.'),
    field('to', h('input', { type: 'date', value: f.to })),
    field('q', h('input', { type: 'search', value: f.q, maxlength: 100 })),
    h('div', { class: 'actions filter-actions' },
      h('button', { type: 'submit', class: 'btn primary', text: 'Apply filters' }),
      h('button', { type: 'button', class: 'btn subtle', text: 'Clear', onclick: () => { for (const el of Object.values(inputs)) el.value = ''; apply(); } })),
    formMsg);
  const search = memberSearch(id, (m) => {
    inputs.user.value = m.id;
    toast(`Showing the cases of ${m.nick || userName(m)}.`);
    apply();
  }, { label: 'Find a member', action: 'Show cases of' });

  function apply() {
    const bad = ['user', 'moderator'].find((k) => inputs[k].value.trim() && !ID_RE.test(inputs[k].value.trim()));
    if (bad) {
      formMsg.textContent = `${FILTERS[bad]}: enter a Discord user id (15 to 20 digits) or leave it empty.`;
      formMsg.hidden = false;
      inputs[bad].focus();
      return;
    }
    if (inputs.from.value && inputs.to.value && inputs.from.value > inputs.to.value) {
      formMsg.textContent = 'To: pick a date on or after From.';
      formMsg.hidden = false;
      inputs.to.focus();
      return;
    }
    formMsg.hidden = true;
    for (const k of Object.keys(FILTERS)) f[k] = inputs[k].value.trim();
    const qs = query().toString();
    history.replaceState(null, '', `#/g/${id}/cases${qs ? `?${qs}` : ''}`);
    pages = [0];
    draw();
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });

  function query(before = 0) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v) p.set(k, v);
    if (before) p.set('before', String(before));
    return p;
  }

  // --------------------------------------------------------------- list
  function draw(focusList = false) {
    const before = pages[pages.length - 1];
    const p = query(before);
    p.set('limit', String(PAGE));
    const fetcher = () => get(`/guilds/${id}/moderation/cases?${p}`, view.signal).catch((e) => {
      if (e?.status === 400) e.message = `${why(e)}. Correct the filter and apply again.`;
      throw e;
    });
    return loadInto(listBox, fetcher, (data) => {
      const cases = data?.cases ?? [];
      const filtered = Object.values(f).some(Boolean);
      if (!cases.length) {
        listBox.append(h('p', { class: 'panel empty', text: filtered ? 'No case matches these filters. Loosen them or press Clear.' : 'No cases yet: they appear here once a moderator uses /warn, /timeout, /ban and the other moderation commands.' }));
        return;
      }
      const first = cases[0].number;
      const last = cases[cases.length - 1].number;
      listBox.append(
        h('p', { class: 'small muted', 'aria-live': 'polite', text: `${data.total} ${data.total === 1 ? 'case matches' : 'cases match'}; showing #${first} to #${last}, newest first.` }),
        h('div', { class: 'table-wrap' }, h('table', {},
          h('thead', {}, h('tr', {}, ['Case', 'Type', 'Member', 'Moderator', 'Reason', 'Status', 'Created'].map((t) => h('th', { scope: 'col', text: t })))),
          h('tbody', {}, cases.map(row)))),
        pager(data));
      if (focusList) listBox.querySelector('tbody button')?.focus();
    }, { what: 'the cases', retry: () => draw() });
  }

  function row(c) {
    const open = h('button', { type: 'button', class: 'link-btn', text: `#${c.number}`, 'aria-label': `Open case ${c.number}` });
    open.addEventListener('click', () => openCase(c.number, open));
    const failed = c.status === 'failed' || failedLift(c);
    return h('tr', { class: failed ? 'failed' : c.status === 'void' ? 'done' : null, 'data-case': c.number },
      h('td', {}, open),
      h('td', { text: titleCase(String(c.type).toLowerCase()) }),
      h('td', {}, who(c.target_id)),
      h('td', {}, who(c.moderator_id)),
      h('td', { class: 'reason' }, c.reason ? c.reason : h('span', { class: 'muted', text: 'No reason' }),
        c.status === 'failed' && c.error ? h('span', { class: 'error-text small block', text: `Discord refused: ${c.error}` }) : null,
        failedLift(c) ? h('span', { class: 'error-text small block', text: `Lift failed: ${c.lift_error || 'unknown error'}` }) : null),
      h('td', {}, statusBadges(c)),
      h('td', { text: fmtDate(c.created_at) }));
  }

  function pager(data) {
    const newer = h('button', { type: 'button', class: 'btn small', text: 'Newer cases', disabled: pages.length === 1 });
    const older = h('button', { type: 'button', class: 'btn small', text: 'Older cases', disabled: !data.next_before });
    newer.addEventListener('click', () => { pages.pop(); draw(true); });
    older.addEventListener('click', () => { pages.push(data.next_before); draw(true); });
    return h('nav', { class: 'actions pager', 'aria-label': 'Pages of cases' }, newer, older);
  }

  // ------------------------------------------------------------- detail
  async function openCase(n, opener) {
    detailBox.hidden = false;
    await loadInto(detailBox, () => get(`/guilds/${id}/moderation/cases/${n}`, view.signal), (c) => drawCase(c, opener),
      { what: `case #${n}`, lines: 4, retry: () => openCase(n, opener) });
    detailBox.querySelector('h2')?.focus();
  }

  function drawCase(c, opener) {
    const close = h('button', { type: 'button', class: 'btn small subtle', text: 'Close', 'aria-label': `Close case ${c.number}` });
    close.addEventListener('click', () => {
      detailBox.hidden = true;
      detailBox.replaceChildren();
      (opener?.isConnected ? opener : listBox.querySelector('button'))?.focus();
    });
    const facts = [
      ['Type', titleCase(String(c.type).toLowerCase())],
      ['Status', statusBadges(c)],
      ['Member', h('span', {}, who(c.target_id), ' ', h('button', {
        type: 'button', class: 'link-btn small', text: 'All their cases',
        onclick: () => { inputs.user.value = c.target_id; apply(); },
      }))],
      ['Moderator', who(c.moderator_id)],
      ['Reason', c.reason || h('span', { class: 'muted', text: 'No reason given' })],
      c.duration_s ? ['Duration', fmtDuration(c.duration_s)] : null,
      ['Created', fmtDate(c.created_at)],
      c.expires_at ? [c.type === 'WARN' ? 'Stops counting' : 'Ends', fmtDate(c.expires_at)] : null,
      c.refs_case ? ['Triggered by', h('button', { type: 'button', class: 'link-btn', text: `Case #${c.refs_case}`, onclick: () => openCase(c.refs_case, opener) })] : null,
      Array.isArray(c.target_roles) ? ['Roles then', c.target_roles.length ? c.target_roles.join(', ') : 'None'] : null,
      c.status === 'void' ? ['Voided by', who(c.voided_by)] : null,
      c.status === 'void' ? ['Why void', c.void_reason || '-'] : null,
    ].filter(Boolean);
    detailBox.append(...[ // DOM append would print null: filtered
      h('div', { class: 'section-head' }, h('h2', { tabindex: '-1', text: `Case #${c.number}` }), close),
      c.status === 'failed' ? h('div', { class: 'notice error' },
        h('p', { text: `Discord refused this action: ${c.error || 'no reason given'}.` }),
        h('p', { text: 'Nothing happened in Discord. Fix the cause (often Guildhall\'s role or permissions), then run the command again.' })) : null,
      failedLift(c) ? h('div', { class: 'notice error' },
        h('p', { text: `Guildhall could not end this ${String(c.type).toLowerCase()}: ${c.lift_error || 'unknown error'}.` }),
        h('p', { text: 'It retried and gave up. End it by hand in Discord (or with /unban), then note it in the reason.' })) : null,
      c.status === 'pending' ? h('p', { class: 'notice warn', text: 'Discord has not confirmed this action yet. Reload in a moment.' }) : null,
      h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]))].filter(Boolean));
    if (c.status === 'void') return;
    detailBox.append(
      caseForm('Edit the reason', c.reason ?? '', 'Save reason', false, (v) => put(`/guilds/${id}/moderation/cases/${c.number}/reason`, { reason: v }), `Case #${c.number}: reason saved.`, opener),
      caseForm('Void this case: why?', '', 'Void case', true, (v) => post(`/guilds/${id}/moderation/cases/${c.number}/void`, { reason: v }), `Case #${c.number} is void.`, opener));
  }

  function caseForm(label, value, action, danger, send, done, opener) {
    const ta = h('textarea', { id: nextId('cr'), rows: 2, maxlength: 512, value });
    const msg = h('p', { class: 'field-error', role: 'alert', hidden: true });
    const btn = h('button', { type: 'submit', class: ['btn', danger ? 'danger' : 'primary'], text: action });
    const form = h('form', { class: 'field case-form', novalidate: true },
      h('label', { for: ta.id, text: label }), ta, msg, h('div', { class: 'actions' }, btn));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const v = ta.value.trim();
      msg.hidden = !!v;
      msg.textContent = v ? '' : 'Write a reason first (up to 512 characters).';
      if (!v) { ta.focus(); return; }
      let c;
      try {
        c = await busy(btn, () => send(v));
      } catch (x) {
        if (x?.status === 400 || x?.status === 409) {
          msg.textContent = x.status === 409 ? (x.message || 'The case changed; reload it.') : why(x);
          msg.hidden = false;
          ta.focus();
        } else {
          toast(`${action} failed: ${errorText(x)}`, 'error', 10000);
        }
        return;
      }
      toast(done);
      detailBox.replaceChildren();
      drawCase(c, opener);
      detailBox.querySelector('h2')?.focus();
      draw();
    });
    return form;
  }

  body.append(h('h2', { text: 'Moderation cases' }), form, h('details', { class: 'find-member' }, h('summary', { text: 'Find a member by name' }), search), detailBox, listBox);
  return draw();
}
