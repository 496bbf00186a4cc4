// The webhook load of bench/webhooks.sh, in two processes so that neither starves the other:
//
//   node bench/webhooks/load.mjs receiver --port PORT          (until SIGTERM)
//   node bench/webhooks/load.mjs clients --ws ws://127.0.0.1:PORT --whisperers N --churners N --duration S
//
// - `clients`: `--whisperers` connections, each subscribed to a private channel of its own,
//   send a client event about every 110 ms (just under Pusher's 10 per second per connection):
//   one `client_event` webhook each. The event's data carries `process.hrtime` at the send
//   (CLOCK_MONOTONIC, the same clock in every process of the machine). `--churners`
//   connections subscribe to a channel of their own and leave it every 500 ms, and once more
//   for good 4 s before the end: `channel_occupied`, and the `channel_vacated` of the last
//   leave. At the end it prints `{"whispers_sent": N, "refused": N}` (client events the
//   server refused with `pusher:error`).
// - `receiver`: answers every request 200, counts events by name, and takes each
//   client_event's latency from the client's send to the request's arrival (the server's
//   path, the webhook queue, the HTTP request), and its time since ringcast decided it
//   (arrival minus `time_ms`). At the end it prints one JSON line of counts and percentiles.
//
// The same load runs in both arms of the benchmark; only the server's webhook setting differs.

import { createHmac } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';

const [role, ...rest] = process.argv.slice(2);
const args = {};
for (let i = 0; i < rest.length; i += 2) args[rest[i].replace(/^--/, '')] = rest[i + 1];
const DURATION_MS = Number(args.duration ?? 12) * 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (role === 'receiver') {
  const received = {};
  const latencies = [];
  const sinceDecided = [];
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const now = process.hrtime.bigint();
      const wall = Date.now();
      requests++;
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      for (const e of body.events) {
        received[e.name] = (received[e.name] ?? 0) + 1;
        if (e.name === 'client_event') {
          latencies.push(Number(now - BigInt(JSON.parse(e.data).t)) / 1e6);
          sinceDecided.push(wall - body.time_ms);
        }
      }
      res.writeHead(200).end('{}');
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise((r) => server.listen(Number(args.port), '127.0.0.1', r));
  // Until SIGTERM: the benchmark stops it once the clients are done and the last webhooks in.
  await new Promise((r) => process.once('SIGTERM', r));
  server.close();
  const pct = (xs, p) => {
    xs.sort((a, b) => a - b);
    return xs.length ? xs[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))] : null;
  };
  console.log(
    JSON.stringify({
      requests,
      received,
      latency_ms: { p50: pct(latencies, 50), p99: pct(latencies, 99), max: latencies.at(-1) ?? null, n: latencies.length },
      since_decided_ms: { p50: pct(sinceDecided, 50), p99: pct(sinceDecided, 99), max: sinceDecided.at(-1) ?? null },
    }),
  );
  process.exit(0);
}

if (role !== 'clients') {
  console.error('usage: load.mjs receiver|clients ...');
  process.exit(2);
}

// The `ws` package of the engine's client tests (npm ci in engine/tests/js).
const require = createRequire(new URL('../../engine/tests/js/package.json', import.meta.url));
const WebSocket = require('ws');
const KEY = process.env.REVERB_APP_KEY;
const SECRET = process.env.REVERB_APP_SECRET;

/** Client events the server refused (pusher:error, e.g. 4301 when timers bunched up). */
let refused = 0;
function connect() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${args.ws}/app/${KEY}?protocol=7&client=js&version=8.6.0`, { perMessageDeflate: false });
    ws.on('error', reject);
    ws.on('message', (m) => {
      const f = JSON.parse(m.toString());
      if (f.event === 'pusher:connection_established') resolve({ ws, socketId: JSON.parse(f.data).socket_id });
      if (f.event === 'pusher:error') refused++;
    });
  });
}

const sign = (socketId, channel) => `${KEY}:${createHmac('sha256', SECRET).update(`${socketId}:${channel}`).digest('hex')}`;
const timers = [];
const all = [];
let sent = 0;
for (let i = 0; i < Number(args.whisperers ?? 100); i++) {
  const channel = `private-whisper-${i}`;
  const c = await connect();
  all.push(c);
  c.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel, auth: sign(c.socketId, channel) } }));
  timers.push(
    setInterval(() => {
      sent++;
      c.ws.send(JSON.stringify({ event: 'client-tick', channel, data: { t: String(process.hrtime.bigint()) } }));
    }, 110),
  );
}
const churners = [];
for (let i = 0; i < Number(args.churners ?? 20); i++) {
  const c = await connect();
  all.push(c);
  let on = false;
  const flip = () => {
    on = !on;
    c.ws.send(JSON.stringify({ event: on ? 'pusher:subscribe' : 'pusher:unsubscribe', data: { channel: `churn-${i}` } }));
  };
  churners.push({ flip, on: () => on });
  timers.push(setInterval(flip, 500));
}
await sleep(Math.max(0, DURATION_MS - 4000));
for (const t of timers) clearInterval(t);
for (const ch of churners) if (ch.on()) ch.flip();
await sleep(4000);
for (const c of all) c.ws.terminate();
console.log(JSON.stringify({ whispers_sent: sent, refused }));
process.exit(0);
