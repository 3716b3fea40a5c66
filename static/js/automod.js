// automod.js - #/g/<id>/automod: AutoMod's rules (a toggle, log-only, actions,
// timeout, per-rule exemptions and each rule's own parameters), the global
// exemptions, the word and pattern lists, a test box (POST
// /guilds/{id}/automod/test with the unsaved form) and the recent offences
// (GET /guilds/{id}/automod/offences). The settings are read and saved through
// the generic settings routes (GET/PUT /guilds/{id}/settings/automod), so the
// server validates them against the same schema (docs/features/automod.md).
// Every value reaches the page as text (ui.js h()).
import { get, post, put } from './api.js';
import { guildFrame } from './guilds.js';
import { badge, busy, errorText, fmtDate, h, nextId, toast, titleCase } from './ui.js';

const RULES = ['rate', 'repeat', 'caps', 'invites', 'links', 'words', 'regex', 'mentions'];
const ACTIONS = ['delete', 'warn', 'timeout', 'kick', 'ban', 'log'];
const COMMON = new Set(['enabled', 'log_only', 'actions', 'timeout', 'exempt_roles', 'exempt_channels']);
const ID_RE = /^[0-9]{15,20}$/;
const PAGE = 25;

const lines = (text) => String(text ?? '').split('\n').map((s) => s.trim()).filter(Boolean);
const ids = (text) => String(text ?? '').split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

function labelled(label, el, help) {
  el.id = el.id || nextId('am');
  return h('div', { class: 'field' }, h('label', { for: el.id, text: label }), el, help ? h('p', { class: 'help', text: help }) : null);
}

function checkbox(label, checked) {
  const box = h('input', { type: 'checkbox', checked: Boolean(checked) });
  box.id = nextId('am');
  return { box, el: h('div', { class: 'field check' }, box, h('label', { for: box.id, text: label })) };
}

/** A control for one parameter of a rule, from its schema; {el, get}. */
function param(name, schema, value) {
  const v = value ?? schema.default;
  const title = schema.title ?? titleCase(name);
  if (schema.type === 'boolean') {
    const c = checkbox(title, v);
    return { el: c.el, get: () => c.box.checked };
  }
  if (schema.type === 'integer') {
    const el = h('input', { type: 'number', min: schema.minimum, max: schema.maximum, step: 1, value: v ?? '' });
    return { el: labelled(title, el, schema.description), get: () => (el.value === '' ? undefined : Number(el.value)) };
  }
  if (schema.type === 'string' && Array.isArray(schema.enum)) {
    const el = h('select', {}, schema.enum.map((o) => h('option', { value: o, text: titleCase(o), selected: o === v })));
    return { el: labelled(title, el, schema.description), get: () => el.value };
  }
  if (schema.type === 'array') {
    const el = h('textarea', { rows: 4, value: (v ?? []).join('\n'), spellcheck: 'false' });
    const help = [schema.description, `One per line, at most ${schema.maxItems}.`, schema['x-premium'] ? 'Needs Guildhall Premium.' : null]
      .filter(Boolean).join(' ');
    return { el: labelled(title, el, help), get: () => lines(el.value) };
  }
  const el = h('input', { type: 'text', value: v ?? '' });
  return { el: labelled(title, el, schema.description), get: () => el.value.trim() || undefined };
}

