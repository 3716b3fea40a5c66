// dev.js - operator pages (developer access): #/dev/jobs and #/dev/shards,
// refreshed every 10 s while the tab is visible.
import { get, post } from './api.js';
import { badge, busy, errorPanel, errorText, fmtDate, fmtDuration, h, loadInto, pageTitle, toast } from './ui.js';

const EVERY_MS = 10000;

/** Loads into box now, then every 10 s while visible, until the page is left. */
function autoRefresh(view, box, stamp, fetcher, render) {
  let running = false;
  const draw = (d) => {
    render(d);
    stamp.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every 10 s.`;
  };
  const tick = async () => {
    if (running || view.signal.aborted || document.visibilityState !== 'visible') return;
    if (box.contains(document.activeElement) && document.activeElement !== box) return; // do not pull focus away
    running = true;
    box.setAttribute('aria-busy', 'true');
    try {
      const d = await fetcher();
      box.replaceChildren();
      draw(d);
    } catch (e) {
      if (e?.name !== 'AbortError') box.replaceChildren(errorPanel(e, tick, { dev: true }));
    } finally {
      box.removeAttribute('aria-busy');
      running = false;
    }
  };
  const timer = setInterval(tick, EVERY_MS);
  const onVis = () => { if (document.visibilityState === 'visible') tick(); };
  document.addEventListener('visibilitychange', onVis);
  view.signal.addEventListener('abort', () => {
    clearInterval(timer);
    document.removeEventListener('visibilitychange', onVis);
  });
  return loadInto(box, fetcher, draw, { dev: true, retry: tick });
}

function table(caption, cols, rows, empty) {
  if (!rows.length) return h('section', {}, h('h2', { text: caption }), h('p', { class: 'muted', text: empty }));
  return h('section', {}, h('h2', { text: caption }), h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, cols.map(([label]) => h('th', { scope: 'col', text: label })))),
    h('tbody', {}, rows.map((r) => h('tr', {}, cols.map(([, cell]) => h('td', {}, cell(r)))))))));
}

const num = (v) => (v === undefined || v === null ? '-' : String(v));

export function jobsPage(view) {
  const stamp = h('p', { class: 'small muted', 'aria-live': 'off' });
  const box = h('div');
  view.main.replaceChildren(pageTitle('Jobs'), stamp, box);
  const fetcher = async () => {
    const [stats, dead] = await Promise.all([get('/jobs/stats', view.signal), get('/jobs/dead?limit=50', view.signal)]);
    return { stats, dead };
  };
  const render = ({ stats, dead }) => {
    box.append(
      table('Queues', [
        ['Queue', (q) => q.name], ['Ready', (q) => num(q.ready)], ['Delayed', (q) => num(q.delayed)],
        ['Processing', (q) => num(q.processing)], ['Running', (q) => num(q.running)],
        ['Dead', (q) => (q.dead ? badge(String(q.dead), 'off') : num(q.dead))],
      ], stats?.queues ?? [], 'No queues yet.'),
      table('Job kinds (last 24 h)', [
        ['Kind', (k) => k.kind], ['OK', (k) => num(k.ok)], ['Failed', (k) => num(k.failed)], ['Dead', (k) => num(k.dead)],
        ['p50', (k) => (k.p50_ms === undefined || k.p50_ms === null ? '-' : `${k.p50_ms} ms`)],
        ['p99', (k) => (k.p99_ms === undefined || k.p99_ms === null ? '-' : `${k.p99_ms} ms`)],
      ], stats?.kinds ?? [], 'No job ran in the last 24 hours.'),
      table('Dead letters', [
        ['Job', (j) => h('code', { text: j.id })], ['Kind', (j) => j.kind], ['Server', (j) => num(j.guild_id)],
        ['Attempts', (j) => num(j.attempts)], ['Error', (j) => h('span', { class: 'error-text', text: j.error ?? '' })],
        ['Failed', (j) => fmtDate(j.failed_at)], ['', (j) => retryButton(j)],
      ], dead?.jobs ?? [], 'No dead jobs: every job finished or is still retrying.'));
  };
  return autoRefresh(view, box, stamp, fetcher, render);
}

function retryButton(j) {
  const btn = h('button', { type: 'button', class: 'btn small', text: 'Retry', 'aria-label': `Retry job ${j.id}` });
  btn.addEventListener('click', async () => {
    try {
      await busy(btn, () => post(`/jobs/dead/${encodeURIComponent(j.id)}/retry`));
      toast(`Job ${j.id} is queued again.`);
      btn.closest('tr')?.classList.add('done');
      btn.replaceWith(badge('Queued', 'on'));
    } catch (e) {
      toast(`Job not retried: ${errorText(e, { dev: true })}`, 'error', 10000);
    }
  });
  return btn;
}

const STATE_KIND = { ready: 'on', connected: 'on', resuming: 'warn', connecting: 'warn', reconnecting: 'warn', disconnected: 'off', down: 'off' };

export function shardsPage(view) {
  const stamp = h('p', { class: 'small muted', 'aria-live': 'off' });
  const box = h('div');
  view.main.replaceChildren(pageTitle('Shards'), stamp, box);
  return autoRefresh(view, box, stamp, () => get('/shards', view.signal), (d) => {
    box.append(table('Shards', [
      ['Shard', (s) => num(s.id)], ['State', (s) => badge(s.state ?? 'unknown', STATE_KIND[s.state] ?? '')],
      ['Servers', (s) => num(s.guilds)], ['Latency', (s) => (s.latency_ms === undefined || s.latency_ms === null ? '-' : `${s.latency_ms} ms`)],
      ['Last heartbeat', (s) => fmtDate(s.last_heartbeat)], ['Uptime', (s) => fmtDuration(s.uptime_s)], ['Owner', (s) => num(s.owner)],
    ], d?.shards ?? [], 'No shard has reported yet: is gateway-lite running?'));
  });
}
