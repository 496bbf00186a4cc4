// A stand-in for a Laravel app's broadcasting routes, for the client tests.
//
// Laravel answers `POST /broadcasting/auth` (channel authorisation) and `POST
// /broadcasting/user-auth` (user sign-in) with the Pusher server SDK's signatures; this endpoint
// does the same with the `pusher` npm SDK (`authorizeChannel`, `authenticateUser`), so the auth
// strings the clients hand to ringcast are exactly the ones a real app produces. Bodies are
// `application/x-www-form-urlencoded` (`socket_id=...&channel_name=...`), as pusher-js posts them.
//
// Who the "logged-in user" is comes from the request, so one endpoint serves many clients:
// the `X-User-Id` header or the `user` query parameter of the endpoint URL (default "1"). The
// user-auth route adds a watchlist from the `watch` query parameter (`watch=2,3`).
//
// Channels are refused with 403 (Laravel's answer when a channel callback returns false) when
// `refuse(channel, userId)` says so; by default every channel whose name contains `forbidden`.

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import PusherServer from 'pusher';

/** The presence `user_info` / sign-in `user_info` the endpoint gives user `id`. */
export function userInfo(id) {
  return { id: String(id), name: `User ${id}` };
}

/** A fresh 32-byte encryption master key, base64, as `PUSHER_ENCRYPTION_MASTER_KEY_BASE64`. */
export function newMasterKey() {
  return randomBytes(32).toString('base64');
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': typeof body === 'string' ? 'text/plain' : 'application/json',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * Starts the endpoint on a free loopback port.
 *
 * @param {object} opts
 * @param {{id: string, key: string, secret: string}} opts.app credentials the SDK signs with
 * @param {string} [opts.encryptionMasterKeyBase64] enables `private-encrypted-` channels
 * @param {(channel: string, userId: string) => boolean} [opts.refuse] 403 when true
 * @param {boolean} [opts.numericUserIds] presence user ids (and `user_info.id`) as JSON numbers
 * @returns {Promise<{url: string, authUrl: (user?: string|number) => string,
 *   userAuthUrl: (user?: string|number, watch?: string[]) => string, requests: object[],
 *   sdk: PusherServer, close: () => Promise<void>}>}
 */
export async function startAuthEndpoint({
  app,
  encryptionMasterKeyBase64,
  numericUserIds = false,
  refuse = (channel) => channel.includes('forbidden'),
}) {
  // Only the local signing helpers of this SDK instance are used: host and port are irrelevant.
  const sdk = new PusherServer({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: '127.0.0.1',
    useTLS: false,
    ...(encryptionMasterKeyBase64 ? { encryptionMasterKeyBase64 } : {}),
  });
  const requests = [];

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://localhost');
      const body = new URLSearchParams(await readBody(req));
      const user = String(req.headers['x-user-id'] ?? url.searchParams.get('user') ?? '1');
      const socketId = body.get('socket_id');
      const record = { path: url.pathname, user, socketId, channel: body.get('channel_name') };
      requests.push(record);
      if (req.method !== 'POST') return send(res, 405, 'Method Not Allowed');

      if (url.pathname === '/broadcasting/auth') {
        const channel = body.get('channel_name');
        if (!socketId || !channel) return send(res, 400, 'socket_id and channel_name are required');
        if (refuse(channel, user)) {
          record.refused = true;
          return send(res, 403, 'Forbidden');
        }
        // Laravel's users have integer ids: `numericUserIds` signs them as JSON numbers.
        const id = numericUserIds && /^\d+$/.test(user) ? Number(user) : user;
        const info = numericUserIds ? { ...userInfo(user), id } : userInfo(user);
        const presence = channel.startsWith('presence-') ? { user_id: id, user_info: info } : undefined;
        return send(res, 200, sdk.authorizeChannel(socketId, channel, presence));
      }

      if (url.pathname === '/broadcasting/user-auth') {
        if (!socketId) return send(res, 400, 'socket_id is required');
        const watch = url.searchParams.get('watch');
        const userData = { id: user, user_info: userInfo(user) };
        if (watch) userData.watchlist = watch.split(',');
        return send(res, 200, sdk.authenticateUser(socketId, userData));
      }

      return send(res, 404, 'Not Found');
    } catch (err) {
      return send(res, 500, String(err && err.message));
    }
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const url = `http://127.0.0.1:${port}`;

  const withQuery = (path, params) => {
    const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined));
    const s = q.toString();
    return s ? `${url}${path}?${s}` : `${url}${path}`;
  };

  return {
    url,
    /** The channel authorisation endpoint, logged in as `user`. */
    authUrl: (user) => withQuery('/broadcasting/auth', { user: user === undefined ? undefined : String(user) }),
    /** The user authentication endpoint, logged in as `user`, watching `watch`. */
    userAuthUrl: (user, watch) =>
      withQuery('/broadcasting/user-auth', {
        user: user === undefined ? undefined : String(user),
        watch: watch && watch.length ? watch.join(',') : undefined,
      }),
    requests,
    sdk,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/**
 * Declares before/after hooks that run one auth endpoint for the enclosing `describe`. The
 * returned object's properties are those of `startAuthEndpoint`'s result once `before` ran.
 */
export function useAuthEndpoint(opts) {
  const handle = {};
  let endpoint = null;
  before(async () => {
    endpoint = await startAuthEndpoint(typeof opts === 'function' ? opts() : opts);
    Object.assign(handle, endpoint);
  });
  after(async () => {
    if (endpoint) await endpoint.close();
  });
  return handle;
}
