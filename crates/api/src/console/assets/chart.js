// Line charts of the metric history, drawn as SVG: no library, a few hundred points at most.
// A gap in a series (a slot where nothing ran, for percentiles) breaks its line; a point alone
// between gaps is drawn as a dot. Hovering reads out every series at that time.

import { h, svg, fill, count } from './ui.js';

const W = 640;
const H = 200;
const PAD = { l: 64, r: 12, t: 10, b: 24 };

/** A rounded-up axis maximum: 1, 2, 2.5 or 5 times a power of ten. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function timeLabel(t, span) {
  const d = new Date(t);
  if (span > 2 * 86400000) return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/**
 * A chart card: `points` from the history ({t, ...}), `series` [{key, label, color}],
 * (`color` one of blue, red, amber, green), `opts.format` for values (counts by default), `opts.id` for the card.
 */
export function lineChart(title, points, series, opts = {}) {
  const format = opts.format || count;
  const n = points.length;
  const values = series.map((s) => points.map((p) => (p[s.key] === null || p[s.key] === undefined ? null : Number(p[s.key]))));
  const max = niceMax(Math.max(0, ...values.flat().filter((v) => v !== null)));
  const x = (i) => PAD.l + (n <= 1 ? 0 : (i / (n - 1)) * (W - PAD.l - PAD.r));
  const y = (v) => PAD.t + (1 - v / max) * (H - PAD.t - PAD.b);
  const plot = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title });
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    plot.append(
      svg('line', { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: 'gridline' }),
      svg('text', { x: PAD.l - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, format(v)));
  }
  const span = n > 1 ? points[n - 1].t - points[0].t : 0;
  for (let k = 0; k <= 4 && n > 1; k++) {
    const i = Math.round((k / 4) * (n - 1));
    plot.append(svg('text', { x: x(i), y: H - 6, class: 'axis', 'text-anchor': k === 0 ? 'start' : k === 4 ? 'end' : 'middle' }, timeLabel(points[i].t, span)));
  }
  series.forEach((s, si) => {
    const vs = values[si];
    let d = '';
    let pen = false;
    vs.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)} ${y(v).toFixed(1)}`;
      pen = true;
    });
    const nonzero = vs.filter((v) => v !== null && v > 0).length;
    plot.append(svg('path', { d: d || 'M0 0', class: `series c-${s.color}`, 'data-series': s.key, 'data-nonzero': nonzero }));
    vs.forEach((v, i) => {
      const alone = v !== null && (i === 0 || vs[i - 1] === null) && (i === n - 1 || vs[i + 1] === null);
      if (alone) plot.append(svg('circle', { cx: x(i), cy: y(v), r: 2.5, class: `dot c-${s.color}` }));
    });
  });
  const cursor = svg('line', { x1: 0, x2: 0, y1: PAD.t, y2: H - PAD.b, class: 'cursor', visibility: 'hidden' });
  plot.append(cursor);
  const readout = h('div', { class: 'readout muted small' }, ' ');
  const legend = h('div', { class: 'legend' }, series.map((s) => h('span', {}, h('i', { class: `swatch c-${s.color}` }), s.label)));
  plot.addEventListener('mousemove', (ev) => {
    const box = plot.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * W;
    const i = Math.max(0, Math.min(n - 1, Math.round(((px - PAD.l) / (W - PAD.l - PAD.r)) * (n - 1))));
    if (!n) return;
    cursor.setAttribute('x1', x(i));
    cursor.setAttribute('x2', x(i));
    cursor.setAttribute('visibility', 'visible');
    fill(readout, `${new Date(points[i].t).toLocaleString()} · `,
      series.map((s, si) => `${s.label} ${values[si][i] === null ? '—' : format(values[si][i])}`).join(' · '));
  });
  plot.addEventListener('mouseleave', () => {
    cursor.setAttribute('visibility', 'hidden');
    fill(readout, ' ');
  });
  return h('div', { class: 'card chartcard', id: opts.id }, h('div', { class: 'charthead' }, h('h3', {}, title), legend), plot, readout);
}
