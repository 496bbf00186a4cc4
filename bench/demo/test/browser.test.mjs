// The demo and the dashboard in a real browser: Debian's Chromium, driven by playwright-core
// (which downloads no browser of its own), against a real ringcast with the dashboard on.
//
// Two browser contexts are two users (each its own cookies and storage; Playwright gives the
// browser a fresh --user-data-dir in a temporary directory on every launch):
// - both see each other in the document's presence list, typing in one shows "typing" in the
//   other, an order update broadcast with the trigger script shows a toast to its user only,
//   and a sale adds a point to both users' charts;
// - the dashboard refuses a wrong secret, then signs in and shows the connections and the
//   channel list the two pages opened, the presence members, and its event creator reaches
//   the pages.
// Each page is checked by its DOM (never its pixels) and a screenshot of it is saved to
// SCREENSHOT_DIR (default target/browser-screenshots), whose path the test prints.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { startRingcast } from '../../../engine/tests/js/server.mjs';
import { startDemo } from '../server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..', '..');
const shots = path.resolve(process.env.SCREENSHOT_DIR || path.join(root, 'target', 'browser-screenshots'));
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];
const WAIT = { timeout: 10_000 };

let ringcast;
let demo;
let browser;
const pages = {};

async function screenshot(page, name) {
  mkdirSync(shots, { recursive: true });
  const file = path.join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
  return file;
}

/** A new browser context signed in to the demo as `name`. */
async function signIn(name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.log(`[${name}] page error: ${err.message}`));
  await page.goto(`${demo.url}/`);
  await page.getByRole('button', { name: `Sign in as ${name}` }).click();
  await page.locator('#connection-state[data-state="connected"]').waitFor(WAIT);
  return page;
}

async function viewers(page) {
  return page.locator('#viewers .viewer').evaluateAll((els) => els.map((e) => e.dataset.userId).sort());
}

async function points(page, selector) {
  return Number(await page.locator(selector).getAttribute('data-points'));
}

function trigger(...args) {
  return promisify(execFile)(process.execPath, [path.join(here, '..', 'trigger.mjs'), ...args], {
    env: {
      ...process.env,
      REVERB_APP_ID: ringcast.app.id,
      REVERB_APP_KEY: ringcast.app.key,
      REVERB_APP_SECRET: ringcast.app.secret,
      REVERB_HOST: ringcast.host,
      REVERB_PORT: String(ringcast.port),
    },
  });
}

