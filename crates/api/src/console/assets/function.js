// A function's page: its configuration, a test invoke, charts of its history, versions and
// aliases, what triggers it, and its logs. Each tab is a link (#/functions/NAME/TAB).

import { h, fill, api, ApiError, fnPath, count, ms, bytes, dollars, problem, badge, facts, table } from './ui.js';
import { lineChart } from './chart.js';

const TABS = [
  ['overview', 'Overview'],
  ['test', 'Test'],
  ['monitor', 'Monitor'],
  ['versions', 'Versions and aliases'],
  ['triggers', 'Triggers'],
  ['logs', 'Logs'],
];

export async function functionPage(main, name, tab, ctx) {
  const pane = h('section', { class: 'pane' }, h('p', { class: 'muted' }, 'Loading…'));
  const title = h('div', { class: 'titlebar' }, h('h1', {}, name));
  fill(main, title,
    h('nav', { class: 'tabs', role: 'tablist' }, TABS.map(([id, label]) =>
      h('a', { href: `#/functions/${encodeURIComponent(name)}/${id}`, role: 'tab', 'aria-selected': String(id === tab), class: id === tab ? 'on' : '' }, label))),
    pane);
  let fn;
  try {
    fn = await api('GET', fnPath(name));
  } catch (e) {
    fill(pane, problem(e), e instanceof ApiError && e.status === 404 ? h('p', {}, h('a', { href: '#/' }, 'Back to the functions')) : null);
    return;
  }
  title.append(badge(fn.Configuration.State));
  const view = { overview, test, monitor, versions, triggers, logs }[tab] || overview;
  try {
    await view(pane, name, fn, ctx);
  } catch (e) {
    fill(pane, problem(e));
  }
}

async function overview(pane, name, fn) {
  const c = fn.Configuration;
  const cost = await api('GET', `/_lamina/bill?function=${encodeURIComponent(name)}`).catch(() => null);
  const env = Object.entries(c.Environment?.Variables || {});
  const logging = c.LoggingConfig || {};
  fill(pane,
    h('div', { class: 'columns' },
      h('div', { class: 'card' }, h('h2', {}, 'Configuration'), facts([
        ['ARN', h('code', {}, c.FunctionArn)],
        ['Package', c.PackageType === 'Image' ? `image ${fn.Code?.ImageUri || ''}` : `zip, ${bytes(c.CodeSize)}`],
        c.Runtime && ['Runtime', c.Runtime],
        c.Handler && ['Handler', h('code', {}, c.Handler)],
        ['Architecture', (c.Architectures || ['x86_64']).join(', ')],
        ['Memory', `${c.MemorySize} MB`],
        ['Ephemeral storage', `${c.EphemeralStorage?.Size ?? 512} MB`],
        ['Timeout', `${c.Timeout} s`],
        ['Reserved concurrency', fn.Concurrency?.ReservedConcurrentExecutions ?? 'none (account pool)'],
        ['Role', c.Role],
        ['Layers', (c.Layers || []).map((l) => h('div', {}, h('code', {}, l.Arn))).concat((c.Layers || []).length ? [] : ['none'])],
        ['Logs', `${logging.LogFormat || 'Text'} → ${logging.LogGroup || `/aws/lambda/${name}`}`],
        c.VpcConfig?.SubnetIds?.length && ['VPC', `${c.VpcConfig.VpcId || ''} (${c.VpcConfig.SubnetIds.join(', ')})`],
        ['Last modified', new Date(c.LastModified).toLocaleString()],
        ['State', [badge(c.State), c.StateReason ? ` ${c.StateReason}` : '']],
        c.Description && ['Description', c.Description],
      ])),
      h('div', { class: 'stack' },
        h('div', { class: 'card' }, h('h2', {}, 'This month'), cost ? facts([
          ['Requests', count(cost.requests)],
          ['Compute', `${cost.gb_seconds} GB-s`],
          ['Cost at list price', h('strong', { class: 'cost' }, dollars(cost.total))],
        ]) : h('p', { class: 'muted' }, 'No bill.')),
        h('div', { class: 'card' }, h('h2', {}, 'Environment variables'),
          env.length ? table([['Name', ([k]) => h('code', {}, k)], ['Value', ([, v]) => h('code', {}, v)]], env) : h('p', { class: 'muted' }, 'None.')),
        Object.keys(fn.Tags || {}).length ? h('div', { class: 'card' }, h('h2', {}, 'Tags'),
          table([['Key', ([k]) => k], ['Value', ([, v]) => v]], Object.entries(fn.Tags))) : null)));
}