function ruleBox(rule, schema, doc) {
  const d = doc ?? {};
  const props = schema?.properties ?? {};
  const on = checkbox('On', d.enabled);
  const logOnly = checkbox('Log only (record, do nothing)', d.log_only);
  const acts = new Set(d.actions ?? props.actions?.default ?? ['delete']);
  const actBoxes = ACTIONS.map((a) => {
    const c = checkbox(titleCase(a), acts.has(a));
    return { a, c };
  });
  const timeout = h('input', { type: 'text', value: d.timeout ?? props.timeout?.default ?? '10m', placeholder: '10m' });
  const exRoles = h('input', { type: 'text', value: (d.exempt_roles ?? []).join(', '), inputmode: 'numeric' });
  const exChannels = h('input', { type: 'text', value: (d.exempt_channels ?? []).join(', '), inputmode: 'numeric' });
  const params = Object.entries(props).filter(([k]) => !COMMON.has(k)).map(([k, s]) => ({ k, ...param(k, s, d[k]) }));
  const state = badge(d.enabled ? (d.log_only ? 'Log only' : 'On') : 'Off', d.enabled ? 'on' : '');
  on.box.addEventListener('change', () => { state.textContent = on.box.checked ? 'On' : 'Off'; });
  const el = h('fieldset', { class: 'panel automod-rule', 'data-rule': rule },
    h('legend', {}, h('span', { text: schema?.title ?? titleCase(rule) }), ' ', state),
    schema?.description ? h('p', { class: 'help', text: schema.description }) : null,
    on.el, logOnly.el,
    h('div', { class: 'field', role: 'group', 'aria-label': 'Actions' }, h('span', { class: 'label', text: 'Actions' }), actBoxes.map((x) => x.c.el)),
    labelled('Timeout length', timeout, 'For the timeout action: 30s, 10m, 1h, 7d (at most 28 days).'),
    params.map((p) => p.el),
    labelled('Exempt roles (this rule)', exRoles, 'Role ids, separated by commas.'),
    labelled('Exempt channels (this rule)', exChannels, 'Channel ids, separated by commas.'));
  return {
    el,
    get() {
      const out = {
        enabled: on.box.checked,
        log_only: logOnly.box.checked,
        actions: actBoxes.filter((x) => x.c.box.checked).map((x) => x.a),
        timeout: timeout.value.trim() || '10m',
        exempt_roles: ids(exRoles.value),
        exempt_channels: ids(exChannels.value),
      };
      for (const p of params) {
        const v = p.get();
        if (v !== undefined) out[p.k] = v;
      }
      return out;
    },
  };
}

