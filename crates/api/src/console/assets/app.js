// The console: signs in, keeps the header, and routes between the function list (#/) and a
// function's page (#/functions/NAME/TAB). Views refresh themselves while shown and stop when
// the route changes.

import { h, fill, api, ApiError, setSession, count, ms, dollars, ago, problem, table } from './ui.js';
import { functionPage } from './function.js';

const main = document.getElementById('main');
const who = document.getElementById('who');
const crumbs = document.getElementById('crumbs');

/** The session: {signedIn, verify, account, region, accessKeyId}. */
let me = null;
/** Timers and other work of the current view, ended when the route changes. */
let stops = [];

export function onLeave(stop) {
  stops.push(stop);
}

function leave() {
  for (const s of stops) s();
  stops = [];
}

async function start() {
  try {
    me = await api('GET', '/console/session');
  } catch (e) {
    fill(main, problem(e));
    return;
  }
  window.addEventListener('hashchange', route);
  route();
}

function header() {
  if (!me || !me.signedIn) {
    fill(who);
    return;
  }
  fill(who,
    h('span', { class: 'pill', title: 'Account' }, me.account),
    h('span', { class: 'pill', title: 'Region' }, me.region),
    me.verify
      ? h('button', { class: 'link', onclick: signOut }, 'Sign out')
      : h('span', { class: 'muted small', title: 'The server does not verify signatures' }, 'auth off'));
}

async function signOut() {
  await api('DELETE', '/console/session').catch(() => {});
  setSession(null);
  me = await api('GET', '/console/session');
  location.hash = '#/';
  route();
}

function route() {
  leave();
  header();
  if (!me.signedIn) {
    fill(crumbs);
    signInView();
    return;
  }
  let parts;
  try {
    parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  } catch {
    parts = [];
  }
  if (parts[0] === 'functions' && parts[1]) {
    fill(crumbs, h('a', { href: '#/' }, 'Functions'), h('span', { class: 'sep' }, '/'), h('span', {}, parts[1]));
    functionPage(main, parts[1], parts[2] || 'overview', { onLeave, me });
  } else {
    fill(crumbs, h('span', {}, 'Functions'));
    listView();
  }
}

function signInView() {
  const err = h('div');
  const key = h('input', { id: 'access-key-id', name: 'accessKeyId', autocomplete: 'username', required: true, spellcheck: 'false' });
  const secret = h('input', { id: 'secret-access-key', name: 'secretAccessKey', type: 'password', autocomplete: 'current-password', required: true });
  const region = h('input', { id: 'region', name: 'region', value: me.region, spellcheck: 'false' });
  const form = h('form', { class: 'card signin', onsubmit: async (ev) => {
    ev.preventDefault();
    fill(err);
    try {
      const signed = await api('POST', '/console/session', {
        accessKeyId: key.value.trim(), secretAccessKey: secret.value, region: region.value.trim(),
      }, { headers: { 'x-lamina-console': 'sign-in' } });
      setSession(signed.csrf);
      me = await api('GET', '/console/session');
      route();
    } catch (e) {
      fill(err, problem(e));
    }
  } },
  h('h1', {}, 'Sign in'),
  h('p', { class: 'muted' }, 'Use an access key of this server, as you would with the AWS CLI.'),
  h('label', { for: 'access-key-id' }, 'Access key ID'), key,
  h('label', { for: 'secret-access-key' }, 'Secret access key'), secret,
  h('label', { for: 'region' }, 'Region'), region,
  err,
  h('button', { class: 'primary', type: 'submit' }, 'Sign in'));
  fill(main, form);
  key.focus();
}

/** Every function of the account, following the list's markers. */
export async function listFunctions() {
  const out = [];
  let marker = '';
  for (let i = 0; i < 100; i++) {
    const page = await api('GET', `/2015-03-31/functions/?MaxItems=50${marker ? `&Marker=${encodeURIComponent(marker)}` : ''}`);
    out.push(...(page.Functions || []));
    if (!page.NextMarker) break;
    marker = page.NextMarker;
  }
  return out;
}

