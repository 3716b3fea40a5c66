// access.js - #/g/<id>/access: who besides the server's administrators may
// manage Guildhall (GET/POST/DELETE /guilds/{id}/authorized-users).
import { del, get, post } from './api.js';
import { guildFrame } from './guilds.js';
import { memberSearch } from './settings.js';
import { badge, busy, errorText, fmtDate, h, loadInto, toast, userName } from './ui.js';

export async function accessPage(view) {
  const id = view.params[0];
  const frame = await guildFrame(view, id, 'access');
  if (!frame) return;
  const { guild, body } = frame;
  body.append(h('h2', { text: 'Access' }),
    h('p', { class: 'muted', text: 'Administrators of this server (Manage Server or Administrator) can always use the dashboard. Here you can also let other members manage Guildhall.' }));
  if (!guild.can_manage_access) {
    body.append(h('p', { class: 'panel empty', text: 'Only the server\'s owner and administrators can change who has access. Ask one of them.' }));
    return;
  }
  const listBox = h('section', { 'aria-label': 'People with access' });
  const draw = () => loadInto(listBox, () => get(`/guilds/${id}/authorized-users`, view.signal), (data) => {
    const users = data?.users ?? [];
    if (!users.length) {
      listBox.append(h('p', { class: 'panel empty', text: 'Nobody has been granted access yet: only administrators can manage Guildhall here.' }));
      return;
    }
    listBox.append(h('ul', { class: 'list' }, users.map((u) => userRow(id, u, draw))));
  }, { lines: 2 });

  const search = memberSearch(id, async (m, btn) => {
    try {
      await busy(btn, () => post(`/guilds/${id}/authorized-users`, { user_id: m.id }));
      toast(`${m.nick || userName(m)} can now manage Guildhall here.`);
      draw();
    } catch (e) {
      toast(`Access not granted: ${errorText(e)}`, 'error', 10000);
    }
  }, { label: 'Find a member to grant access', action: 'Grant access' });

  body.append(listBox, h('h3', { text: 'Grant access' }), search);
  return draw();
}

function userRow(guildId, u, redraw) {
  const name = u.username ?? u.user_id;
  const remove = u.is_installer
    ? h('span', { class: 'small muted', text: 'Installed Guildhall; cannot be removed' })
    : h('button', {
      type: 'button', class: 'btn small danger', text: 'Remove', 'aria-label': `Remove access for ${name}`,
      onclick: async (ev) => {
        const btn = ev.currentTarget;
        try {
          await busy(btn, () => del(`/guilds/${guildId}/authorized-users/${encodeURIComponent(u.user_id)}`));
          toast(`${name} no longer has access.`);
          redraw();
        } catch (e) {
          toast(`Access not removed: ${errorText(e)}`, 'error', 10000);
        }
      },
    });
  return h('li', { class: 'row' },
    h('span', { class: 'grow' },
      h('strong', { text: name }), ' ',
      u.is_installer ? badge('Installer', 'access') : null,
      h('span', { class: 'small muted block', text: `${u.granted_by ? `Granted by ${u.granted_by}` : 'Granted at install'} · ${fmtDate(u.created_at)}` })),
    remove);
}
