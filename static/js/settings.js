// settings.js - #/g/<id>/settings/<feature>: a form generated from the
// feature's settings schema (the JSON Schema subset the API validates), and
// the member search the access page shares.
import { get, put } from './api.js';
import { guildFrame, hasTier, loadPremium, premiumHref, tierInfo } from './guilds.js';
import {
  badge, busy, describe, errorPanel, errorText, h, loadInto, lockBadge, nextId, safeUrl, titleCase, toast, userName,
} from './ui.js';

const TEXT_CHANNELS = new Set([0, 5]); // GUILD_TEXT, GUILD_ANNOUNCEMENT

// ------------------------------------------------------------ member search
/**
 * A search box over GET /guilds/{id}/members?query=. onPick(member) is
 * called when a result is chosen. opts: label, action (button text).
 */
export function memberSearch(guildId, onPick, { label = 'Find a member', action = 'Choose' } = {}) {
  const id = nextId('ms');
  const input = h('input', { type: 'search', id, autocomplete: 'off', placeholder: 'Name or username', class: 'grow' });
  const btn = h('button', { type: 'submit', class: 'btn', text: 'Search' });
  const out = h('div', { class: 'search-results', 'aria-live': 'polite' });
  const run = async () => {
    const q = input.value.trim();
    if (!q) {
      out.replaceChildren(h('p', { class: 'small muted', text: 'Type part of a name first.' }));
      return;
    }
    out.setAttribute('aria-busy', 'true');
    out.replaceChildren(h('p', { class: 'small muted', text: 'Searching…' }));
    try {
      const data = await busy(btn, () => get(`/guilds/${guildId}/members?query=${encodeURIComponent(q)}&limit=10`));
      const list = data?.members ?? [];
      if (!list.length) {
        out.replaceChildren(h('p', { class: 'small muted', text: `No member matches "${q}". Check the spelling; search looks at the start of names.` }));
        return;
      }
      out.replaceChildren(h('ul', { class: 'list' }, list.map((m) => h('li', { class: 'row' },
        h('span', { class: 'grow' }, h('strong', { text: m.nick || userName(m) }), ' ', h('span', { class: 'muted', text: `@${m.username ?? m.id}` })),
        h('button', {
          type: 'button', class: 'btn small', text: action, 'aria-label': `${action} ${m.nick || userName(m)}`,
          onclick: (ev) => onPick(m, ev.currentTarget),
        })))));
    } catch (e) {
      out.replaceChildren(errorPanel(e, run));
    } finally {
      out.removeAttribute('aria-busy');
    }
  };
  const form = h('div', { class: 'member-search' },
    h('label', { for: id, text: label }),
    h('div', { class: 'inline' }, input, btn), out);
  // A form inside a form is not allowed: Enter and the button are wired by hand.
  btn.type = 'button';
  btn.addEventListener('click', run);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); run(); }
  });
  return form;
}

// ----------------------------------------------------------- schema helpers
function typeOf(s, value) {
  let t = s?.type;
  if (Array.isArray(t)) t = t.find((x) => x !== 'null') ?? t[0];
  if (t) return t;
  if (s?.properties) return 'object';
  if (s?.items) return 'array';
  if (Array.isArray(s?.enum)) return typeof s.enum[0] === 'number' ? 'number' : 'string';
  if (typeof value === 'boolean') return 'boolean';
  return typeof value === 'number' ? 'number' : 'string';
}

const nullable = (s) => Array.isArray(s?.type) && s.type.includes('null');

function kindOf(s, key) {
  const f = s?.format;
  if (['channel', 'role', 'user', 'color', 'duration'].includes(f)) return f;
  if (f === 'snowflake' || s?.snowflake === true) {
    if (/channel_ids?$/.test(key)) return 'channel';
    if (/role_ids?$/.test(key)) return 'role';
    if (/user_ids?$/.test(key)) return 'user';
    return 'snowflake';
  }
  return null;
}

/** Which lookups the form needs: {roles, channels, premium}. */
function needs(s, key = '', acc = { roles: false, channels: false, premium: false }) {
  if (!s || typeof s !== 'object') return acc;
  const k = kindOf(s, key);
  if (k === 'role') acc.roles = true;
  if (k === 'channel') acc.channels = true;
  if (s['x-premium']) acc.premium = true;
  for (const [pk, ps] of Object.entries(s.properties ?? {})) needs(ps, pk, acc);
  if (s.items) needs(s.items, key, acc);
  return acc;
}

