// login.js - #/login: the Discord login button and the callback's errors.
import { h, pageTitle } from './ui.js';

const ERRORS = {
  bad_state: 'The login expired or was started in another tab. Log in again from this page.',
  denied: 'You cancelled the login on Discord. To use the dashboard, log in again and press "Authorize".',
  exchange_failed: 'Discord did not accept the login. Try again; if it keeps failing, tell this Guildhall\'s operator.',
  discord_unavailable: 'Discord could not be reached. Wait a minute, then log in again.',
  session_ended: 'Your session ended, log in again.',
  logged_out: 'You are logged out.',
};

/** next: a route such as "/g/123"; only in-app routes are kept. */
export function loginHref(next) {
  const route = typeof next === 'string' && /^\/[A-Za-z0-9/_?=&.-]*$/.test(next) && !next.startsWith('/login') ? next : '/guilds';
  return `/api/v1/auth/discord/login?next=${encodeURIComponent(`/#${route}`)}`;
}

export function loginPage(view) {
  const code = view.query.get('error');
  const msg = code ? ERRORS[code] ?? 'The login did not complete. Log in again.' : null;
  const info = code === 'logged_out';
  view.main.replaceChildren(h('section', { class: 'login panel' },
    h('img', { src: '/logo.svg', alt: '', width: 64, height: 64, class: 'login-logo' }),
    pageTitle('Guildhall'),
    h('p', { class: 'lead', text: 'Manage Guildhall in the Discord servers you run: features, settings, who may help, and premium.' }),
    msg ? h('p', { class: ['notice', info ? 'info' : 'error'], role: info ? 'status' : 'alert', text: msg }) : null,
    h('a', { class: 'btn primary big', href: loginHref(view.query.get('next')), text: 'Log in with Discord' }),
    h('p', { class: 'muted small', text: 'Guildhall asks Discord for your name and the list of your servers; it never sees your password.' })));
}