const SAMPLE = '{\n  "key1": "value1",\n  "key2": "value2"\n}';

function b64decode(s) {
  const bin = atob(s);
  return new TextDecoder().decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0)));
}

async function test(pane, name, fn, ctx) {
  // Per account: another account signing in on this browser does not see these events.
  const saved = `lamina.event.${ctx.me.account}.${name}`;
  const editor = h('textarea', { id: 'event', class: 'code', rows: 12, spellcheck: 'false', 'aria-label': 'Event JSON' });
  editor.value = localStorage.getItem(saved) ?? SAMPLE;
  const hint = h('div', { class: 'hint' });
  const qualifier = h('input', { id: 'qualifier', placeholder: '$LATEST', spellcheck: 'false', 'aria-label': 'Version or alias' });
  const run = h('button', { id: 'invoke', class: 'primary' }, 'Invoke');
  const result = h('div', { id: 'result' });
  const check = () => {
    try {
      JSON.parse(editor.value);
      fill(hint);
      run.disabled = false;
      return true;
    } catch (e) {
      fill(hint, h('span', { class: 'bad' }, `Not JSON: ${e.message}`));
      run.disabled = true;
      return false;
    }
  };
  editor.addEventListener('input', check);
  editor.addEventListener('keydown', (ev) => {
    if (ev.key === 'Tab') {
      ev.preventDefault();
      editor.setRangeText('  ', editor.selectionStart, editor.selectionEnd, 'end');
    } else if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      run.click();
    }
  });
  const format = h('button', { onclick: () => { if (check()) editor.value = JSON.stringify(JSON.parse(editor.value), null, 2); } }, 'Format');
  run.addEventListener('click', async () => {
    if (!check()) return;
    localStorage.setItem(saved, editor.value);
    run.disabled = true;
    fill(result, h('p', { class: 'muted' }, 'Invoking…'));
    const q = qualifier.value.trim();
    const started = performance.now();
    try {
      const resp = await api('POST', fnPath(name, `/invocations${q ? `?Qualifier=${encodeURIComponent(q)}` : ''}`), editor.value,
        { raw: true, headers: { 'x-amz-log-type': 'Tail' } });
      const elapsed = performance.now() - started;
      const text = await resp.text();
      if (!resp.ok) {
        let msg = text;
        try { msg = JSON.parse(text).message || JSON.parse(text).Message || text; } catch { /* the text as it came */ }
        throw new ApiError(resp.status, resp.headers.get('x-amzn-errortype') || '', msg);
      }
      const failed = resp.headers.get('x-amz-function-error');
      const log = resp.headers.get('x-amz-log-result');
      const logText = log ? b64decode(log) : '';
      const report = /Duration: ([\d.]+) ms.*?Billed Duration: (\d+) ms.*?Max Memory Used: (\d+) MB(?:.*?Init Duration: ([\d.]+) ms)?/s.exec(logText);
      let pretty = text;
      try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON: shown as it came */ }
      fill(result,
        h('div', { class: `outcome ${failed ? 'failed' : 'ok'}` },
          h('strong', {}, failed ? `Failed (${failed})` : 'Succeeded'),
          h('span', {}, `version ${resp.headers.get('x-amz-executed-version') || '$LATEST'}`),
          report ? h('span', {}, `duration ${report[1]} ms, billed ${report[2]} ms, ${report[3]} MB used${report[4] ? `, init ${report[4]} ms` : ''}`) : null,
          h('span', { class: 'muted' }, `round trip ${ms(elapsed)}`)),
        h('h3', {}, 'Response'),
        h('pre', { id: 'response', class: 'code' }, pretty || '(empty)'),
        h('h3', {}, 'Log output (the last 4 KB)'),
        h('pre', { id: 'log-tail', class: 'code log' }, logText || '(none)'));
    } catch (e) {
      fill(result, problem(e));
    } finally {
      run.disabled = false;
    }
  });
  fill(pane, h('div', { class: 'card' },
    h('h2', {}, 'Test event'),
    h('p', { class: 'muted' }, 'Sent as the event of a synchronous invocation. Ctrl+Enter invokes; the event is remembered in this browser.'),
    editor, hint,
    h('div', { class: 'actions' }, run, format, h('label', { for: 'qualifier', class: 'inline' }, 'Qualifier'), qualifier)),
  h('div', { class: 'card' }, result.childNodes.length ? result : fill(result, h('p', { class: 'muted' }, 'The response and the log output appear here.'))));
  check();
}