function hint(s, type) {
  const parts = [];
  if (type === 'string') {
    if (s.minLength && s.maxLength) parts.push(`${s.minLength} to ${s.maxLength} characters.`);
    else if (s.maxLength) parts.push(`Up to ${s.maxLength} characters.`);
    else if (s.minLength) parts.push(`At least ${s.minLength} characters.`);
  }
  if (type === 'integer' || type === 'number') {
    if (s.minimum !== undefined && s.maximum !== undefined) parts.push(`From ${s.minimum} to ${s.maximum}.`);
    else if (s.minimum !== undefined) parts.push(`At least ${s.minimum}.`);
    else if (s.maximum !== undefined) parts.push(`At most ${s.maximum}.`);
  }
  if (type === 'array' && s.maxItems) parts.push(`Up to ${s.maxItems}.`);
  return parts.join(' ');
}

const hex = (n) => `#${(Number(n) >>> 0 & 0xffffff).toString(16).padStart(6, '0')}`;

// ------------------------------------------------------------------ fields
/**
 * Builds the control for one schema node. Returns {el, get} where get()
 * answers the value to save (undefined: leave the key out). ctx: guildId,
 * roles, channels, tier, errors (Map pointer -> slot), onChange().
 */
function field(s, value, ptr, key, required, ctx, opts = {}) {
  const type = typeOf(s, value);
  let f;
  if (type === 'object') f = objectField(s, value, ptr, key, ctx, opts);
  else if (type === 'array') f = arrayField(s, value, ptr, key, ctx);
  else f = scalarField(s, type, value, ptr, key, required, ctx, opts);
  const need = s?.['x-premium'];
  if (need && !hasTier(ctx.tier, need)) {
    for (const c of f.el.querySelectorAll('input,select,textarea,button')) c.disabled = true;
    f.el.classList.add('locked');
    f.el.append(h('p', { class: 'small' }, `Needs ${titleCase(need === true ? 'premium' : need)}. `,
      h('a', { href: premiumHref(ctx.guildId), text: 'See premium' })));
  }
  return f;
}

function labelText(s, key, need) {
  return [s?.title ?? titleCase(key), need && !need.ok ? lockBadge(need.tier) : null];
}

function errorSlot(ctx, ptr) {
  const slot = h('p', { class: 'field-error', id: nextId('err'), hidden: true });
  ctx.errors.set(ptr, slot);
  return slot;
}

function premiumNeed(s, ctx) {
  const need = s?.['x-premium'];
  if (!need) return null;
  return { ok: hasTier(ctx.tier, need), tier: need === true ? 'premium' : need };
}

function objectField(s, value, ptr, key, ctx, opts) {
  const cur = value && typeof value === 'object' && !Array.isArray(value) ? value : {};
  const req = new Set(Array.isArray(s.required) ? s.required : []);
  const children = [];
  const box = opts.root ? h('div', { class: 'fields' }) : h('fieldset', { class: 'group', 'data-path': ptr },
    h('legend', {}, opts.label ?? labelText(s, key, premiumNeed(s, ctx))),
    s.description ? h('p', { class: 'help', text: s.description }) : null);
  for (const [k, ps] of Object.entries(s.properties ?? {})) {
    if (ps?.['x-hidden'] || (opts.root && k === 'enabled')) continue;
    const f = field(ps, cur[k], `${ptr}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`, k, req.has(k), ctx);
    children.push([k, f]);
    box.append(f.el);
  }
  box.append(errorSlot(ctx, ptr));
  return {
    el: box,
    get() {
      const out = { ...cur };
      for (const [k, f] of children) {
        const v = f.get();
        if (v === undefined) delete out[k];
        else out[k] = v;
      }
      return out;
    },
  };
}

