// app.js - the dashboard's entry: session, hash router, header, health dot.
//
// Routes: #/login, #/guilds, #/g/<id>, #/g/<id>/settings/<feature>,
// #/g/<id>/access, #/g/<id>/premium, #/g/<id>/cases, #/g/<id>/automod, #/g/<id>/levels, #/dev/jobs,
// #/dev/shards.
import { accessPage } from './js/access.js';
import { automodPage } from './js/automod.js';
import { get, health, onUnauthorized, post, setMe } from './js/api.js';
import { casesPage } from './js/cases.js';
import { jobsPage, shardsPage } from './js/dev.js';
import { levelsPage } from './js/levels.js';
import { forgetGuilds, guildsPage, overviewPage } from './js/guilds.js';
import { loginPage } from './js/login.js';
import { premiumPage } from './js/premium.js';
import { settingsPage } from './js/settings.js';
import { avatar, busy, errorPanel, errorText, h, pageTitle, skeleton, toast, userName } from './js/ui.js';

const ID = '([0-9]{1,20})';
const ROUTES = [
  { re: /^\/login$/, page: loginPage, open: true },
  { re: /^\/guilds$/, page: guildsPage },
  { re: new RegExp(`^/g/${ID}$`), page: overviewPage },
  { re: new RegExp(`^/g/${ID}/settings/([a-z0-9_-]{1,32})$`), page: settingsPage },
  { re: new RegExp(`^/g/${ID}/access$`), page: accessPage },
  { re: new RegExp(`^/g/${ID}/premium$`), page: premiumPage },
  { re: new RegExp(`^/g/${ID}/cases$`), page: casesPage },
  { re: new RegExp(`^/g/${ID}/automod$`), page: automodPage },
  { re: new RegExp(`^/g/${ID}/levels$`), page: levelsPage },
  { re: /^\/dev\/jobs$/, page: jobsPage, dev: true },
  { re: /^\/dev\/shards$/, page: shardsPage, dev: true },
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const userBox = document.getElementById('user');
let me = null;
let controller = null;
let dirtyCheck = null;
let guild = null;
let lastHash = location.hash;
let renders = 0;
let booted = false; // until /auth/me answered, the hash is read by boot() itself

function parseHash() {
  const raw = location.hash.startsWith('#/') ? location.hash.slice(1) : '/';
  const q = raw.indexOf('?');
  return { path: q < 0 ? raw : raw.slice(0, q), query: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)), route: raw };
}

/** Goes to route ("/guilds"); replace keeps the current history entry. */
function go(route, replace = false) {
  if (replace) {
    history.replaceState(null, '', `#${route}`);
    render();
  } else {
    location.hash = `#${route}`;
  }
}

// ------------------------------------------------------------------ header
function link(href, text, current) {
  return h('a', { href, text, 'aria-current': current ? 'page' : null });
}

function drawHeader(path) {
  nav.replaceChildren();
  userBox.replaceChildren();
  if (!me) return;
  nav.append(link('#/guilds', 'Servers', path === '/guilds'));
  if (guild && (path === `/g/${guild.id}` || path.startsWith(`/g/${guild.id}/`))) {
    nav.append(h('a', { href: `#/g/${guild.id}`, class: 'crumb', text: guild.name ?? guild.id, 'aria-current': path === `/g/${guild.id}` ? 'page' : null }));
    nav.append(link(`#/g/${guild.id}/automod`, 'AutoMod', path === `/g/${guild.id}/automod`));
    nav.append(link(`#/g/${guild.id}/levels`, 'Levels', path === `/g/${guild.id}/levels`));
  }
  if (me.developer) {
    nav.append(link('#/dev/jobs', 'Jobs', path === '/dev/jobs'), link('#/dev/shards', 'Shards', path === '/dev/shards'));
  }
  const u = me.user ?? {};
  const out = h('button', { type: 'button', class: 'btn small subtle', text: 'Log out' });
  out.addEventListener('click', () => logout(out));
  userBox.append(avatar('user', u.id, u.avatar, userName(u), 'sm'), h('span', { class: 'user-name', text: userName(u) }), out);
}