const PERIODS = [['1h', 'Last hour'], ['1d', 'Last day'], ['14d', 'Two weeks']];

async function monitor(pane, name, fn, ctx) {
  let period = sessionStorage.getItem('lamina.period') || '1h';
  const charts = h('div', { class: 'charts' }, h('p', { class: 'muted' }, 'Loading…'));
  const buttons = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Period' });
  const draw = async () => {
    fill(buttons, PERIODS.map(([p, label]) => h('button', { class: p === period ? 'on' : '', 'aria-pressed': String(p === period), onclick: () => { period = p; sessionStorage.setItem('lamina.period', p); draw(); } }, label)));
    const hist = await api('GET', `/_lamina/metrics/history/${encodeURIComponent(name)}?period=${period}`);
    const pts = hist.points;
    const total = (k) => pts.reduce((a, p) => a + (p[k] || 0), 0);
    const step = hist.step_s >= 3600 ? `${hist.step_s / 3600} h` : `${hist.step_s / 60} min`;
    fill(charts,
      h('div', { class: 'stats' },
        stat('Invocations', count(total('invocations'))),
        stat('Errors', count(total('errors')), total('errors') ? 'bad' : ''),
        stat('Throttles', count(total('throttles')), total('throttles') ? 'warn' : ''),
        stat('Cold starts', count(total('cold_starts'))),
        stat('GB-seconds', total('gb_seconds').toFixed(3))),
      h('p', { class: 'muted small' }, `One point per ${step}. Counts are per point; durations are the point's percentiles.`),
      h('div', { class: 'grid2' },
        lineChart('Invocations and errors', pts, [
          { key: 'invocations', label: 'Invocations', color: 'blue' },
          { key: 'errors', label: 'Errors', color: 'red' }], { id: 'chart-invocations' }),
        lineChart('Duration', pts, [
          { key: 'p50_ms', label: 'p50', color: 'blue' },
          { key: 'p99_ms', label: 'p99', color: 'amber' }], { id: 'chart-duration', format: ms }),
        lineChart('Throttles', pts, [
          { key: 'throttles', label: 'Throttles', color: 'amber' }], { id: 'chart-throttles' }),
        lineChart('Concurrent executions', pts, [
          { key: 'concurrency_max', label: 'Peak', color: 'green' }], { id: 'chart-concurrency' })));
    charts.dataset.period = period;
  };
  fill(pane, h('div', { class: 'titlebar sub' }, h('h2', {}, 'Metrics'), buttons), charts);
  await draw();
  const timer = setInterval(() => draw().catch(() => {}), 15000);
  ctx.onLeave(() => clearInterval(timer));
}

function stat(label, value, cls) {
  return h('div', { class: `stat ${cls || ''}` }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));
}

async function versions(pane, name) {
  const [vs, as] = await Promise.all([api('GET', fnPath(name, '/versions')), api('GET', fnPath(name, '/aliases'))]);
  fill(pane,
    h('div', { class: 'card' }, h('h2', {}, 'Versions'), table([
      ['Version', (v) => v.Version],
      ['Description', (v) => v.Description || '—'],
      ['Code SHA-256', (v) => h('code', { class: 'small' }, (v.CodeSha256 || '').slice(0, 16))],
      ['Memory', (v) => `${v.MemorySize} MB`, 'num'],
      ['Modified', (v) => new Date(v.LastModified).toLocaleString()],
    ], vs.Versions || [])),
    h('div', { class: 'card' }, h('h2', {}, 'Aliases'), table([
      ['Alias', (a) => a.Name],
      ['Version', (a) => a.FunctionVersion],
      ['Weights', (a) => Object.entries(a.RoutingConfig?.AdditionalVersionWeights || {}).map(([v, w]) => `${v}: ${Math.round(w * 100)}%`).join(', ') || '—'],
      ['Description', (a) => a.Description || '—'],
    ], as.Aliases || [], { empty: 'No aliases.' })));
}

