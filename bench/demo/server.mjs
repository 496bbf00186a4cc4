// The demo's web server: what a Laravel app does around broadcasting, in a hundred lines.
//
// - `GET /login`, `POST /login`, `POST /logout`: a session cookie names the signed-in user, as
//   Laravel's session guard does; each session has a CSRF token, put in the page's
//   `<meta name="csrf-token">`, which Echo sends back as `X-CSRF-TOKEN`.
// - `GET /`: the page, with the VITE_REVERB_* bundle (build.mjs) that connects to ringcast.
// - `POST /broadcasting/auth`: Laravel's channel authorisation. It answers as
//   Illuminate's PusherBroadcaster does, with the Node `pusher` SDK's `authorizeChannel`:
//   419 without the session's CSRF token, 403 for a guest or a channel the user may not join,
//   `{"auth"}` for a private channel and `{"auth", "channel_data"}` for a presence channel, whose
//   member is `{user_id, user_info: {id, name}}` like the array a channels.php callback returns.
//
// The channel rules are those of routes/channels.php in the course's app:
//   Broadcast::channel('orders.{userId}', fn ($user, $userId) => $user->id === (int) $userId);
//   Broadcast::channel('documents.{id}', fn ($user) => ['id' => $user->id, 'name' => $user->name]);
// (`sales` is a public channel and needs no authorisation.)

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Pusher from 'pusher';
import { bundle, viteEnv } from './build.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The demo's users, as a users table would have them. */
export const USERS = [
  { id: 1, name: 'Alice' },
  { id: 2, name: 'Bob' },
  { id: 3, name: 'Carol' },
];

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function cookies(req) {
  const out = {};
  for (const part of (req.headers.cookie || '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k) out[k] = decodeURIComponent(v.join('='));
  }
  return out;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body, type = 'application/json', headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function loginPage() {
  const buttons = USERS.map(
    (u) => `<button type="submit" name="user" value="${u.id}">Sign in as ${escapeHtml(u.name)}</button>`,
  ).join('\n');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title>
<link rel="stylesheet" href="/app.css"></head><body><main><section class="card login">
<h2>Shop demo: sign in</h2><form method="post" action="/login">${buttons}</form>
<p class="hint">Open a second browser window (or a private one) and sign in as someone else.</p>
</section></main></body></html>`;
}

/**
 * Starts the demo server.
 * @param {object} opts
 * @param {{id: string, key: string, secret: string}} opts.app the ringcast app
 * @param {{host: string, port: number|string, scheme?: string}} opts.reverb where browsers reach ringcast
 * @param {string} [opts.host] address to listen on (default 127.0.0.1)
 * @param {number} [opts.port] port (default 0: any free port)
 */
export async function startDemo({ app, reverb, host = '127.0.0.1', port = 0 }) {
  const sdk = new Pusher({ appId: app.id, key: app.key, secret: app.secret, host: reverb.host, port: String(reverb.port), useTLS: reverb.scheme === 'https' });
  const script = await bundle(viteEnv({ key: app.key, ...reverb }));
  const page = readFileSync(path.join(here, 'public', 'index.html'), 'utf8');
  const css = readFileSync(path.join(here, 'public', 'app.css'), 'utf8');
  /** session id -> {user, csrf} */
  const sessions = new Map();
  const authRequests = [];

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://demo');
      const session = sessions.get(cookies(req).demo_session);
      if (req.method === 'GET' && url.pathname === '/app.css') return send(res, 200, css, 'text/css');
      if (req.method === 'GET' && url.pathname === '/build/app.js') return send(res, 200, script, 'text/javascript');
      if (req.method === 'GET' && url.pathname === '/login') return send(res, 200, loginPage(), 'text/html');
      if (req.method === 'POST' && url.pathname === '/login') {
        const form = new URLSearchParams(await readBody(req));
        const user = USERS.find((u) => String(u.id) === form.get('user'));
        if (!user) return send(res, 422, { message: 'Unknown user' });
        const id = randomBytes(16).toString('hex');
        sessions.set(id, { user, csrf: randomBytes(16).toString('hex') });
        return send(res, 302, '', 'text/plain', { Location: '/', 'Set-Cookie': `demo_session=${id}; Path=/; HttpOnly; SameSite=Lax` });
      }
      if (req.method === 'POST' && url.pathname === '/logout') {
        sessions.delete(cookies(req).demo_session);
        return send(res, 302, '', 'text/plain', { Location: '/login', 'Set-Cookie': 'demo_session=; Path=/; Max-Age=0' });
      }
      if (req.method === 'GET' && url.pathname === '/') {
        if (!session) return send(res, 302, '', 'text/plain', { Location: '/login' });
        const { user, csrf } = session;
        const html = page
          .replaceAll('{{csrf}}', csrf)
          .replaceAll('{{user}}', escapeHtml(JSON.stringify(user)))
          .replaceAll('{{name}}', escapeHtml(user.name))
          .replaceAll('{{id}}', String(user.id))
          .replaceAll('{{firstOrder}}', String(user.id * 10 + 1001));
        return send(res, 200, html, 'text/html');
      }
      if (req.method === 'POST' && url.pathname === '/broadcasting/auth') {
        const form = new URLSearchParams(await readBody(req));
        const socketId = form.get('socket_id');
        const channel = form.get('channel_name') || '';
        authRequests.push({ channel, user: session && session.user.id });
        if (session && req.headers['x-csrf-token'] !== session.csrf) return send(res, 419, { message: 'CSRF token mismatch.' });
        if (!session) return send(res, 403, { message: 'Unauthenticated.' });
        const { user } = session;
        const order = /^private-orders\.(\d+)$/.exec(channel);
        if (order) {
          if (Number(order[1]) !== user.id) return send(res, 403, { message: 'This action is unauthorized.' });
          return send(res, 200, sdk.authorizeChannel(socketId, channel));
        }
        if (/^presence-documents\.\d+$/.test(channel)) {
          const member = { user_id: String(user.id), user_info: { id: user.id, name: user.name } };
          return send(res, 200, sdk.authorizeChannel(socketId, channel, member));
        }
        return send(res, 403, { message: 'This action is unauthorized.' });
      }
      send(res, 404, { message: 'Not Found' });
    } catch (err) {
      send(res, 500, { message: err.message });
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const bound = server.address().port;
  return {
    url: `http://${host}:${bound}`,
    port: bound,
    /** Every /broadcasting/auth request so far: channel and user. */
    authRequests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