async function logout(btn) {
  try {
    await busy(btn, () => post('/auth/logout'));
  } catch (e) {
    if (e?.status === 401) return; // the session had ended already; onUnauthorized takes over
    toast(`You are still logged in: ${errorText(e)}`, 'error', 10000);
    return;
  }
  me = null;
  setMe(null);
  forgetGuilds();
  dirtyCheck = null;
  go('/login?error=logged_out', true);
}

// ------------------------------------------------------------------ router
function noPage(text) {
  main.replaceChildren(h('div', { class: 'panel error', role: 'alert' }, pageTitle('Not here'), h('p', { text }),
    h('p', {}, h('a', { class: 'btn', href: '#/guilds', text: 'Your servers' }))));
}

async function render() {
  controller?.abort();
  controller = new AbortController();
  const { signal } = controller;
  dirtyCheck = null;
  lastHash = location.hash;
  const { path, query, route } = parseHash();
  if (!path.startsWith('/g/')) guild = null;
  const first = renders++ === 0;

  if (path === '/') return go(me ? '/guilds' : '/login', true);
  const match = ROUTES.find((r) => r.re.test(path));
  if (match && !match.open && !me) return go(`/login?next=${encodeURIComponent(route)}`, true);
  if (path === '/login' && me && !query.get('error')) return go('/guilds', true);
  drawHeader(path);
  main.removeAttribute('aria-busy');
  main.replaceChildren();
  if (!match) return noPage('This page does not exist. It may be an old link.');
  if (match.dev && !me.developer) return noPage('This page is for Guildhall\'s operators; your account does not have developer access.');

  const view = {
    main, query, signal, params: match.re.exec(path).slice(1),
    reload: () => render(),
    setDirtyCheck: (fn) => { dirtyCheck = fn; },
    setGuild: (g) => { guild = g; drawHeader(path); },
  };
  try {
    await match.page(view);
  } catch (e) {
    if (e?.name === 'AbortError' || signal.aborted) return;
    console.warn(e);
    main.replaceChildren(errorPanel(e, () => render()));
  }
  if (!first && !signal.aborted) main.querySelector('h1')?.focus();
}

window.addEventListener('hashchange', () => {
  if (!booted) return;
  if (location.hash && !location.hash.startsWith('#/')) {
    history.replaceState(null, '', lastHash || '#/');
    return;
  }
  if (dirtyCheck?.() && !window.confirm('You have unsaved changes. Leave this page without saving them?')) {
    history.replaceState(null, '', lastHash);
    return;
  }
  render();
});

window.addEventListener('beforeunload', (e) => {
  if (dirtyCheck?.()) {
    e.preventDefault();
    e.returnValue = '';
  }
});

onUnauthorized(() => {
  me = null;
  forgetGuilds();
  dirtyCheck = null;
  const { route, path } = parseHash();
  go(`/login?error=session_ended${path === '/login' ? '' : `&next=${encodeURIComponent(route)}`}`, true);
});

// ------------------------------------------------------------------ health
const healthBox = document.getElementById('health');

async function checkHealth() {
  if (document.visibilityState !== 'visible') return;
  const { ok, data } = await health();
  const down = data ? ['postgres', 'redis'].filter((k) => data[k] !== undefined && data[k] !== 'ok') : [];
  let kind = 'ok';
  let text = 'All systems working';
  if (!data) { kind = 'off'; text = 'Guildhall cannot be reached'; } else if (!ok || down.length || data.status !== 'ok') {
    kind = 'warn';
    text = down.length ? `Degraded: ${down.join(', ')} down` : 'Degraded';
  }
  healthBox.replaceChildren(h('span', { class: ['dot', kind], 'aria-hidden': 'true' }), h('span', { text }));
  healthBox.title = data ? `version ${data.version ?? '?'}, up ${data.uptime_s ?? '?'} s` : '';
}

// -------------------------------------------------------------------- boot
document.querySelector('.skip')?.addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

async function boot() {
  main.setAttribute('aria-busy', 'true');
  main.replaceChildren(skeleton());
  try {
    me = await get('/auth/me');
  } catch (e) {
    if (e?.status !== 401) {
      main.removeAttribute('aria-busy');
      main.replaceChildren(errorPanel(e, boot));
      return;
    }
    me = null;
  }
  setMe(me);
  booted = true;
  render();
}

boot();
checkHealth();
setInterval(checkHealth, 60000);
document.addEventListener('visibilitychange', checkHealth);
