// A line chart drawn as inline SVG: no library and nothing fetched, so the dashboard works on a
// host that cannot reach the internet. Each series is a list of [time ms, value] points; the
// chart spans from the first point (at least a minute back) to now, at most `windowMs`, against
// a y axis from 0 to a rounded maximum.

const SVG = 'http://www.w3.org/2000/svg';
const W = 600;
const H = 180;
const PAD = { left: 48, right: 12, top: 12, bottom: 22 };

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The smallest of 1, 2, 5 times a power of ten that is at least `v`. */
function niceCeil(v) {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function label(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(v % 1e6 ? 1 : 0)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(v % 1e3 ? 1 : 0)}k`;
  return String(Math.round(v * 100) / 100);
}

/**
 * Draws `series` ({name, className, points}) into the <svg> `svg`, ending at `now`.
 * The svg gets data-points: the number of points drawn of the first series.
 */
export function drawChart(svg, series, { now = Date.now(), windowMs = 5 * 60_000 } = {}) {
  const first = Math.min(now, ...series.filter((s) => s.points.length).map((s) => s.points[0][0]));
  const span = Math.min(windowMs, Math.max(60_000, now - first));
  const from = now - span;
  const visible = series.map((s) => ({ ...s, points: s.points.filter(([t]) => t >= from) }));
  const max = niceCeil(Math.max(1, ...visible.flatMap((s) => s.points.map(([, v]) => v))));
  const x = (t) => PAD.left + ((t - from) / span) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / max) * (H - PAD.top - PAD.bottom);
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.replaceChildren();
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    svg.append(el('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: 'gridline' }));
    svg.append(el('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, label(v)));
  }
  const back = span < 120_000 ? `-${Math.round(span / 1000)} s` : `-${Math.round(span / 60_000)} min`;
  svg.append(el('text', { x: PAD.left, y: H - 4, class: 'axis' }, back));
  svg.append(el('text', { x: W - PAD.right, y: H - 4, 'text-anchor': 'end', class: 'axis' }, 'now'));
  for (const s of visible) {
    if (s.points.length === 0) continue;
    const d = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    svg.append(el('polyline', { points: d, class: `line ${s.className}` }));
    const [t, v] = s.points[s.points.length - 1];
    svg.append(el('circle', { cx: x(t), cy: y(v), r: 3, class: `dot ${s.className}` }));
  }
  svg.dataset.points = String(visible[0] ? visible[0].points.length : 0);
}