async function triggers(pane, name) {
  const [urls, policy, configs] = await Promise.all([
    api('GET', `/2021-10-31/functions/${encodeURIComponent(name)}/urls`),
    api('GET', `/console/maybe${fnPath(name, '/policy')}`),
    api('GET', `/2019-09-25/functions/${encodeURIComponent(name)}/event-invoke-config/list`),
  ]);
  const url = (urls.FunctionUrlConfigs || [])[0];
  const dest = (configs.FunctionEventInvokeConfigs || [])[0];
  const rows = [];
  if (url) rows.push({ kind: 'Function URL', what: h('a', { href: url.FunctionUrl, target: '_blank', rel: 'noopener noreferrer' }, url.FunctionUrl), detail: `auth ${url.AuthType}` });
  const statements = policy ? JSON.parse(policy.Policy).Statement || [] : [];
  for (const s of statements) {
    const principal = [].concat(typeof s.Principal === 'string' ? s.Principal : (s.Principal?.Service || s.Principal?.AWS || '')).join(', ');
    const actions = [].concat(s.Action || []);
    const source = s.Condition?.ArnLike?.['AWS:SourceArn'] || s.Condition?.ArnEquals?.['AWS:SourceArn'] || '';
    const kind = principal === 'sns.amazonaws.com' ? 'SNS topic'
      : principal === 'apigateway.amazonaws.com' ? 'HTTP API'
        : principal === 'events.amazonaws.com' ? 'EventBridge' : `Permission for ${principal || 'a principal'}`;
    // The URL's own statements: the URL is listed already.
    const viaUrl = actions.includes('lambda:InvokeFunctionUrl') || String(s.Condition?.Bool?.['lambda:InvokedViaFunctionUrl']) === 'true';
    if (viaUrl && url) continue;
    rows.push({ kind, what: h('code', {}, source || '(any source)'), detail: `statement ${s.Sid}` });
  }
  fill(pane,
    h('div', { class: 'card' }, h('h2', {}, 'Triggers'),
      h('p', { class: 'muted' }, 'Function URLs, and the sources the resource policy allows to invoke this function (topics, HTTP API routes).'),
      table([['Kind', (r) => r.kind], ['Source', (r) => r.what], ['', (r) => h('span', { class: 'muted' }, r.detail)]], rows, { empty: 'Nothing triggers this function yet.' })),
    dest ? h('div', { class: 'card' }, h('h2', {}, 'Asynchronous invocation'), facts([
      ['Retries', dest.MaximumRetryAttempts ?? 2],
      ['Maximum event age', `${dest.MaximumEventAgeInSeconds ?? 21600} s`],
      ['On success', dest.DestinationConfig?.OnSuccess?.Destination || '—'],
      ['On failure', dest.DestinationConfig?.OnFailure?.Destination || '—'],
    ])) : null);
}

async function logs(pane, name, fn, ctx) {
  const out = h('div', { id: 'logs', class: 'code log tall', role: 'log' });
  const follow = h('input', { type: 'checkbox', id: 'follow', checked: true });
  let next = null;
  const add = (events) => {
    if (!events.length) return;
    out.querySelector('.placeholder')?.remove();
    const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    for (const e of events) {
      out.append(h('div', { class: 'line' }, h('span', { class: 'ts' }, new Date(e.timestamp).toISOString().slice(11, 23)), ' ', e.message.replace(/\n$/, '')));
    }
    // Bounded: the oldest lines go once the view holds 5,000.
    while (out.childElementCount > 5000) out.firstElementChild.remove();
    if (atEnd) out.scrollTop = out.scrollHeight;
  };
  const poll = async () => {
    const page = await api('GET', `/_lamina/logs/${encodeURIComponent(name)}?${next === null ? 'last=200' : `after=${next}`}`);
    add(page.events || []);
    if (page.next !== null && page.next !== undefined) next = page.next;
    else if (next === null) next = 0;
  };
  fill(pane, h('div', { class: 'card' },
    h('div', { class: 'titlebar sub' }, h('h2', {}, fn.Configuration.LoggingConfig?.LogGroup || `/aws/lambda/${name}`),
      h('label', { class: 'inline' }, follow, ' Follow'),
      h('button', { onclick: () => out.replaceChildren() }, 'Clear')),
    out));
  await poll();
  if (!out.childNodes.length) out.append(h('div', { class: 'muted placeholder' }, 'No log lines yet. Invoke the function to see its output here.'));
  out.scrollTop = out.scrollHeight;
  const timer = setInterval(() => { if (follow.checked) poll().catch(() => {}); }, 1000);
  ctx.onLeave(() => clearInterval(timer));
}
