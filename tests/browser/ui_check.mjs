// The dashboard in real headless Debian chromium (playwright-core drives /usr/bin/chromium; no
// browser is downloaded) against a gateway that tests/integration/test_ui.py started and fed.
// For every page: the figures on the page equal the API's, no console error (CSP violations
// included), axe-core finds no serious or critical violation; a screenshot is saved.
// Environment: SDOH_UI_URL, SDOH_OPS_TOKEN, SDOH_ADMIN_TOKEN, SDOH_ARTIFACTS_DIR, SDOH_UI_SUITE
// (operations | measures), SDOH_UI_EXPECT (JSON: the scenario's ids).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = require('axe-core').source;

const BASE = process.env.SDOH_UI_URL;
const OPS = process.env.SDOH_OPS_TOKEN;
const ADMIN = process.env.SDOH_ADMIN_TOKEN;
const ARTIFACTS = process.env.SDOH_ARTIFACTS_DIR;
const SUITE = process.env.SDOH_UI_SUITE ?? 'operations';
const EXPECT = JSON.parse(process.env.SDOH_UI_EXPECT ?? '{}');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let context;
let profile;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  profile = mkdtempSync(path.join(tmpdir(), 'sdoh-ui-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', headless: true, args: FLAGS, viewport: { width: 1280, height: 900 },
  });
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function apiGet(route, token = OPS) {
  const r = await fetch(`${BASE}/ops/api/v1${route}`, { headers: { Authorization: `Bearer ${token}` } });
  const text = await r.text();
  assert.equal(r.status, 200, `${route}: ${r.status} ${text}`);
  return JSON.parse(text);
}

/** A page with its console errors collected; `token` put in sessionStorage before it loads. */
async function open(name, token) {
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  if (token) await page.addInitScript((t) => sessionStorage.setItem('sdoh-ops-token', t), token);
  await page.goto(`${BASE}/ui/${name}`);
  if (token) {
    // The page either drew its figures or says why it could not: that reason is the failure.
    await page.waitForFunction(() => /^(Updated|Last refresh failed)/.test(document.getElementById('refresh-status').textContent));
    const status = await page.textContent('#refresh-status');
    assert.match(status, /^Updated/, `${name}: the page read the API`);
  }
  return { page, errors };
}

