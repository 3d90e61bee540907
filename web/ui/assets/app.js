// The dashboard: reads /ops/api/v1 with the token this tab was given, draws the page its path
// names, and reads again every 10 seconds. Figures are written into tables (the charts show the
// same numbers); each figure carries data-key so that a test can compare it with the API.
import { barChart, stackedColumns } from './charts.js';

const API = '/ops/api/v1';
const REFRESH_MS = 10000;
const TOKEN_KEY = 'sdoh-ops-token';
const PAGES = {
  overview: { title: 'Overview', draw: drawOverview, measures: true },
  referrals: { title: 'Referrals', draw: drawReferrals, measures: true },
  equity: { title: 'Equity', draw: drawEquity, measures: true },
  deliveries: { title: 'Deliveries', draw: drawDeliveries },
  senders: { title: 'Senders', draw: drawSenders },
};

const page = PAGES[location.pathname.split('/')[2]] ? location.pathname.split('/')[2] : 'overview';
let role = 'none';
// The measures' period (the API's `since`): the whole measure window unless the URL says.
const SINCE = ['30d', '90d', '365d'].includes(new URLSearchParams(location.search).get('since'))
  ? new URLSearchParams(location.search).get('since') : '';
const since = SINCE ? `?since=${SINCE}` : '';
let timer = null;
let lastReplay = '';  // what the last replay from this page did, shown until the next one

class SignInNeeded extends Error {}
class NotConfigured extends Error {}

// --- the API ------------------------------------------------------------------------------

async function api(path, options = {}) {
  const headers = { Accept: 'application/json', ...(options.headers ?? {}) };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(API + path, { ...options, headers });
  const body = await response.json().catch(() => null);
  if (response.status === 401) throw new SignInNeeded();
  if (!response.ok) {
    const detail = body && (body.detail || body.title) ? body.detail || body.title : response.statusText;
    throw new Error(`${path}: ${response.status} ${detail}`);
  }
  return body;
}

// --- small DOM helpers ---------------------------------------------------------------------

function h(name, attrs = {}, ...children) {
  const node = document.createElement(name);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** A table: caption, columns [{label, num}], rows of cells ({text, key, num, header} or a string). */
function table(caption, columns, rows, { rowClass } = {}) {
  return h('table', {},
    h('caption', { text: caption }),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null, text: c.label })))),
    h('tbody', {}, rows.length === 0
      ? h('tr', {}, h('td', { colspan: columns.length, class: 'muted', text: 'None.' }))
      : rows.map((cells, i) => h('tr', { class: rowClass ? rowClass(i) : null },
        cells.map((c, k) => {
          const cell = typeof c === 'object' && c !== null && !(c instanceof Node) ? c : { text: c };
          const tag = cell.header ? 'th' : 'td';
          const num = cell.num ?? columns[k].num;
          return h(tag, { scope: cell.header ? 'row' : null, class: num ? 'num' : null, 'data-key': cell.key },
            cell.node ?? (cell.text ?? ''));
        })))));
}

function cards(items) {
  return h('ul', { class: 'cards' }, items.map((i) =>
    h('li', {}, h('span', { class: 'label', text: i.label }),
      h('span', { class: `value ${i.class ?? ''}`, 'data-key': i.key, text: i.value }))));
}