function arrayField(s, value, ptr, key, ctx) {
  const items = s.items ?? { type: 'string' };
  const title = s.title ?? titleCase(key);
  const itemHelp = kindOf(items, key) === 'role' && ctx.roles && roleSelect('', null, ctx).limited
    ? 'Greyed-out roles are at or above your highest role or Guildhall\'s role; Guildhall can only use roles below both.' : '';
  const help = [s.description, items.description, hint(s, 'array'), hint(items, typeOf(items)), itemHelp].filter(Boolean).join(' ');
  let rows = [];
  const list = h('ol', { class: 'array-items' });
  const add = h('button', { type: 'button', class: 'btn small', text: 'Add', 'aria-label': `Add to ${title}` });
  const box = h('fieldset', { class: 'group array', 'data-path': ptr },
    h('legend', {}, labelText(s, key, premiumNeed(s, ctx))),
    help ? h('p', { class: 'help', text: help }) : null, list, add, errorSlot(ctx, ptr));

  const draw = (values) => {
    for (const p of [...ctx.errors.keys()]) if (p.startsWith(`${ptr}/`)) ctx.errors.delete(p);
    rows = values.map((v, i) => field(items, v, `${ptr}/${i}`, key, true, ctx, { label: `${title} ${i + 1}`, compact: true }));
    list.replaceChildren(...rows.map((f, i) => h('li', { class: 'array-row' }, f.el,
      h('button', {
        type: 'button', class: 'btn small subtle', text: 'Remove', 'aria-label': `Remove ${title} ${i + 1}`,
        onclick: () => {
          const vals = rows.map((r) => r.get());
          vals.splice(i, 1);
          draw(vals);
          ctx.onChange();
          (list.querySelector('input,select') ?? add).focus();
        },
      }))));
    add.disabled = Boolean(s.maxItems && values.length >= s.maxItems);
  };
  add.addEventListener('click', () => {
    const vals = rows.map((r) => r.get());
    const it = typeOf(items);
    vals.push(it === 'boolean' ? false : it === 'object' ? {} : undefined);
    draw(vals);
    ctx.onChange();
    const last = list.lastElementChild?.querySelector('input,select,textarea');
    last?.focus();
  });
  draw(Array.isArray(value) ? value : []);
  return { el: box, get: () => rows.map((r) => r.get()).filter((v) => v !== undefined) };
}