describe('demo and dashboard in Chromium', () => {
  before(async () => {
    ringcast = await startRingcast({ workers: 2, args: ['--dashboard'] });
    demo = await startDemo({ app: ringcast.app, reverb: { host: ringcast.host, port: ringcast.port } });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
    console.log(`screenshots go to ${shots}`);
  });

  after(async () => {
    if (browser) await browser.close();
    if (demo) await demo.close();
    if (ringcast) await ringcast.stop();
  });

  test('two users: presence, typing, an order toast and a moving sales chart', { timeout: 60_000 }, async () => {
    pages.alice = await signIn('Alice');
    pages.bob = await signIn('Bob');
    const { alice, bob } = pages;

    await alice.waitForFunction(() => document.querySelectorAll('#viewers .viewer').length === 2, null, WAIT);
    await bob.waitForFunction(() => document.querySelectorAll('#viewers .viewer').length === 2, null, WAIT);
    assert.deepEqual(await viewers(alice), ['1', '2']);
    assert.deepEqual(await viewers(bob), ['1', '2']);

    await bob.locator('#editor').pressSequentially('Ship it', { delay: 20 });
    await alice.locator('#typing', { hasText: 'Bob is typing' }).waitFor(WAIT);
    assert.equal(await bob.locator('#typing').textContent(), '', 'nobody else is typing for Bob');

    // Echo subscribed the private order channel through /broadcasting/auth; wait until the
    // server confirmed it, or the broadcast could arrive before the subscription.
    await alice.waitForFunction(
      () => window.Echo.connector.pusher.channel('private-orders.1')?.subscribed === true,
      null,
      WAIT,
    );
    await trigger('order', '1', '1011', 'shipped');
    const toast = alice.locator('.toast', { hasText: '#1011' });
    await toast.waitFor(WAIT);
    assert.match(await toast.textContent(), /is now shipped/);
    assert.equal(await alice.locator('tr[data-order="1011"] td.status').textContent(), 'shipped');
    assert.equal(await bob.locator('.toast', { hasText: '#1011' }).count(), 0, "Bob does not get Alice's order");

    // Every sale adds a point to both users' charts as it happens.
    let total = 0;
    for (const [amount, product] of [['42.50', 'Keyboard'], ['18.00', 'Cable'], ['64.90', 'Webcam']]) {
      const before = await points(alice, '#sales-chart');
      await trigger('sale', amount, product);
      total += Number(amount);
      for (const page of [alice, bob]) {
        await page.waitForFunction((n) => Number(document.querySelector('#sales-chart').dataset.points) === n + 1, before, WAIT);
      }
      assert.equal(await alice.locator('#sales-chart circle.sale').count(), before + 1);
    }
    assert.equal(await alice.locator('#sales-total').textContent(), `$${total.toFixed(2)}`);

    await screenshot(alice, 'demo-alice');
    await screenshot(bob, 'demo-bob');
  });

  test('the dashboard refuses a wrong secret, then shows what the pages opened', { timeout: 60_000 }, async () => {
    assert.ok(pages.alice && pages.bob, 'the demo test ran first');
    const context = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
    const page = await context.newPage();
    page.on('pageerror', (err) => console.log(`[dashboard] page error: ${err.message}`));
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.goto(`${ringcast.httpUrl}/dashboard`);
    assert.equal(new URL(page.url()).pathname, '/dashboard/', 'redirected to the page');

    const form = page.locator('#login-form');
    await form.locator('[name=app_id]').fill(ringcast.app.id);
    await form.locator('[name=key]').fill(ringcast.app.key);
    await form.locator('[name=secret]').fill('not-the-secret');
    await form.getByRole('button', { name: 'Sign in' }).click();
    const error = page.locator('#login-error');
    await error.waitFor({ state: 'visible', ...WAIT });
    assert.match(await error.textContent(), /401/);
    assert.equal(await page.locator('#dashboard').isVisible(), false);
    assert.equal(sockets.length, 0, 'no WebSocket without valid credentials');
    await screenshot(page, 'dashboard-refused');

    await form.locator('[name=secret]').fill(ringcast.app.secret);
    await form.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#status[data-state="live"]').waitFor(WAIT);
    assert.equal(await form.locator('[name=secret]').inputValue(), '', 'the secret is not left in the form');

    // Alice's and Bob's Echo connections, and the dashboard's own.
    await page.locator('#connections', { hasText: /^3$/ }).waitFor(WAIT);
    const expected = {
      'presence-documents.1': '2',
      'private-orders.1': '1',
      'private-orders.2': '1',
      sales: '2',
    };
    await page.waitForFunction((n) => document.querySelectorAll('#channels tbody tr').length === n, Object.keys(expected).length, WAIT);
    const rows = await page.locator('#channels tbody tr').evaluateAll((trs) =>
      Object.fromEntries(trs.map((tr) => [tr.dataset.channel, tr.querySelector('td.subs').textContent])),
    );
    assert.deepEqual(rows, expected);
    assert.equal(await page.locator('#channel-count').textContent(), '4');
    const members = await page
      .locator('.presence[data-channel="presence-documents.1"] li')
      .evaluateAll((lis) => lis.map((li) => li.dataset.user));
    assert.deepEqual(members, ['1', '2']);
    assert.match(await page.locator('#nodes tbody tr').first().textContent(), /this node/);

    await page.locator('#channel-filter').fill('orders');
    assert.deepEqual(
      await page.locator('#channels tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.channel)),
      ['private-orders.1', 'private-orders.2'],
    );
    await page.locator('#channel-filter').fill('');

    const before = await points(pages.alice, '#sales-chart');
    const creator = page.locator('#event-form');
    await creator.locator('[name=channel]').fill('sales');
    await creator.locator('[name=event]').fill('App\\Events\\SaleRecorded');
    await creator.locator('[name=data]').fill('{"sale": {"amount": 19.99, "product": "Cable"}}');
    await creator.getByRole('button', { name: 'Send' }).click();
    await page.locator('#event-result.ok').waitFor(WAIT);
    await pages.alice.waitForFunction((n) => Number(document.querySelector('#sales-chart').dataset.points) === n + 1, before, WAIT);

    // Bob leaves: his connection closes, the figures follow.
    await pages.bob.context().close();
    await page.locator('#connections', { hasText: /^2$/ }).waitFor(WAIT);
    await page.waitForFunction(
      () => [...document.querySelectorAll('.presence li')].map((li) => li.dataset.user).join() === '1',
      null,
      WAIT,
    );
    const closes = await page.locator('#closes tbody tr[data-code]').evaluateAll((trs) =>
      trs.map((tr) => [tr.dataset.code, tr.querySelector('td.count').textContent]),
    );
    assert.deepEqual(closes, [['1001', '1']], 'a closed tab says it is going away');
    assert.match(await page.locator('#recent-closes li').first().textContent(), /1001 Going away/);

    await page.waitForFunction(() => Number(document.querySelector('#connections-chart').dataset.points) >= 5, null, WAIT);
    assert.ok(sockets.some((u) => u.includes(`/app/${ringcast.app.key}`)), 'the page is a Pusher client of ringcast');
    await screenshot(page, 'dashboard');
  });
});
