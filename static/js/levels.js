// levels.js - #/g/<id>/levels: the server's XP leaderboard (GET
// /guilds/{id}/levels/leaderboard, paged, from Redis with PostgreSQL's last
// flush as the fallback), a reset per member (POST
// /guilds/{id}/levels/reset/{user}, admins), and links to the settings form
// for rules, rewards and multipliers (the generic form built from
// features/levels/schema.json). docs/features/levels.md.
import { get, post } from './api.js';
import { guildFrame } from './guilds.js';
import { busy, errorText, h, loadInto, toast } from './ui.js';

const PAGE = 25;
/** MEE6's curve (features/levels/curve.c): XP to reach level l. */
const xpFor = (l) => { let s = 0; for (let k = 0; k < l; k++) s += 5 * k * k + 50 * k + 100; return s; };

export async function levelsPage(view) {
  const id = view.params[0];
  const frame = await guildFrame(view, id, 'levels');
  if (!frame) return;
  const { guild, body } = frame;
  const page = Math.max(1, Number.parseInt(view.query.get('page') ?? '1', 10) || 1);
  const admin = guild.access === 'owner' || guild.access === 'admin';
  const list = h('section', { 'aria-label': 'Leaderboard', class: 'levels-board' });

  body.append(
    h('h2', { text: 'Leaderboard' }),
    h('p', { class: 'help' },
      'Members earn 15-25 XP per message (once a minute) and 10 XP per minute in voice, times the multipliers. ',
      h('a', { href: `#/g/${id}/settings/levels`, text: 'Rules, role rewards and multipliers' }), '.'),
    list);

  const render = (data) => {
    const entries = data?.entries ?? [];
    const total = Number(data?.total ?? 0);
    if (!entries.length) {
      list.append(h('p', { class: 'empty', text: total ? `Page ${page} is empty.` : 'Nobody has earned XP yet.' }));
      return;
    }
    const rows = entries.map((e) => {
      const lvl = Number(e.level);
      const xp = Number(e.xp);
      const span = xpFor(lvl + 1) - xpFor(lvl);
      const pct = span > 0 ? Math.min(100, Math.round(((xp - xpFor(lvl)) * 100) / span)) : 0;
      const reset = admin ? h('button', { type: 'button', class: 'btn small subtle', text: 'Reset' }) : null;
      if (reset) {
        reset.addEventListener('click', () => busy(reset, async () => {
          if (!window.confirm(`Reset the XP of ${e.user_id} to 0? This cannot be undone.`)) return;
          try {
            await post(`/guilds/${id}/levels/reset/${e.user_id}`, {});
            toast('XP reset.');
            view.reload();
          } catch (err) {
            toast(errorText(err), 'error');
          }
        }));
      }
      return h('tr', {},
        h('td', { text: String(e.rank) }),
        h('td', {}, h('code', { text: e.user_id })),
        h('td', { text: String(lvl) }),
        h('td', { text: xp.toLocaleString() }),
        h('td', {}, h('progress', { max: '100', value: String(pct), 'aria-label': `${pct}% to level ${lvl + 1}` })),
        admin ? h('td', {}, reset) : null);
    });
    list.append(h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Rank', 'Member', 'Level', 'XP', 'Next level', admin ? '' : null]
        .filter((x) => x !== null).map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, rows)));
    const pages = Math.max(1, Math.ceil(total / PAGE));
    list.append(h('nav', { class: 'pager', 'aria-label': 'Pages' },
      page > 1 ? h('a', { href: `#/g/${id}/levels?page=${page - 1}`, text: 'Previous' }) : null,
      h('span', { text: ` Page ${page} of ${pages} ` }),
      page < pages ? h('a', { href: `#/g/${id}/levels?page=${page + 1}`, text: 'Next' }) : null));
  };
  await loadInto(list, () => get(`/guilds/${id}/levels/leaderboard?page=${page}&size=${PAGE}`, view.signal), render,
    { retry: view.reload, what: 'the leaderboard' });
}
