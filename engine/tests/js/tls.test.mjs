// TLS on ringcast's own port: a certificate authority and two server certificates made with the
// openssl command for this run, ringcast started with --tls-cert/--tls-key, and
// - pusher-js 8.6.0 over wss:// (in a process of its own with NODE_EXTRA_CA_CERTS, see
//   tls-pusher-js.mjs) on a public and a private channel, fed by the Pusher SDK 5.3.4 over
//   https:// (its `agent` trusting the test authority), whose queries answer over TLS too;
// - the handshake agrees ALPN http/1.1 even when h2 is offered first, and plain HTTP on the port
//   gets no answer and counts as a failed TLS handshake in /metrics;
// - SIGHUP swaps the certificate: handshakes after it present the new one, while a WebSocket
//   opened before it stays open and keeps receiving;
// - a certificate path that does not exist stops the start with one line naming it.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import PusherServer from 'pusher';
import WebSocket from 'ws';
import { STEP_TIMEOUT_MS, TEST_TIMEOUT_MS, withCleanups, within } from './helpers.mjs';
import { APP, freePort, ringcastBin, startRingcast } from './server.mjs';
import { eventually } from './support.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Runs openssl with `args` in `dir`. */
function openssl(dir, ...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, and server certificates `a` and `b` for localhost and 127.0.0.1 signed by it. */
function certificates() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ringcast-tls-'));
  const ext = path.join(dir, 'san.ext');
  execFileSync('sh', ['-c', `printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ${ext}`]);
  openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=ringcast test CA');
  for (const name of ['a', 'b']) {
    openssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=ringcast test ${name}`);
    openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key',
      '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', ext);
  }
  return dir;
}

/** The SHA-256 fingerprint of the certificate the server presents to a new handshake. */
function presented(port, ca, alpn = ['http/1.1']) {
  return within(
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ALPNProtocols: alpn }, () => {
        resolve({ fingerprint: s.getPeerCertificate().fingerprint256, alpn: s.alpnProtocol });
        s.end();
      });
      s.on('error', reject);
    }),
    'a TLS handshake',
  );
}

/** The fingerprint of a PEM file, as Node prints it. */
function fingerprintOf(file) {
  const out = execFileSync('openssl', ['x509', '-in', file, '-noout', '-fingerprint', '-sha256']).toString();
  return out.trim().split('=')[1];
}

describe('TLS on the server port', () => {
  let dir = null;
  let server = null;
  let ca = null;
  let metricsPort = null;
  before(async () => {
    metricsPort = await freePort();
    dir = certificates();
    copyFileSync(path.join(dir, 'a.pem'), path.join(dir, 'cert.pem'));
    copyFileSync(path.join(dir, 'a.key'), path.join(dir, 'key.pem'));
    ca = execFileSync('cat', [path.join(dir, 'ca.pem')]).toString();
    server = await startRingcast({
      workers: 2,
      args: [
        '--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem'),
        '--metrics-addr', `127.0.0.1:${metricsPort}`,
      ],
      env: { RINGCAST_LOG: 'info' },
    });
  });
  after(async () => {
    if (server) await server.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const it = (name, fn) =>
    test(name, { timeout: TEST_TIMEOUT_MS }, async () => {
      await withCleanups({}, fn, () => `\n--- ringcast output ---\n${server.output()}`);
    });
  const sdk = () =>
    new PusherServer({
      appId: APP.id,
      key: APP.key,
      secret: APP.secret,
      host: 'localhost',
      port: String(server.port),
      useTLS: true,
      agent: new https.Agent({ ca }),
      timeout: STEP_TIMEOUT_MS,
    });

  it('pusher-js over wss:// gets what the Pusher SDK sends over https://', async ({ defer }) => {
    const child = spawn(process.execPath, [path.join(here, 'tls-pusher-js.mjs'), String(server.port), APP.key, APP.secret], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem') },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    defer(() => child.kill());
    const lines = [];
    let buffered = '';
    child.stdout.on('data', (d) => {
      buffered += d.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop();
      lines.push(...parts);
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await eventually(() => lines.some((l) => l.startsWith('subscribed') || l.startsWith('error')), 'pusher-js to subscribe over wss');
    assert.ok(lines[0].startsWith('subscribed'), lines.join('\n'));
    const pusher = sdk();
    const info = await pusher.get({ path: '/channels', params: {} });
    assert.equal(info.status, 200);
    const body = await info.json();
    assert.deepEqual(Object.keys(body.channels).sort(), ['private-tls-orders', 'tls-news']);
    await pusher.trigger('tls-news', 'price', { cents: 1200 });
    await pusher.trigger('private-tls-orders', 'shipped', { id: 7 });
    await pusher.triggerBatch([{ channel: 'tls-news', name: 'done', data: '{}' }]);
    assert.equal(await within(exited, 'pusher-js to get every event'), 0, lines.join('\n'));
    const events = lines.slice(1).map((l) => JSON.parse(l));
    assert.deepEqual(events, [
      { channel: 'tls-news', event: 'price', data: { cents: 1200 } },
      { channel: 'private-tls-orders', event: 'shipped', data: { id: 7 } },
      { channel: 'tls-news', event: 'done', data: {} },
    ]);
  });

  it('the handshake agrees http/1.1 by ALPN, and plain text on the port gets no answer', async () => {
    const offered = await presented(server.port, ca, ['h2', 'http/1.1']);
    assert.equal(offered.alpn, 'http/1.1');
    const answer = await within(
      new Promise((resolve) => {
        const s = net.connect(server.port, '127.0.0.1', () => s.write('GET /up HTTP/1.1\r\nHost: x\r\n\r\n'));
        let got = '';
        s.on('data', (d) => (got += d.toString('latin1')));
        s.on('close', () => resolve(got));
        s.on('error', () => {});
      }),
      'the plain request to end',
    );
    assert.ok(!answer.includes('HTTP/1.1 200'), JSON.stringify(answer));
    // Metrics stay plain HTTP on their own listener.
    const scrape = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const failed = /^ringcast_handshake_failures_total\{reason="tls"\} (\d+)$/m.exec(scrape);
    assert.ok(failed && Number(failed[1]) >= 1, scrape);
  });

  it('SIGHUP swaps the certificate for new handshakes; an open connection stays', async ({ defer }) => {
    assert.equal((await presented(server.port, ca)).fingerprint, fingerprintOf(path.join(dir, 'a.pem')));
    const ws = new WebSocket(`wss://localhost:${server.port}/app/${APP.key}?protocol=7&client=js&version=8.6.0`, { ca });
    defer(() => ws.terminate());
    const frames = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await within(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 'wss to open');
    await eventually(() => frames.length >= 1, 'connection_established');
    ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'swap', auth: '' } }));
    await eventually(() => frames.some((f) => f.event === 'pusher_internal:subscription_succeeded'), 'subscription');

    copyFileSync(path.join(dir, 'b.pem'), path.join(dir, 'cert.pem'));
    copyFileSync(path.join(dir, 'b.key'), path.join(dir, 'key.pem'));
    process.kill(server.pid, 'SIGHUP');
    const b = fingerprintOf(path.join(dir, 'b.pem'));
    await eventually(async () => (await presented(server.port, ca)).fingerprint === b, 'a handshake to present certificate b');

    await sdk().trigger('swap', 'after', { n: 1 });
    await eventually(() => frames.some((f) => f.event === 'after'), 'the open connection to get an event after the swap');
    assert.equal(ws.readyState, WebSocket.OPEN);

    // A certificate that does not load is refused; the running one stays.
    copyFileSync(path.join(dir, 'a.key'), path.join(dir, 'key.pem'));
    process.kill(server.pid, 'SIGHUP');
    await eventually(() => server.output().includes('TLS certificate reload refused'), 'the refusal in the log');
    assert.equal((await presented(server.port, ca)).fingerprint, b);
  });
});

test('a certificate path that does not exist stops the start with one line', { timeout: TEST_TIMEOUT_MS }, async () => {
  const port = await freePort();
  const run = spawn(ringcastBin(), ['start', '--host', '127.0.0.1', '--port', String(port),
    '--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem'], {
    env: { ...process.env, REVERB_APP_ID: APP.id, REVERB_APP_KEY: APP.key, REVERB_APP_SECRET: APP.secret },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  run.stderr.on('data', (d) => (err += d.toString()));
  const code = await within(new Promise((resolve) => run.on('exit', resolve)), 'ringcast to exit');
  assert.equal(code, 1);
  assert.equal(err.trim().split('\n').length, 1, err);
  assert.match(err, /^ringcast: cannot read the TLS certificate \/nonexistent\/cert\.pem: /);
});