function scalarField(s, type, value, ptr, key, required, ctx, opts) {
  const id = nextId('fld');
  const helpId = `${id}-help`;
  const err = errorSlot(ctx, ptr);
  const kind = kindOf(s, key);
  const empty = () => (nullable(s) ? null : required && type === 'string' ? '' : undefined);
  const helpParts = [s.description, kind === 'color' ? '' : hint(s, type)];
  let control;
  let get;

  if (type === 'boolean') {
    control = h('input', { type: 'checkbox', id, checked: value === undefined ? Boolean(s.default) : Boolean(value) });
    get = () => control.checked;
  } else if (Array.isArray(s.enum)) {
    control = h('select', { id });
    if (!required || value === undefined) control.append(h('option', { value: '', text: '(not set)' }));
    for (const v of s.enum) control.append(h('option', { value: String(v), text: titleCase(String(v)), selected: v === value }));
    get = () => {
      if (control.value === '') return empty();
      const hit = s.enum.find((v) => String(v) === control.value);
      return hit === undefined ? control.value : hit;
    };
  } else if (kind === 'channel' && ctx.channels) {
    control = channelSelect(id, value, ctx);
    get = () => (control.value === '' ? empty() : control.value);
  } else if (kind === 'role' && ctx.roles) {
    const r = roleSelect(id, value, ctx);
    control = r.select;
    if (r.limited && !opts.compact) helpParts.push('Greyed-out roles are at or above your highest role or Guildhall\'s role; Guildhall can only use roles below both (move its role up in Server Settings → Roles).');
    get = () => (control.value === '' ? empty() : control.value);
  } else if (kind === 'user') {
    return userField(s, value, ptr, key, id, err, ctx, opts, empty);
  } else if (kind === 'color') {
    const isInt = type === 'integer' || type === 'number';
    const initial = value === undefined || value === null ? '' : isInt ? hex(value) : String(value);
    control = h('input', { type: 'color', id, value: /^#[0-9a-f]{6}$/i.test(initial) ? initial : '#5865f2' });
    let touched = initial !== '';
    control.addEventListener('input', () => { touched = true; });
    get = () => {
      if (!touched) return value === undefined ? undefined : value;
      return isInt ? Number.parseInt(control.value.slice(1), 16) : control.value;
    };
  } else if (type === 'integer' || type === 'number') {
    control = h('input', {
      type: 'number', id, inputmode: type === 'integer' ? 'numeric' : 'decimal', step: type === 'integer' ? '1' : 'any',
      min: s.minimum, max: s.maximum, value: value === undefined || value === null ? '' : String(value),
    });
    if (kind === 'duration') helpParts.push('In seconds.');
    get = () => {
      if (control.value.trim() === '') return empty() === '' ? undefined : empty();
      const n = Number(control.value);
      return Number.isFinite(n) ? n : control.value;
    };
  } else {
    const long = (s.maxLength ?? 0) > 200;
    control = h(long ? 'textarea' : 'input', {
      id, value: value === undefined || value === null ? '' : String(value),
      type: long ? null : 'text', rows: long ? 4 : null, spellcheck: kind ? 'false' : null,
      inputmode: kind === 'snowflake' || kind === 'channel' || kind === 'role' ? 'numeric' : null,
      placeholder: kind === 'duration' ? '10m' : kind === 'snowflake' ? 'ID, e.g. 1098765432109876543' : null,
    });
    if (kind === 'duration') helpParts.push('A duration such as 30s, 10m, 2h or 7d.');
    get = () => (control.value === '' ? empty() : control.value);
  }

  const help = opts.compact ? '' : helpParts.filter(Boolean).join(' ');
  control.setAttribute('aria-describedby', `${help ? `${helpId} ` : ''}${err.id}`);
  if (required && type !== 'boolean') control.setAttribute('aria-required', 'true');
  const label = h('label', { for: id, class: opts.compact ? 'sr-only' : null }, opts.label ?? labelText(s, key, premiumNeed(s, ctx)));
  const el = type === 'boolean'
    ? h('div', { class: 'field check', 'data-path': ptr }, control, label, help ? h('p', { class: 'help', id: helpId, text: help }) : null, err)
    : h('div', { class: 'field', 'data-path': ptr }, label, control, help ? h('p', { class: 'help', id: helpId, text: help }) : null, err);
  return { el, get };
}

function channelSelect(id, value, ctx) {
  const select = h('select', { id }, h('option', { value: '', text: '(none)' }));
  const chans = ctx.channels.filter((c) => TEXT_CHANNELS.has(Number(c.type)));
  const cats = new Map(ctx.channels.filter((c) => Number(c.type) === 4).map((c) => [c.id, c]));
  const groups = new Map();
  for (const c of chans.sort((a, b) => (a.position ?? 0) - (b.position ?? 0))) {
    const p = cats.has(c.parent_id) ? c.parent_id : '';
    if (!groups.has(p)) groups.set(p, []);
    groups.get(p).push(c);
  }
  let found = false;
  for (const [p, list] of groups) {
    const opts = list.map((c) => {
      if (c.id === value) found = true;
      return h('option', { value: c.id, text: `#${c.name}`, selected: c.id === value });
    });
    select.append(p ? h('optgroup', { label: cats.get(p).name ?? 'Category' }, opts) : opts);
  }
  if (value && !found) select.append(h('option', { value, selected: true, text: `Unknown channel (${value})` }));
  return select;
}

function roleSelect(id, value, ctx) {
  const { roles = [], bot_position: bot, user_position: user } = ctx.roles;
  const limit = Math.min(Number.isFinite(Number(bot)) && bot !== null ? Number(bot) : Infinity,
    Number.isFinite(Number(user)) && user !== null ? Number(user) : Infinity);
  const select = h('select', { id }, h('option', { value: '', text: '(none)' }));
  let limited = false;
  let found = false;
  for (const r of [...roles].sort((a, b) => b.position - a.position)) {
    if (r.id === ctx.guildId) continue; // @everyone
    const high = Number(r.position) >= limit;
    const off = high || r.managed;
    if (high) limited = true;
    if (r.id === value) found = true;
    select.append(h('option', {
      value: r.id, selected: r.id === value, disabled: off && r.id !== value,
      text: `${r.name}${r.managed ? ' (managed by an integration)' : high ? ' (above your or Guildhall\'s role)' : ''}`,
    }));
  }
  if (value && !found) select.append(h('option', { value, selected: true, text: `Unknown role (${value})` }));
  return { select, limited };
}

function userField(s, value, ptr, key, id, err, ctx, opts, empty) {
  let chosen = value ?? null;
  const shown = h('span', { class: 'grow', text: chosen ? `User ${chosen}` : 'Nobody chosen' });
  const clear = h('button', {
    type: 'button', class: 'btn small subtle', text: 'Clear',
    onclick: () => { chosen = null; shown.textContent = 'Nobody chosen'; ctx.onChange(); },
  });
  const search = memberSearch(ctx.guildId, (m) => {
    chosen = m.id;
    shown.textContent = `${m.nick || userName(m)} (@${m.username ?? m.id})`;
    ctx.onChange();
  }, { label: `Search members for ${opts.label ?? s.title ?? titleCase(key)}` });
  const el = h('fieldset', { class: 'group user-field', 'data-path': ptr, 'aria-describedby': err.id },
    h('legend', { class: opts.compact ? 'sr-only' : null }, opts.label ?? labelText(s, key, premiumNeed(s, ctx))),
    s.description ? h('p', { class: 'help', text: s.description }) : null,
    h('div', { class: 'row' }, shown, clear), search, err);
  el.id = id;
  return { el, get: () => (chosen ? chosen : empty()) };
}

// ------------------------------------------------------------------- errors
function clearErrors(ctx, msg) {
  for (const slot of ctx.errors.values()) {
    slot.hidden = true;
    slot.textContent = '';
    slot.closest('.field, fieldset')?.classList.remove('invalid');
  }
  msg.replaceChildren();
}

/** Puts each fields[] message next to its field (nearest parent pointer) and a summary on top. */
function showFieldErrors(ctx, e, msg, guildId) {
  const fields = e.fields ?? [];
  const orphans = [];
  let first = null;
  for (const f of fields) {
    let p = typeof f.path === 'string' ? f.path.replace(/^\/document(?=\/|$)/, '') : '';
    while (!ctx.errors.has(p) && p) p = p.slice(0, p.lastIndexOf('/'));
    const slot = ctx.errors.get(p);
    const text = f.message || 'This value is not valid.';
    if (!slot) { orphans.push(text); continue; }
    slot.textContent = slot.hidden ? text : `${slot.textContent} ${text}`;
    slot.hidden = false;
    const box = slot.closest('.field, fieldset');
    box?.classList.add('invalid');
    for (const c of box?.querySelectorAll('input,select,textarea') ?? []) c.setAttribute('aria-invalid', 'true');
    first ??= box?.querySelector('input,select,textarea');
  }
  const upgrade = e.code === 'premium_required' ? safeUrl(e.upgradeUrl) : null;
  msg.replaceChildren(h('div', { class: 'notice error', role: 'alert' },
    h('strong', { text: e.status === 400 ? (fields.length === 1 ? 'One setting needs fixing.' : `${fields.length} settings need fixing.`) : describe(e).text }),
    fields.length > orphans.length ? ' The message is next to each field.' : null, orphans.length ? h('ul', {}, orphans.map((t) => h('li', { text: t }))) : null,
    e.code === 'premium_required' ? h('p', {}, h('a', upgrade ? { href: upgrade, target: '_blank', rel: 'noopener noreferrer', text: 'Upgrade' } : { href: premiumHref(guildId), text: 'See premium' })) : null));
  first?.focus();
}

// --------------------------------------------------------------------- page
export async function settingsPage(view) {
  const [id, featureName] = view.params;
  const frame = await guildFrame(view, id, '');
  if (!frame) return;
  const { guild, body } = frame;
  const feat = (guild.features ?? []).find((f) => f.name === featureName);
  const path = `/guilds/${id}/settings/${encodeURIComponent(featureName)}`;
  let lookups = {};
  await loadInto(body, async () => {
    const s = await get(path, view.signal);
    const n = needs(s?.schema);
    const [roles, channels, premium] = await Promise.all([
      n.roles ? get(`/guilds/${id}/roles`, view.signal) : null,
      n.channels ? get(`/guilds/${id}/channels`, view.signal).then((d) => d?.channels ?? []) : null,
      n.premium ? loadPremium(id, view.signal) : null,
    ]);
    lookups = { roles, channels, premium };
    return s;
  }, (s) => drawForm(view, body, guild, feat, path, s, lookups), { what: 'this feature', retry: view.reload });
}

function drawForm(view, body, guild, feat, path, s, lookups) {
  const title = feat?.title ?? s?.schema?.title ?? titleCase(s.feature);
  let version = s.version;
  let enabled = s.enabled;
  let baseline = '';
  let read = () => ({});
  const ctx = {
    guildId: guild.id, roles: lookups.roles, channels: lookups.channels,
    tier: tierInfo(guild, lookups.premium), errors: new Map(), onChange: () => markDirty(),
  };
  const msg = h('div', { class: 'form-msg' });
  const fieldsBox = h('div');
  const dirty = h('span', { class: 'dirty', hidden: true, role: 'status' }, h('span', { class: 'dot warn', 'aria-hidden': 'true' }), 'Unsaved changes');
  const saved = h('span', { class: 'small muted', role: 'status' });
  const save = h('button', { type: 'submit', class: 'btn primary', text: 'Save' });
  const discard = h('button', { type: 'button', class: 'btn subtle', text: 'Discard changes', disabled: true });
  const state = badge(enabled === false ? 'Disabled' : 'Enabled', enabled === false ? 'off' : 'on');
  const form = h('form', { class: 'settings-form', novalidate: true, 'aria-label': `${title} settings` },
    msg, fieldsBox, h('div', { class: 'form-actions' }, save, discard, dirty, saved));

  const isDirty = () => JSON.stringify(read()) !== baseline;
  function markDirty() {
    const d = isDirty();
    dirty.hidden = !d;
    discard.disabled = !d;
    if (d) saved.textContent = '';
  }
  function draw(doc) {
    ctx.errors.clear();
    const root = field(s.schema ?? { type: 'object' }, doc, '', '', true, ctx, { root: true });
    read = root.get;
    fieldsBox.replaceChildren(root.el);
    if (!root.el.querySelector('input,select,textarea')) {
      fieldsBox.append(h('p', { class: 'muted', text: 'This feature has nothing else to set: turn it on or off from the overview.' }));
    }
    baseline = JSON.stringify(read());
    markDirty();
  }
  form.addEventListener('input', markDirty);
  form.addEventListener('change', markDirty);
  discard.addEventListener('click', () => {
    clearErrors(ctx, msg);
    draw(s.document);
    saved.textContent = 'Changes discarded.';
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(ctx, msg);
    const doc = read();
    if (enabled !== undefined && s.document && 'enabled' in s.document && !('enabled' in doc)) doc.enabled = enabled;
    try {
      const res = await busy(save, () => put(path, { document: doc, version }));
      version = res?.version ?? version + 1;
      enabled = res?.enabled ?? enabled;
      s.document = res?.document ?? doc;
      draw(s.document);
      saved.textContent = 'Saved.';
      toast(`${title} settings saved.`);
    } catch (e) {
      const refused = e?.code === 'role_hierarchy' || e?.code === 'premium_required';
      if ((e?.status === 400 && e.fields?.length) || refused) {
        showFieldErrors(ctx, e, msg, guild.id);
      } else if (e?.code === 'version_conflict') {
        msg.replaceChildren(h('div', { class: 'notice error', role: 'alert' },
          h('p', { text: describe(e).text }),
          h('button', { type: 'button', class: 'btn', text: 'Reload (discards your changes)', onclick: () => view.reload() })));
      } else {
        msg.replaceChildren(errorPanel(e, () => form.requestSubmit()));
      }
      if (e?.status !== 400 && !refused) toast(`Not saved: ${errorText(e)}`, 'error', 10000);
    }
  });

  body.append(h('div', { class: 'section-head' },
    h('h2', { text: title }), state,
    h('a', { href: `#/g/${guild.id}`, class: 'small', text: 'Back to overview' })),
  s?.schema?.description || feat?.description ? h('p', { class: 'muted', text: s.schema?.description ?? feat.description }) : null,
  form);
  draw(s.document);
  view.setDirtyCheck(isDirty);
}
