// Small pieces every view uses: building elements, calling the server, formatting numbers.
// Text always goes in through textContent, never as HTML: names, payloads and log lines are
// the functions' words, not ours.

/** An element: h('div', {class: 'x', onclick: f}, child, 'text', [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    // Links go to this console or to web addresses, never to `javascript:` or `data:`.
    else if (k === 'href' && !/^(#|\/|https?:\/\/)/.test(String(v))) continue;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An SVG element with attributes. */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** An error the server answered, with its AWS error type. */
export class ApiError extends Error {
  constructor(status, type, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.type = type;
  }
}

/** Where the session's second secret is kept: this origin only, shared by its tabs. */
const CSRF = 'lamina.csrf';

/** Keeps (or, with null, forgets) the secret sign-in handed over. */
export function setSession(csrf) {
  if (csrf) localStorage.setItem(CSRF, csrf);
  else localStorage.removeItem(CSRF);
}

/** Calls the server as the signed-in console; JSON in and out unless `raw`. */
export async function api(method, path, body, opts = {}) {
  const csrf = localStorage.getItem(CSRF);
  // The session acts only with its secret in this header, which no other site can send.
  const headers = { ...(csrf ? { 'x-lamina-console': csrf } : {}), ...(opts.headers || {}) };
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  const resp = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  if (opts.raw) return resp;
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!resp.ok) {
    const type = resp.headers.get('x-amzn-errortype') || (data && (data.Type || data.__type)) || '';
    const message = data && typeof data === 'object' ? (data.message || data.Message) : data;
    throw new ApiError(resp.status, type.split(':')[0], message);
  }
  return data;
}

/** `/2015-03-31/functions/{name}…` with the name encoded. */
export function fnPath(name, rest = '') {
  return `/2015-03-31/functions/${encodeURIComponent(name)}${rest}`;
}

const num = new Intl.NumberFormat('en-US');

/** 1234 → "1,234"; absent → "—". */
export function count(n) {
  return n === undefined || n === null ? '—' : num.format(n);
}

/** Milliseconds as people read them. */
export function ms(v) {
  if (v === undefined || v === null) return '—';
  if (v >= 10000) return `${(v / 1000).toFixed(1)} s`;
  if (v >= 100) return `${Math.round(v)} ms`;
  if (v >= 10) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(2)} ms`;
}

/** Bytes as people read them. */
export function bytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

/** A dollar amount from the bill's decimal string. */
export function dollars(s) {
  if (s === undefined || s === null) return '—';
  const v = Number(s);
  if (v === 0) return '$0.00';
  if (v < 0.01) return `$${v.toPrecision(2)}`;
  return `$${v.toFixed(2)}`;
}

/** "2 min ago" for a time in the past. */
export function ago(t) {
  const d = (Date.now() - new Date(t).getTime()) / 1000;
  if (!isFinite(d)) return '—';
  if (d < 60) return 'just now';
  if (d < 3600) return `${Math.floor(d / 60)} min ago`;
  if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
  return `${Math.floor(d / 86400)} d ago`;
}

/** A message box for an error, worded by the server when it can be. */
export function problem(err) {
  const what = err instanceof ApiError && err.type ? `${err.type}: ` : '';
  return h('div', { class: 'problem', role: 'alert' }, what + (err.message || String(err)));
}

/** A state badge: Active, Pending, Failed, Inactive. */
export function badge(state) {
  const s = (state || 'Unknown').toLowerCase();
  return h('span', { class: `badge ${s}` }, state || 'Unknown');
}

/** A definition list from [label, value] pairs. */
export function facts(pairs) {
  return h('dl', { class: 'facts' },
    pairs.filter((p) => p).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

/** A table: columns are [header, cell(row), class?]. */
export function table(columns, rows, opts = {}) {
  return h('table', { class: `grid ${opts.class || ''}` },
    h('thead', {}, h('tr', {}, columns.map(([t, , c]) => h('th', { class: c }, t)))),
    h('tbody', {}, rows.length === 0
      ? h('tr', {}, h('td', { class: 'empty', colspan: columns.length }, opts.empty || 'Nothing here yet.'))
      : rows.map((r) => h('tr', opts.rowAttrs ? opts.rowAttrs(r) : {},
          columns.map(([, cell, c]) => h('td', { class: c }, cell(r)))))));
}