async function axe(page, what) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`), [],
    `${what}: axe-core finds no serious or critical violation`);
}

/** Screenshot, axe, and the console: nothing but `expected` (what the browser itself reports of
 *  an answer the page was meant to get, such as a refused replay's 422). */
async function finish({ page, errors }, name, expected = []) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
  await axe(page, name);
  assert.deepEqual(errors, expected, `${name}: no console errors`);
  await page.close();
}

async function texts(page) {
  return page.evaluate(() => Object.fromEntries(
    [...document.querySelectorAll('[data-key]')].map((e) => [e.dataset.key, e.textContent.trim()])));
}

const pct = (r) => `${(r * 100).toFixed(1)} %`;

if (SUITE === 'operations') {
  test('without a token the page asks for one, and the ops token signs in', async () => {
    const tab = await open('senders');
    await tab.page.waitForSelector('#sign-in:not([hidden])');
    await axe(tab.page, 'sign-in');
    await tab.page.fill('#token-input', 'not-a-token-anyone-has');
    await tab.page.click('#sign-in button[type=submit]');
    await tab.page.waitForFunction(() => document.getElementById('sign-in-error').textContent.length > 0);
    await tab.page.fill('#token-input', OPS);
    await tab.page.keyboard.press('Enter');
    await tab.page.waitForFunction(() => document.getElementById('refresh-status').textContent.startsWith('Updated'));
    assert.equal(await tab.page.isVisible('#sign-in'), false);
    await finish(tab, 'signed-in-senders');
  });

  test('keyboard: the first Tab reaches the skip link, which moves focus to the content', async () => {
    const tab = await open('deliveries', OPS);
    await tab.page.keyboard.press('Tab');
    assert.equal(await tab.page.evaluate(() => document.activeElement.className), 'skip-link');
    await tab.page.keyboard.press('Enter');
    assert.equal(await tab.page.evaluate(() => document.activeElement.id), 'main');
    assert.equal(await tab.page.getAttribute('nav a[data-page="deliveries"]', 'aria-current'), 'page');
    await tab.page.close();
  });

  test('senders: the answers by sender and code are the API\'s', async () => {
    const tab = await open('senders', OPS);
    const api = await apiGet('/throughput');
    const shown = await texts(tab.page);
    const totals = {};
    for (const m of api.minutes) for (const s of m.bySender) for (const [c, n] of Object.entries(s.codes)) {
      const key = `senders:${s.protocol}:${s.sender}:${c}`;
      totals[key] = (totals[key] ?? 0) + n;
    }
    assert.ok(Object.keys(totals).length >= 2, 'the scenario\'s FHIR and HL7 senders are there');
    assert.ok(Object.keys(totals).some((k) => k.startsWith('senders:hl7v2:') && k.endsWith(':AE')), 'the HL7 AE answers');
    assert.ok(Object.keys(totals).some((k) => k.startsWith('senders:fhir:clinic-a:200')), 'the clinic\'s Bundles');
    for (const [key, n] of Object.entries(totals)) assert.equal(shown[key], String(n), key);
    assert.equal(await tab.page.locator('figure.chart svg[role="img"]').count(), 1);
    await finish(tab, 'senders');
  });

  test('deliveries: figures are the API\'s; ops sees no replay, admin replays from the page', async () => {
    const ops = await open('deliveries', OPS);
    const d = await apiGet('/deliveries');
    const shown = await texts(ops.page);
    assert.equal(shown['outbox:backlog'], String(d.outbox.backlog));
    assert.equal(shown['outbound:waiting'], String(d.outbound.waiting));
    assert.equal(shown['outbound:given-up'], String(d.outbound.givenUp));
    assert.equal(shown['kafka:connected'], d.kafka.connected ? 'connected' : 'not connected');
    assert.equal(await ops.page.locator('button[data-dead-letter]').count(), 0, 'no replay for ops');
    assert.equal(shown[`deadletter:${EXPECT.replayableDeadLetter}:replayed`], 'no');
    await finish(ops, 'deliveries-ops');

    const admin = await open('deliveries', ADMIN);
    assert.equal(await admin.page.locator(`button[data-dead-letter="${EXPECT.replayableDeadLetter}"]`).count(), 1,
      'admin sees the replay button');
    await finish(admin, 'deliveries-admin');
  });

  test('deliveries: a dead letter is replayed from the page with the admin token', async () => {
    const tab = await open('deliveries', ADMIN);
    // The ORU without an OBX code is still bad: the page says so and it stays waiting.
    await tab.page.click(`button[data-dead-letter="${EXPECT.badDeadLetter}"]`);
    await tab.page.waitForFunction(() => document.getElementById('replay-outcome').textContent.includes('not replayed'));
    // The RRI^I12 that came before its referral now finds it.
    await tab.page.focus(`button[data-dead-letter="${EXPECT.replayableDeadLetter}"]`);
    await tab.page.keyboard.press('Enter');
    await tab.page.waitForFunction(() => /replayed: \d+ event/.test(document.getElementById('replay-outcome').textContent));
    const after = await apiGet(`/dead-letters/${EXPECT.replayableDeadLetter}`);
    assert.notEqual(after.replayedAt, null);
    await tab.page.waitForFunction((id) => !document.querySelector(`button[data-dead-letter="${id}"]`), EXPECT.replayableDeadLetter);
    const bad = await apiGet(`/dead-letters/${EXPECT.badDeadLetter}`);
    assert.equal(bad.replayedAt, null);
    await finish(tab, 'deliveries-after-replay',
      ['Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)']);
  });

  test('the API refuses the ops token for replays and payloads', async () => {
    const r = await fetch(`${BASE}/ops/api/v1/dead-letters/${EXPECT.badDeadLetter}/replay`,
      { method: 'POST', headers: { Authorization: `Bearer ${OPS}` } });
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('content-type'), 'application/problem+json');
    const p = await fetch(`${BASE}/ops/api/v1/dead-letters/${EXPECT.badDeadLetter}?payload=true`,
      { headers: { Authorization: `Bearer ${OPS}` } });
    assert.equal(p.status, 403);
    const none = await fetch(`${BASE}/ops/api/v1/health`);
    assert.equal(none.status, 401);
  });

  test('/ui is served from the binary with a strict CSP and revalidation', async () => {
    const r = await fetch(`${BASE}/ui/assets/app.js`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.match(r.headers.get('content-security-policy'), /default-src 'none'; script-src 'self'/);
    const again = await fetch(`${BASE}/ui/assets/app.js`, { headers: { 'If-None-Match': r.headers.get('etag') } });
    assert.equal(again.status, 304);
  });
}

if (SUITE === 'measures') {
  test('overview: health and the referral figures are the API\'s', async () => {
    const tab = await open('overview', OPS);
    const [h, r, e] = await Promise.all([apiGet('/health'), apiGet('/referrals'), apiGet('/equity')]);
    const shown = await texts(tab.page);
    assert.equal(shown['health:version'], h.version);
    const all = r.funnel.find((f) => f.agency === '*' && f.category === '*');
    assert.equal(shown['referrals:requested'], String(all.requested));
    assert.equal(shown['referrals:overdue'], String(r.overdue.length));
    assert.equal(shown['equity:overall-rate'], pct(e.overall.completionRate));
    assert.match(await tab.page.textContent('#measure-window'), new RegExp(`${r.window.measureWindowDays} days`));
    await finish(tab, 'overview');
  });

  test('referrals: the funnel, times and overdue are the API\'s', async () => {
    const tab = await open('referrals', OPS);
    const r = await apiGet('/referrals');
    const shown = await texts(tab.page);
    for (const f of r.funnel) {
      for (const step of ['requested', 'received', 'accepted', 'completed', 'rejected', 'failed', 'cancelled', 'open']) {
        assert.equal(shown[`funnel:${f.agency}:${f.category}:${step}`], String(f[step]), `${f.agency} ${f.category} ${step}`);
      }
    }
    for (const t of r.times) {
      assert.equal(shown[`times:${t.agency}:toAccept:count`], String(t.toAccept.count));
      assert.equal(shown[`times:${t.agency}:toComplete:count`], String(t.toComplete.count));
    }
    assert.ok(r.overdue.some((o) => o.referralId === EXPECT.overdueReferral), 'the WIC referral is overdue');
    for (const o of r.overdue) assert.equal(shown[`overdue:${o.referralId}`], o.referralId);
    await finish(tab, 'referrals');
  });

  test('equity: the table shows the gap and suppresses the small group', async () => {
    const tab = await open('equity', OPS);
    const e = await apiGet('/equity');
    const shown = await texts(tab.page);
    assert.equal(shown['equity:overall:referrals'], String(e.overall.referrals));
    assert.equal(shown['equity:overall:rate'], pct(e.overall.completionRate));
    const race = e.dimensions.find((d) => d.dimension === 'race');
    const small = race.groups.find((g) => g.group === EXPECT.suppressedRace);
    assert.equal(small.suppressed, true, 'the API suppresses the group under min_cell');
    for (const field of ['referrals', 'completed', 'completionRate']) {
      assert.equal(shown[`equity:race:${small.group}:${field}`], `<${e.minCell}`);
    }
    for (const d of e.dimensions) for (const g of d.groups.filter((x) => !x.suppressed)) {
      assert.equal(shown[`equity:${d.dimension}:${g.group}:referrals`], String(g.referrals));
      assert.equal(shown[`equity:${d.dimension}:${g.group}:completionRate`], pct(g.completionRate));
    }
    assert.ok(race.largestGap, 'a gap between groups');
    const highlighted = await tab.page.$$eval('tr.largest-gap [data-key$=":referrals"]', (cells) => cells.map((c) => c.dataset.key));
    assert.ok(highlighted.includes(`equity:race:${race.largestGap.group}:referrals`), 'the largest gap is highlighted');
    assert.ok(await tab.page.locator('figure.chart svg[role="img"]').count() >= 1);
    await finish(tab, 'equity');
  });

  test('a shorter period is asked of the API and its window shown', async () => {
    const tab = await open('equity', OPS);
    await tab.page.selectOption('#since', '30d');
    await Promise.all([tab.page.waitForURL(/since=30d/), tab.page.click('#period button[type=submit]')]);
    await tab.page.waitForFunction(() => document.getElementById('refresh-status').textContent.startsWith('Updated'));
    const e = await apiGet('/equity?since=30d');
    assert.equal(await tab.page.inputValue('#since'), '30d');
    assert.match(await tab.page.textContent('#measure-window'), new RegExp(`^Referrals released ${e.window.from.slice(0, 10)} to ${e.window.to.slice(0, 10)} \\(measure window: ${e.window.measureWindowDays} days\\)$`));
    assert.equal((await texts(tab.page))['equity:overall:referrals'], String(e.overall.referrals));
    await finish(tab, 'equity-30-days');
  });
}