const fmt = {
  count: (n) => (n === null || n === undefined ? '—' : String(n)),
  rate: (r) => (r === null || r === undefined ? '—' : `${(r * 100).toFixed(1)} %`),
  gap: (g) => (g === null || g === undefined ? '—' : `${g > 0 ? '+' : g < 0 ? '−' : '±'}${Math.abs(g * 100).toFixed(1)} pts`),
  days: (d) => (d === null || d === undefined ? '—' : `${d.toFixed(1)} d`),
  duration(s) {
    if (s === null || s === undefined) return '—';
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} d`;
  },
  time: (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '—'),
  day: (iso) => (iso ? iso.slice(0, 10) : '—'),
};

function section(title, ...children) {
  return h('section', { 'aria-labelledby': slug(title) }, h('h2', { id: slug(title), text: title }), ...children);
}

function slug(text) {
  return `s-${text.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
}

function failure(what, error) {
  return h('p', { class: 'error', role: 'alert', text: `${what} could not be read: ${error.message}` });
}

function showWindow(data) {
  const w = data && data.window;
  if (!w) return;
  document.getElementById('measure-window').textContent =
    `Referrals released ${fmt.day(w.from)} to ${fmt.day(w.to)} (measure window: ${w.measureWindowDays} days)`;
}

// --- pages ----------------------------------------------------------------------------------

async function drawOverview() {
  const [health, deliveries, throughput, referrals, equity] = await Promise.allSettled([
    api('/health'), api('/deliveries'), api('/throughput'), api(`/referrals${since}`), api(`/equity${since}`)]);
  const out = [];
  let healthSection;
  if (health.status === 'fulfilled') {
    const hh = health.value;
    healthSection = section('Health',
      cards([
        { label: 'Readiness', value: hh.ready ? 'ready' : hh.status, class: hh.ready ? 'ok' : 'bad', key: 'health:status' },
        { label: 'Version', value: hh.version, key: 'health:version' },
        { label: 'Mode', value: hh.mode, key: 'health:mode' },
        { label: 'Up for', value: fmt.duration(hh.uptimeSeconds), key: 'health:uptime' },
      ]),
      table('Readiness checks', [{ label: 'Check' }, { label: 'State' }, { label: 'Detail' }],
        hh.checks.map((c) => [{ text: c.name, header: true },
          { node: h('span', { class: c.ok ? 'ok' : 'bad', text: c.ok ? 'ok' : 'failing' }), key: `check:${c.name}` },
          c.detail])));
  } else healthSection = failure('Health', health.reason);
  const numbers = [];
  if (deliveries.status === 'fulfilled') {
    const d = deliveries.value;
    numbers.push({ label: 'Events waiting for Kafka', value: fmt.count(d.outbox.backlog), key: 'outbox:backlog' },
      { label: 'Dead letters waiting', value: fmt.count(d.deadLetters.waiting), key: 'deadletters:waiting',
        class: d.deadLetters.waiting > 0 ? 'warn' : '' });
  }
  if (throughput.status === 'fulfilled') {
    const total = throughput.value.minutes.reduce((n, m) => n + m.bySender.reduce(
      (k, s) => k + Object.values(s.codes).reduce((a, b) => a + b, 0), 0), 0);
    numbers.push({ label: 'Messages answered, last hour', value: String(total), key: 'throughput:total' });
  }
  if (referrals.status === 'fulfilled') {
    const r = referrals.value;
    showWindow(r);
    const all = r.funnel.find((f) => f.agency === '*' && f.category === '*');
    numbers.push({ label: 'Referrals in the window', value: fmt.count(all ? all.requested : 0), key: 'referrals:requested' },
      { label: 'Overdue referrals', value: String(r.overdue.length), key: 'referrals:overdue',
        class: r.overdue.length > 0 ? 'warn' : '' },
      { label: 'Held referrals', value: String(r.held.reduce((n, x) => n + x.count, 0)), key: 'referrals:held' });
  }
  if (equity.status === 'fulfilled') {
    numbers.push({ label: 'Completion rate, all families', value: fmt.rate(equity.value.overall.completionRate), key: 'equity:overall-rate' });
  }
  out.push(section('At a glance', cards(numbers)), healthSection);
  for (const [what, r] of [['Deliveries', deliveries], ['Throughput', throughput], ['Referral measures', referrals], ['Equity measures', equity]]) {
    if (r.status === 'rejected') {
      if (r.reason instanceof SignInNeeded) throw r.reason;
      out.push(failure(what, r.reason));
    }
  }
  return out;
}

async function drawReferrals() {
  const [r, held] = await Promise.all([api(`/referrals${since}`), api('/held')]);
  showWindow(r);
  const steps = ['requested', 'received', 'accepted', 'completed', 'rejected', 'failed', 'cancelled', 'open'];
  const label = (v) => (v === '*' ? 'all' : v);
  const total = r.funnel.find((f) => f.agency === '*' && f.category === '*');
  const out = [];
  if (total) {
    out.push(barChart({
      caption: 'The funnel, all agencies and needs',
      label: `Referrals: ${steps.slice(0, 4).map((s) => `${total[s]} ${s}`).join(', ')}`,
      rows: steps.slice(0, 4).map((s) => ({ label: s, value: total[s], text: String(total[s]) })),
    }));
  }
  out.push(section('Funnel by agency and need',
    table('Referrals released to each agency in the window, by the furthest step reached',
      [{ label: 'Agency' }, { label: 'Need' }, ...steps.map((s) => ({ label: s, num: true }))],
      r.funnel.map((f) => [{ text: label(f.agency), header: true }, label(f.category),
        ...steps.map((s) => ({ text: fmt.count(f[s]), key: `funnel:${f.agency}:${f.category}:${s}` }))]))));
  out.push(section('Time to accept and to complete',
    table('Per agency, from the referral\'s release (median and 90th percentile)',
      [{ label: 'Agency' }, { label: 'Accepted', num: true }, { label: 'Median to accept', num: true },
        { label: '90 % accepted within', num: true }, { label: 'Completed', num: true },
        { label: 'Median to complete', num: true }, { label: '90 % completed within', num: true }],
      r.times.map((t) => [{ text: label(t.agency), header: true },
        { text: fmt.count(t.toAccept.count), key: `times:${t.agency}:toAccept:count` },
        { text: fmt.duration(t.toAccept.medianSeconds), key: `times:${t.agency}:toAccept:median` },
        fmt.duration(t.toAccept.p90Seconds),
        { text: fmt.count(t.toComplete.count), key: `times:${t.agency}:toComplete:count` },
        { text: fmt.duration(t.toComplete.medianSeconds), key: `times:${t.agency}:toComplete:median` },
        fmt.duration(t.toComplete.p90Seconds)]))));
  out.push(section('Overdue',
    table(`${r.overdue.length} referral(s) past their agency's SLA`,
      [{ label: 'Referral' }, { label: 'Agency' }, { label: 'Need' }, { label: 'Status' },
        { label: 'Released' }, { label: 'Due' }, { label: 'Overdue by', num: true }],
      r.overdue.map((o) => [{ text: o.referralId, header: true, key: `overdue:${o.referralId}` }, o.agency, o.category,
        o.status, fmt.time(o.releasedAt), fmt.time(o.dueAt), fmt.duration(o.overdueSeconds)]))));
  out.push(section('Held by the gateway',
    table('Held referrals by reason', [{ label: 'Reason' }, { label: 'Referrals', num: true }],
      r.held.map((x) => [{ text: x.reason, header: true }, { text: String(x.count), key: `held:${x.reason}` }])),
    table('Each held referral (longest held first)',
      [{ label: 'Referral' }, { label: 'Reason' }, { label: 'Need' }, { label: 'Sender' }, { label: 'Held since' }],
      held.referrals.map((x) => [{ text: x.referralId, header: true }, x.reason, x.category, x.sender, fmt.time(x.since)]))));
  return out;
}

async function drawEquity() {
  const e = await api(`/equity${since}`);
  showWindow(e);
  const suppressed = `<${e.minCell}`;
  const out = [section('All families',
    cards([
      { label: 'Referrals', value: fmt.count(e.overall.referrals), key: 'equity:overall:referrals' },
      { label: 'Closed', value: fmt.count(e.overall.closed), key: 'equity:overall:closed' },
      { label: 'Completed', value: fmt.count(e.overall.completed), key: 'equity:overall:completed' },
      { label: 'Completion rate', value: fmt.rate(e.overall.completionRate), key: 'equity:overall:rate' },
      { label: 'Median days to close', value: fmt.days(e.overall.medianDaysToClose), key: 'equity:overall:days' },
    ]),
    h('p', { class: 'note', text: `Groups with fewer than ${e.minCell} referrals are suppressed (shown as "${suppressed}") so that no family can be singled out.` }))];
  const names = { race: 'Race', ethnicity: 'Ethnicity', language: 'Preferred language', zip3: '3-digit ZIP' };
  for (const d of e.dimensions) {
    const title = names[d.dimension] ?? d.dimension;
    const inText = d.dimension === 'zip3' ? title : title.toLowerCase();
    // No group is highlighted when every shown group is at the overall rate.
    const largest = d.largestGap && d.largestGap.gapVsOverall !== 0 ? d.largestGap.group : null;
    const cell = (g, field, format) => ({
      text: g.suppressed ? suppressed : format(g[field]),
      key: `equity:${d.dimension}:${g.group}:${field}`,
    });
    const groupCell = (g) => ({
      header: true,
      node: h('span', {}, g.label, g.group === largest ? h('span', { class: 'badge', text: 'largest gap' }) : null),
    });
    out.push(section(title,
      table(`Completion by ${inText}, against the overall rate of ${fmt.rate(e.overall.completionRate)}`,
        [{ label: 'Group' }, { label: 'Referrals', num: true }, { label: 'Closed', num: true },
          { label: 'Completed', num: true }, { label: 'Completion rate', num: true },
          { label: 'Median days to close', num: true }, { label: 'Gap vs overall', num: true }],
        d.groups.map((g) => [groupCell(g), cell(g, 'referrals', fmt.count), cell(g, 'closed', fmt.count),
          cell(g, 'completed', fmt.count), cell(g, 'completionRate', fmt.rate),
          cell(g, 'medianDaysToClose', fmt.days), cell(g, 'gapVsOverall', fmt.gap)]),
        { rowClass: (i) => (d.groups[i].group === largest ? 'largest-gap' : null) }),
      barChart({
        caption: `Completion rate by ${inText}`,
        label: d.groups.map((g) => `${g.label}: ${g.suppressed ? `suppressed, fewer than ${e.minCell}` : fmt.rate(g.completionRate)}`).join('; '),
        rows: d.groups.map((g) => ({
          label: g.label,
          value: g.suppressed ? null : g.completionRate,
          text: g.suppressed ? `suppressed (${suppressed})` : fmt.rate(g.completionRate),
          highlight: g.group === largest,
        })),
        max: 1,
        reference: e.overall.completionRate ?? undefined,
        referenceLabel: `overall ${fmt.rate(e.overall.completionRate)}`,
      })));
  }
  return out;
}

async function drawDeliveries() {
  const [d, letters] = await Promise.all([api('/deliveries'), api('/dead-letters?limit=50&all=true')]);
  const admin = role === 'admin';
  const outcome = h('p', { id: 'replay-outcome', role: 'status' });
  const replay = (id) => async (event) => {
    event.target.disabled = true;
    try {
      const r = await api(`/dead-letters/${encodeURIComponent(id)}/replay`, { method: 'POST' });
      outcome.textContent = `Dead letter ${id}: ${r.outcome}`;
    } catch (e) {
      outcome.textContent = `Dead letter ${id} was not replayed: ${e.message}`;
    }
    lastReplay = outcome.textContent;
    await refresh();
  };
  outcome.textContent = lastReplay;
  return [
    section('Outbox (events waiting for Kafka)',
      cards([
        { label: 'Backlog', value: fmt.count(d.outbox.backlog), key: 'outbox:backlog' },
        { label: 'Oldest waiting', value: fmt.duration(d.outbox.oldestUndeliveredAgeSeconds), key: 'outbox:oldest' },
        { label: 'Delivered, last hour', value: fmt.count(d.outbox.deliveredLastHour), key: 'outbox:delivered' },
        { label: 'Delivery lag, median', value: fmt.duration(d.outbox.lagSeconds.p50), key: 'outbox:p50' },
        { label: 'Delivery lag, 99th percentile', value: fmt.duration(d.outbox.lagSeconds.p99), key: 'outbox:p99' },
      ])),
    section('Kafka',
      h('dl', { class: 'facts' },
        h('dt', { text: 'State' }), h('dd', { class: d.kafka.connected ? 'ok' : 'bad', 'data-key': 'kafka:connected', text: d.kafka.connected ? 'connected' : 'not connected' }),
        h('dt', { text: 'Brokers' }), h('dd', { text: d.kafka.brokers + (d.kafka.embedded ? ' (embedded development broker)' : '') }),
        h('dt', { text: 'Last error' }), h('dd', { text: d.kafka.lastError ?? 'none' }))),
    section('Answers to HL7 clinics (RRI^I12)',
      cards([
        { label: 'Waiting', value: fmt.count(d.outbound.waiting), key: 'outbound:waiting' },
        { label: 'Being retried', value: fmt.count(d.outbound.retrying), key: 'outbound:retrying' },
        { label: 'Oldest waiting', value: fmt.duration(d.outbound.oldestWaitingAgeSeconds), key: 'outbound:oldest' },
        { label: 'Given up', value: fmt.count(d.outbound.givenUp), key: 'outbound:given-up' },
      ])),
    section('Dead letters',
      h('p', {}, `${letters.waiting} waiting for an operator. `,
        admin ? 'Replay one once its cause is fixed.' : 'Replaying needs the admin token.'),
      outcome,
      table('The 50 most recent dead letters',
        [{ label: 'Received' }, { label: 'Stage' }, { label: 'From' }, { label: 'Message' }, { label: 'Why' },
          { label: 'Replayed' }, ...(admin ? [{ label: 'Action' }] : [])],
        letters.deadLetters.map((l) => [
          { text: fmt.time(l.createdAt), header: true }, l.stage, `${l.source.protocol} ${l.source.sender}`,
          `${l.source.messageType} ${l.source.messageId}`, l.error.text,
          { text: l.replayedAt ? `${fmt.time(l.replayedAt)}: ${l.replayOutcome ?? ''}` : 'no', key: `deadletter:${l.deadLetterId}:replayed` },
          ...(admin ? [{ node: l.replayedAt ? h('span', { class: 'muted', text: 'done' })
            : h('button', { type: 'button', id: `replay-${l.deadLetterId}`, 'data-dead-letter': l.deadLetterId,
              'aria-label': `Replay the dead letter of ${l.source.messageType} ${l.source.messageId}`, onclick: replay(l.deadLetterId) }, 'Replay') }] : [])]))),
  ];
}

async function drawSenders() {
  const t = await api('/throughput');
  const codes = [...new Set(t.minutes.flatMap((m) => m.bySender.flatMap((s) => Object.keys(s.codes))))].sort();
  const columns = t.minutes.map((m) => {
    const values = {};
    for (const s of m.bySender) for (const [c, n] of Object.entries(s.codes)) values[c] = (values[c] ?? 0) + n;
    return { label: m.minute.slice(11, 16), values };
  });
  const senders = new Map();
  for (const m of t.minutes) for (const s of m.bySender) {
    const key = `${s.protocol} ${s.sender}`;
    const row = senders.get(key) ?? { protocol: s.protocol, sender: s.sender, codes: {} };
    for (const [c, n] of Object.entries(s.codes)) row.codes[c] = (row.codes[c] ?? 0) + n;
    senders.set(key, row);
  }
  const total = columns.reduce((n, c) => n + Object.values(c.values).reduce((a, b) => a + b, 0), 0);
  return [
    stackedColumns({
      caption: 'Answers per minute, last hour, by ACK code or HTTP status',
      label: `${total} answers in the last hour: ${codes.map((c) => `${columns.reduce((n, col) => n + (col.values[c] ?? 0), 0)} ${c}`).join(', ') || 'none'}`,
      columns, series: codes.map((c) => ({ key: c, label: c })),
    }),
    section('By sender, last hour',
      table('Answers by sender and code (HL7 ACK codes; HTTP statuses for FHIR)',
        [{ label: 'Sender' }, { label: 'Protocol' }, ...codes.map((c) => ({ label: c, num: true })), { label: 'Total', num: true }],
        [...senders.values()].map((s) => [{ text: s.sender, header: true }, s.protocol,
          ...codes.map((c) => ({ text: String(s.codes[c] ?? 0), key: `senders:${s.protocol}:${s.sender}:${c}` })),
          String(Object.values(s.codes).reduce((a, b) => a + b, 0))]))),
  ];
}

// --- refresh, sign-in ------------------------------------------------------------------------

async function refresh() {
  const content = document.getElementById('content');
  const status = document.getElementById('refresh-status');
  const focused = document.activeElement && document.activeElement.id;
  try {
    if (role === 'none') {
      const access = await api('/access');
      role = access.role;
      if (role === 'none' && !access.open && !access.tokensConfigured) throw new NotConfigured();
    }
    if (role === 'none') throw new SignInNeeded();
    const nodes = await PAGES[page].draw();
    content.replaceChildren(...nodes);
    status.textContent = `Updated ${new Date().toISOString().slice(11, 19)} UTC; refreshes every ${REFRESH_MS / 1000} s`;
    document.getElementById('sign-in').hidden = true;
    document.getElementById('sign-out').hidden = !sessionStorage.getItem(TOKEN_KEY);
  } catch (e) {
    if (e instanceof NotConfigured) {
      content.replaceChildren(h('p', { class: 'error', role: 'alert',
        text: 'This gateway serves its ops API only with a token, and none is configured: its operator sets ops.token (and admin.token) in its configuration.' }));
      status.textContent = 'Not configured';
      stop();
      return;
    }
    if (e instanceof SignInNeeded) {
      content.replaceChildren();
      role = 'none';
      document.getElementById('sign-in').hidden = false;
      status.textContent = 'Sign in to see the figures';
      stop();
      return;
    }
    status.textContent = `Last refresh failed (${new Date().toISOString().slice(11, 19)} UTC): ${e.message}`;
  }
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
}

function stop() {
  if (timer) clearInterval(timer);
  timer = null;
}

function start() {
  stop();
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

function setUp() {
  document.getElementById('page-title').textContent = PAGES[page].title;
  if (PAGES[page].measures) {
    document.getElementById('period').hidden = false;
    document.getElementById('since').value = SINCE;
  }
  document.title = `${PAGES[page].title} · sdoh-gateway dashboard`;
  for (const a of document.querySelectorAll('nav a[data-page]')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
  }
  document.getElementById('sign-in').addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = document.getElementById('token-input').value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    role = 'none';
    try {
      role = (await api('/access')).role;
      if (role === 'none') throw new SignInNeeded();
      document.getElementById('sign-in-error').textContent = '';
      document.getElementById('token-input').value = '';
      start();
      document.getElementById('main').focus();
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      document.getElementById('sign-in-error').textContent =
        e instanceof SignInNeeded ? 'That token is not one this gateway knows.' : e.message;
    }
  });
  document.getElementById('sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    role = 'none';
    location.reload();
  });
  start();
}

setUp();
