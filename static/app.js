// Landing page: shows the stack's health from GET /health.
const box = document.getElementById('health');

function row(name, value) {
  const dt = document.createElement('dt');
  dt.textContent = name;
  const dd = document.createElement('dd');
  dd.textContent = value;
  dd.className = value === 'ok' ? 'ok' : value === 'down' ? 'down' : '';
  return [dt, dd];
}

try {
  const r = await fetch('/health', { headers: { Accept: 'application/json' } });
  const h = await r.json();
  const dl = document.createElement('dl');
  for (const [k, v] of Object.entries(h)) dl.append(...row(k, String(v)));
  box.replaceChildren(dl);
} catch (e) {
  box.textContent = `Could not reach /health: ${e.message}. Is the stack running (make run)?`;
}