function listView() {
  const filter = h('input', { class: 'filter', type: 'search', placeholder: 'Filter by name', 'aria-label': 'Filter functions' });
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const stamp = h('span', { class: 'muted small' });
  fill(main,
    h('div', { class: 'titlebar' }, h('h1', {}, 'Functions'), stamp, filter),
    body);
  let data = null;
  const draw = () => {
    if (!data) return;
    const q = filter.value.trim().toLowerCase();
    const rows = data.functions.filter((f) => f.FunctionName.toLowerCase().includes(q));
    fill(body, summaryCards(data), table([
      ['Function', (f) => h('a', { href: `#/functions/${encodeURIComponent(f.FunctionName)}` }, f.FunctionName)],
      ['Status', (f) => status(data.stats[f.FunctionName])],
      ['Runtime', (f) => f.PackageType === 'Image' ? 'image' : (f.Runtime || '—')],
      ['Memory', (f) => `${f.MemorySize} MB`, 'num'],
      ['Invocations (1 h)', (f) => count(data.stats[f.FunctionName]?.invocations ?? 0), 'num'],
      ['Errors (1 h)', (f) => errorsCell(data.stats[f.FunctionName]), 'num'],
      ['p50', (f) => ms(data.stats[f.FunctionName]?.p50_ms), 'num'],
      ['p99', (f) => ms(data.stats[f.FunctionName]?.p99_ms), 'num'],
      ['Cost this month', (f) => dollars(data.costs[f.FunctionName] ?? '0'), 'num'],
      ['Modified', (f) => ago(f.LastModified)],
    ], rows, { class: 'functions', empty: data.functions.length ? 'No function matches.' : 'No functions yet. Create one with the AWS CLI, an SDK or `lamina deploy`.' }));
  };
  filter.addEventListener('input', draw);
  const load = async () => {
    try {
      const [functions, summary, bill] = await Promise.all([
        listFunctions(),
        api('GET', '/_lamina/metrics/history?period=1h'),
        api('GET', '/_lamina/bill').catch(() => null),
      ]);
      const stats = {};
      for (const s of summary.functions || []) stats[s.function] = s;
      const costs = {};
      for (const c of bill?.functions || []) {
        costs[c.function] = String(Number(costs[c.function] || 0) + Number(c.cost));
      }
      data = { functions: functions.sort((a, b) => a.FunctionName.localeCompare(b.FunctionName)), stats, costs, bill };
      fill(stamp, `updated ${new Date().toLocaleTimeString()}`);
      draw();
    } catch (e) {
      if (e instanceof ApiError && e.status === 403 && me.verify) return expired();
      fill(body, problem(e));
    }
  };
  load();
  const timer = setInterval(load, 5000);
  onLeave(() => clearInterval(timer));
}

/** Live: how many invocations run now, or idle. */
function status(s) {
  const n = s?.concurrency_now ?? 0;
  return n ? h('span', { class: 'badge running' }, `${count(n)} running`) : h('span', { class: 'badge idle' }, 'idle');
}

function errorsCell(s) {
  const n = s?.errors ?? 0;
  return n ? h('span', { class: 'bad' }, count(n)) : '0';
}

function summaryCards(data) {
  const all = Object.values(data.stats);
  const sum = (k) => all.reduce((a, s) => a + (s[k] || 0), 0);
  const card = (label, value, cls) => h('div', { class: `stat ${cls || ''}` }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));
  return h('div', { class: 'stats' },
    card('Functions', count(data.functions.length)),
    card('Running now', count(sum('concurrency_now'))),
    card('Invocations, last hour', count(sum('invocations'))),
    card('Errors, last hour', count(sum('errors')), sum('errors') ? 'bad' : ''),
    card('Throttles, last hour', count(sum('throttles')), sum('throttles') ? 'warn' : ''),
    card('Bill this month', dollars(data.bill?.total)));
}

/** The session ended under us: back to the sign-in form. */
export async function expired() {
  me = await api('GET', '/console/session');
  route();
}

start();
