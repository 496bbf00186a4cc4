// A webhook receiver for the tests: an HTTP server that checks every request it gets with both
// Pusher server SDKs' own validation, the npm `pusher` package's `webhook().isValid()` and the
// PyPI `pusher` package's `validate_webhook` (webhook-validator.py, in the virtualenv that
// .ci/test makes), each also with a wrong secret, which must refuse it. It can answer 500 to
// the first N requests, hang (never answer) while told to, to test retries and timeouts, or
// hold its answers until released, so that a test knows what its sender queued meanwhile.
//
// `events` are the events of the requests it answered 200, in arrival order, each with the
// arrival time (`at`, ms) and the request's `time_ms`; `requests` every request with both
// SDKs' verdicts; `hanging()` the requests it never answered whose connection is still open
// (the sender is still waiting for them).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import PusherServer from 'pusher';
import { eventually } from './support.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..', '..');

/** The Python with the PyPI `pusher` package: WEBHOOK_PYTHON, or the virtualenv of .ci/test. */
export function webhookPython() {
  const py = process.env.WEBHOOK_PYTHON || path.join(root, 'target', 'webhook-venv', 'bin', 'python3');
  if (!existsSync(py)) {
    throw new Error(
      `no Python with the pusher package at ${py}: python3 -m venv target/webhook-venv && target/webhook-venv/bin/pip install pusher==3.3.4 (or set WEBHOOK_PYTHON)`,
    );
  }
  return py;
}

/** Starts a receiver for `app` ({id, key, secret}) on a free loopback port. */
export async function startReceiver(app) {
  const node = new PusherServer({ appId: app.id, key: app.key, secret: app.secret });
  const nodeWrong = new PusherServer({ appId: app.id, key: app.key, secret: `${app.secret}-wrong` });
  const py = spawn(webhookPython(), [path.join(here, 'webhook-validator.py')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let pyErr = '';
  py.stderr.on('data', (c) => (pyErr += c));
  const waiting = new Map();
  readline.createInterface({ input: py.stdout }).on('line', (line) => {
    const r = JSON.parse(line);
    waiting.get(r.id)?.(r);
    waiting.delete(r.id);
  });
  let nextId = 0;
  const pyCheck = (headers, body) =>
    new Promise((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      py.stdin.write(
        `${JSON.stringify({
          id,
          key: headers['x-pusher-key'] ?? '',
          signature: headers['x-pusher-signature'] ?? '',
          body,
          app_id: app.id,
          app_key: app.key,
          secret: app.secret,
        })}\n`,
      );
    });

  const r = {
    events: [],
    requests: [],
    /** Requests still to answer 500. */
    failNext: 0,
    /** While true, requests get no answer (until the client gives up). */
    hang: false,
    hung: [],
    /** While true, requests wait for `release()` before they are answered. */
    hold: false,
  };
  const held = [];
  /** Answers the held requests (in arrival order) and stops holding. */
  r.release = () => {
    r.hold = false;
    for (const go of held.splice(0)) go();
  };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const at = Date.now();
      const hr = process.hrtime.bigint();
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const hook = node.webhook({ headers: req.headers, rawBody });
      const wrong = nodeWrong.webhook({ headers: req.headers, rawBody });
      const pyVerdict = await pyCheck(req.headers, rawBody);
      const entry = {
        at,
        hr,
        headers: req.headers,
        path: req.url,
        body: rawBody,
        nodeValid: hook.isValid(),
        nodeWrongSecretValid: wrong.isValid(),
        pyValid: pyVerdict.valid,
        pyWrongSecretValid: pyVerdict.wrong_secret_valid,
        status: null,
      };
      r.requests.push(entry);
      if (r.hang) {
        entry.status = 'hung';
        // Whether the sender still holds the connection: read when asked, since the sender
        // may have given up while the request was being validated.
        Object.defineProperty(entry, 'open', { enumerable: true, get: () => !req.socket.destroyed });
        r.hung.push(res);
        return;
      }
      if (r.hold) {
        entry.status = 'held';
        await new Promise((go) => held.push(go));
      }
      if (r.failNext > 0) {
        r.failNext--;
        entry.status = 500;
        res.writeHead(500).end('not now');
        return;
      }
      entry.status = 200;
      const data = hook.isValid() ? hook.getData() : JSON.parse(rawBody);
      for (const e of data.events) r.events.push({ ...e, at, hr, time_ms: data.time_ms });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  r.url = `http://127.0.0.1:${port}/pusher/webhook`;
  /** The events of `name` (and channel) answered so far. */
  r.named = (name, channel) => r.events.filter((e) => e.name === name && (channel === undefined || e.channel === channel));
  /** The requests left unanswered whose connection the sender still holds open. */
  r.hanging = () => r.requests.filter((q) => q.status === 'hung' && q.open);
  /** Waits until `pred(events)` holds. */
  r.until = (pred, what, ms) => eventually(() => pred(r.events), what, ms);
  /** Every request so far passed both SDKs, and a wrong secret passed neither. */
  r.assertAllValid = () => {
    for (const q of r.requests) {
      if (!q.nodeValid || !q.pyValid || q.nodeWrongSecretValid || q.pyWrongSecretValid) {
        throw new Error(`a webhook request failed the SDKs' validation: ${JSON.stringify({ ...q, hr: undefined })}${pyErr}`);
      }
    }
  };
  r.stop = async () => {
    r.release();
    for (const res of r.hung) res.destroy();
    server.closeAllConnections?.();
    await new Promise((resolve) => server.close(resolve));
    py.stdin.end();
    py.kill();
  };
  return r;
}