export async function automodPage(view) {
  const id = view.params[0];
  const frame = await guildFrame(view, id, 'automod');
  if (!frame) return;
  const { body } = frame;
  let data;
  try {
    data = await get(`/guilds/${id}/settings/automod`, view.signal);
  } catch (e) {
    if (e?.name === 'AbortError') return;
    body.append(h('p', { class: 'panel error', role: 'alert', text: errorText(e, { what: 'the AutoMod settings' }) }));
    return;
  }
  let version = data.version ?? 0;
  const doc = data.document ?? {};
  const props = data.schema?.properties ?? {};

  // ------------------------------------------------------------ settings form
  const enabled = checkbox('AutoMod is on in this server', doc.enabled);
  const managers = checkbox('Never check members who can manage the server (Administrator or Manage Server)', doc.exempt_managers ?? true);
  const exRoles = h('input', { type: 'text', value: (doc.exempt_roles ?? []).join(', '), inputmode: 'numeric' });
  const exChannels = h('input', { type: 'text', value: (doc.exempt_channels ?? []).join(', '), inputmode: 'numeric' });
  const rules = RULES.map((r) => ({ r, box: ruleBox(r, props[r], doc[r]) }));
  const errors = h('ul', { class: 'field-errors', role: 'alert', hidden: true });
  const save = h('button', { type: 'submit', class: 'btn primary', text: 'Save AutoMod settings' });

  const current = () => {
    const out = {
      enabled: enabled.box.checked,
      exempt_managers: managers.box.checked,
      exempt_roles: ids(exRoles.value),
      exempt_channels: ids(exChannels.value),
    };
    for (const { r, box } of rules) out[r] = box.get();
    return out;
  };

  const form = h('form', { class: 'automod-form', 'aria-label': 'AutoMod settings', novalidate: true },
    h('section', { class: 'panel' }, h('h2', { text: 'AutoMod' }), enabled.el, managers.el,
      labelled('Exempt roles', exRoles, 'Members with one of these roles are never checked (role ids, separated by commas).'),
      labelled('Exempt channels', exChannels, 'Messages in these channels are never checked (channel ids).')),
    h('h2', { text: 'Rules' }),
    rules.map((x) => x.box.el),
    errors,
    h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const document = current();
    const bad = [...document.exempt_roles, ...document.exempt_channels].find((v) => !ID_RE.test(v));
    errors.replaceChildren();
    errors.hidden = true;
    if (bad) {
      errors.append(h('li', { text: `"${bad}" is not a Discord id (15 to 20 digits).` }));
      errors.hidden = false;
      return;
    }
    try {
      const out = await busy(save, () => put(`/guilds/${id}/settings/automod`, { document, version }));
      version = out.version ?? version + 1;
      toast('AutoMod settings saved.');
    } catch (err) {
      const fields = err?.fields ?? [];
      if (fields.length) {
        for (const f of fields) errors.append(h('li', { text: `${f.path || 'settings'}: ${f.message}` }));
      } else {
        errors.append(h('li', { text: errorText(err) }));
      }
      errors.hidden = false;
    }
  });

  // ------------------------------------------------------------ test box
  const sample = h('textarea', { rows: 3, maxlength: 4000, placeholder: 'Type a message to see which rules it would break' });
  const testBtn = h('button', { type: 'button', class: 'btn', text: 'Test message' });
  const testOut = h('div', { class: 'automod-test-result', 'aria-live': 'polite' });
  testBtn.addEventListener('click', async () => {
    if (!sample.value.trim()) {
      testOut.replaceChildren(h('p', { class: 'field-error', text: 'Enter a message first.' }));
      return;
    }
    try {
      const res = await busy(testBtn, () => post(`/guilds/${id}/automod/test`, { content: sample.value, settings: current() }));
      const m = res.matches ?? [];
      testOut.replaceChildren(m.length
        ? h('ul', { class: 'list' }, m.map((x) => h('li', {},
          h('strong', { text: x.title }), ' matched ', h('code', { text: x.matched }),
          ' → ', x.log_only ? 'log only' : (x.actions ?? []).join(', ') || 'no action')))
        : h('p', { text: 'No rule would match this message (the rate and repeat rules need a history and are not tested).' }),
        (res.invalid_patterns ?? []).map((x) => h('p', { class: 'field-error', text: `Pattern ${x.pattern} is ignored: ${x.error}` })),
        res.regex_limit_hits ? h('p', { class: 'help', text: 'A pattern took too long on this message and counted as no match.' }) : null);
    } catch (err) {
      testOut.replaceChildren(h('p', { class: 'field-error', role: 'alert', text: errorText(err) }));
    }
  });

  // ------------------------------------------------------------ offences
  const ruleFilter = h('select', {}, h('option', { value: '', text: 'Any rule' }), RULES.map((r) => h('option', { value: r, text: titleCase(r) })));
  const userFilter = h('input', { type: 'text', inputmode: 'numeric', placeholder: 'User id' });
  const list = h('div', { class: 'automod-offences' });
  const more = h('button', { type: 'button', class: 'btn subtle', text: 'Older offences', hidden: true });
  let before = 0;
  async function loadOffences(reset) {
    if (reset) { before = 0; list.replaceChildren(); }
    const user = userFilter.value.trim();
    if (user && !ID_RE.test(user)) {
      list.replaceChildren(h('p', { class: 'field-error', text: 'User: enter a Discord user id or leave it empty.' }));
      return;
    }
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (ruleFilter.value) q.set('rule', ruleFilter.value);
    if (user) q.set('user', user);
    if (before) q.set('before', String(before));
    try {
      const res = await get(`/guilds/${id}/automod/offences?${q}`, view.signal);
      const rows = res.offences ?? [];
      if (!rows.length && !before) list.append(h('p', { class: 'empty', text: 'No offences recorded.' }));
      else list.append(h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, ['When', 'Member', 'Rule', 'Matched', 'Actions', 'Outcome'].map((t) => h('th', { text: t })))),
        h('tbody', {}, rows.map((o) => h('tr', {},
          h('td', { text: fmtDate(o.created_at) }),
          h('td', {}, h('code', { text: o.user_id })),
          h('td', { text: titleCase(o.rule) }),
          h('td', { title: o.excerpt }, h('code', { text: o.matched })),
          h('td', { text: o.log_only ? 'log only' : (o.actions ?? []).join(', ') }),
          h('td', { text: o.done ? o.outcome : 'pending' }))))));
      before = res.next_before ?? 0;
      more.hidden = !before;
    } catch (err) {
      if (err?.name === 'AbortError') return;
      list.append(h('p', { class: 'field-error', role: 'alert', text: errorText(err) }));
    }
  }
  ruleFilter.addEventListener('change', () => loadOffences(true));
  userFilter.addEventListener('change', () => loadOffences(true));
  more.addEventListener('click', () => busy(more, () => loadOffences(false)));

  body.append(form,
    h('section', { class: 'panel', 'aria-label': 'Test a message' }, h('h2', { text: 'Test a message' }), labelled('Message', sample), testBtn, testOut),
    h('section', { class: 'panel', 'aria-label': 'Recent offences' }, h('h2', { text: 'Recent offences' }),
      h('div', { class: 'filters' }, labelled('Rule', ruleFilter), labelled('Member', userFilter)), list, more));
  await loadOffences(true);
}
