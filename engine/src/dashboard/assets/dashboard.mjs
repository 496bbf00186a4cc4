// The dashboard page: sign in with an app's id, key and secret, then show the app live.
//
// Everything goes through ringcast's public interfaces, signed here with the secret, which
// stays in this module's memory (never in storage, never sent): the sign-in check is a signed
// `GET /apps/{id}/channels`, the live figures arrive as `stats` events on the app's private
// stats channel, subscribed to with an auth signed here, and the event creator is a signed
// `POST /apps/{id}/events`. Text from the server (channel names, user ids) is only ever set as
// textContent.

import { channelAuth, signedQuery, statsChannel } from './sign.mjs';
import { PusherSocket } from './socket.mjs';
import { drawChart } from './chart.mjs';

const $ = (id) => document.getElementById(id);
/** The path prefix ringcast is served under: whatever comes before /dashboard/. */
const base = location.pathname.replace(/\/dashboard\/?[^/]*$/, '');
const HISTORY = 600;

let session = null;

function setStatus(state, text) {
  const s = $('status');
  s.dataset.state = state;
  s.textContent = text;
}

function cell(row, text, className) {
  const td = document.createElement('td');
  td.textContent = String(text);
  if (className) td.className = className;
  row.append(td);
  return td;
}

function fmt(n) {
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: n < 10 ? 1 : 0 });
}

function duration(secs) {
  if (secs < 60) return `${Math.floor(secs)} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
  return `${Math.floor(secs / 86400)} d ${Math.floor((secs % 86400) / 3600)} h`;
}

async function api(creds, method, path, body = '', params = {}) {
  const query = await signedQuery({ method, path, key: creds.key, secret: creds.secret, body, params });
  const init = { method, headers: {}, cache: 'no-store' };
  if (body) {
    init.body = body;
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(`${base}${path}?${query}`, init);
  let json = null;
  try {
    json = await res.json();
  } catch {
    // An answer without a JSON body; the status says enough.
  }
  return { status: res.status, json };
}

function refusal(status, json) {
  const detail = json && json.error ? `: ${json.error}` : '';
  if (status === 401) return `Refused: the key or the secret is wrong (401${detail})`;
  if (status === 404) return `Refused: no app has this id (404${detail})`;
  if (status === 403) return `Refused: the app is disabled (403${detail})`;
  return `Refused (${status}${detail})`;
}

async function signIn(ev) {
  ev.preventDefault();
  const form = ev.target;
  const creds = {
    appId: form.app_id.value.trim(),
    key: form.key.value.trim(),
    secret: form.secret.value,
  };
  const error = $('login-error');
  error.hidden = true;
  setStatus('connecting', 'checking credentials');
  let check;
  try {
    check = await api(creds, 'GET', `/apps/${creds.appId}/channels`);
  } catch (err) {
    check = { status: 0, json: { error: err.message } };
  }
  if (check.status !== 200) {
    error.textContent = check.status ? refusal(check.status, check.json) : `Cannot reach ringcast: ${check.json.error}`;
    error.hidden = false;
    setStatus('signed-out', 'signed out');
    return;
  }
  form.secret.value = '';
  start(creds);
}

async function start(creds) {
  const channel = await statsChannel(creds.secret);
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new PusherSocket({
    url: `${scheme}://${location.host}${base}/app/${encodeURIComponent(creds.key)}`,
    authorize: (socketId, name) => channelAuth(creds.key, creds.secret, socketId, name),
    onEvent: (ch, event, data) => onEvent(ch, event, data),
    onState: (state, detail) => {
      if (state === 'connected') setStatus('connecting', 'subscribing');
      else if (state === 'connecting') setStatus('connecting', 'connecting');
      else if (state === 'closed') setStatus('signed-out', 'signed out');
      else setStatus('error', detail ? `${state}: ${detail}` : state);
    },
  });
  session = { creds, channel, socket, last: null, history: { connections: [], in: [], out: [] } };
  $('login').hidden = true;
  $('dashboard').hidden = false;
  $('logout').hidden = false;
  $('app-label').textContent = `app ${creds.appId}`;
  socket.subscribe(channel);
  socket.connect();
}

function signOut() {
  if (session) session.socket.close();
  session = null;
  $('dashboard').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('app-label').textContent = '';
  setStatus('signed-out', 'signed out');
}

function onEvent(channel, event, data) {
  if (!session || channel !== session.channel) return;
  if (event === 'pusher_internal:subscription_succeeded') {
    setStatus('live', 'live');
  } else if (event === 'pusher:subscription_error') {
    setStatus('error', `subscription refused: ${(data && data.error) || data && data.status}`);
  } else if (event === 'stats') {
    setStatus('live', 'live');
    render(data);
  }
}

function push(series, point) {
  series.push(point);
  if (series.length > HISTORY) series.shift();
}

function render(doc) {
  const s = session;
  const c = doc.counters;
  let rateIn = 0;
  let rateOut = 0;
  if (s.last && doc.at > s.last.at) {
    const dt = (doc.at - s.last.at) / 1000;
    const p = s.last.counters;
    rateIn = Math.max(0, c.messages_in + c.api_events - p.messages_in - p.api_events) / dt;
    rateOut = Math.max(0, c.messages_out - p.messages_out) / dt;
    push(s.history.in, [doc.at, rateIn]);
    push(s.history.out, [doc.at, rateOut]);
  }
  s.last = doc;
  push(s.history.connections, [doc.at, doc.connections]);
  $('connections').textContent = fmt(doc.connections);
  $('subscriptions').textContent = fmt(doc.subscriptions);
  $('channel-count').textContent = fmt(doc.channels.total);
  $('rate-in').textContent = fmt(rateIn);
  $('rate-out').textContent = fmt(rateOut);
  drawChart($('connections-chart'), [{ name: 'connections', className: 'conn', points: s.history.connections }], { now: doc.at });
  drawChart(
    $('messages-chart'),
    [
      { name: 'in', className: 'in', points: s.history.in },
      { name: 'out', className: 'out', points: s.history.out },
    ],
    { now: doc.at },
  );
  renderChannels(doc);
  renderPresence(doc);
  renderCloses(doc);
  renderNodes(doc);
}

function renderChannels(doc) {
  const filter = $('channel-filter').value.trim().toLowerCase();
  const body = $('channels').tBodies[0];
  const rows = doc.channels.list.filter((ch) => ch.name.toLowerCase().includes(filter));
  body.replaceChildren(
    ...rows.map((ch) => {
      const tr = document.createElement('tr');
      tr.dataset.channel = ch.name;
      cell(tr, ch.name, 'name');
      cell(tr, fmt(ch.subscriptions), 'num subs');
      cell(tr, ch.users === undefined ? '' : fmt(ch.users), 'num users');
      return tr;
    }),
  );
  const shown = doc.channels.list.length;
  const parts = [];
  if (filter) parts.push(`${rows.length} of ${shown} match`);
  if (doc.channels.total > shown) parts.push(`the ${shown} busiest of ${fmt(doc.channels.total)} channels`);
  if (doc.watchers) parts.push(`${doc.watchers} dashboard subscription(s) not listed`);
  $('channels-note').textContent = parts.join('; ');
  const names = $('channel-names');
  names.replaceChildren(
    ...doc.channels.list.map((ch) => {
      const o = document.createElement('option');
      o.value = ch.name;
      return o;
    }),
  );
}

function renderPresence(doc) {
  const box = $('presence');
  if (doc.presence.length === 0) {
    const p = document.createElement('p');
    p.className = 'note';
    p.textContent = 'No presence channel is occupied.';
    box.replaceChildren(p);
    return;
  }
  box.replaceChildren(
    ...doc.presence.map((p) => {
      const div = document.createElement('div');
      div.className = 'presence';
      div.dataset.channel = p.channel;
      const h = document.createElement('h3');
      h.textContent = `${p.channel} · ${p.users} member${p.users === 1 ? '' : 's'}`;
      const ul = document.createElement('ul');
      for (const m of p.members) {
        const li = document.createElement('li');
        li.dataset.user = m.id;
        li.textContent = m.id;
        if (m.connections > 1) {
          const small = document.createElement('small');
          small.textContent = ` ×${m.connections}`;
          li.append(small);
        }
        ul.append(li);
      }
      div.append(h, ul);
      return div;
    }),
  );
}

function renderCloses(doc) {
  const rows = doc.closes.map((c) => {
    const tr = document.createElement('tr');
    tr.dataset.code = c.code;
    cell(tr, c.code, 'code');
    cell(tr, c.reason);
    cell(tr, fmt(c.count), 'num count');
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    cell(tr, 'No connection has closed yet.', 'note').colSpan = 3;
    rows.push(tr);
  }
  $('closes').tBodies[0].replaceChildren(...rows);
  $('recent-closes').replaceChildren(
    ...doc.recent_closes.slice(0, 10).map((c) => {
      const li = document.createElement('li');
      li.textContent = `${new Date(c.at).toLocaleTimeString()} · ${c.code} ${c.reason}`;
      return li;
    }),
  );
}

function renderNodes(doc) {
  const body = $('nodes').tBodies[0];
  body.replaceChildren(
    ...doc.nodes.map((n) => {
      const tr = document.createElement('tr');
      // A lone node has no id; in a cluster every node is named by its id.
      const label = n.id || n.name;
      tr.dataset.node = label;
      cell(tr, n.this ? `${label} (this node${n.id ? `, ${n.name}` : ''})` : label);
      cell(tr, fmt(n.connections), 'num');
      cell(tr, n.workers.map((w) => `w${w.id}: ${w.answered ? fmt(w.connections) : 'no answer'}`).join(', ') || '—');
      cell(tr, n.started_at === undefined ? '—' : duration((doc.at - n.started_at) / 1000));
      const expired = n.id && n.lease_age_secs === null && !n.this;
      cell(tr, n.lease_age_secs === null ? (expired ? 'expired' : '—') : `${n.lease_age_secs.toFixed(1)} s`);
      return tr;
    }),
  );
}

async function sendEvent(ev) {
  ev.preventDefault();
  if (!session) return;
  const form = ev.target;
  const result = $('event-result');
  const body = JSON.stringify({
    name: form.event.value.trim(),
    channels: [form.channel.value.trim()],
    data: form.data.value,
  });
  result.className = '';
  result.textContent = 'sending…';
  try {
    const r = await api(session.creds, 'POST', `/apps/${session.creds.appId}/events`, body);
    result.className = r.status === 200 ? 'ok' : 'error';
    result.textContent = r.status === 200 ? `Sent to ${form.channel.value.trim()}` : refusal(r.status, r.json);
  } catch (err) {
    result.className = 'error';
    result.textContent = `Cannot reach ringcast: ${err.message}`;
  }
}

$('login-form').addEventListener('submit', signIn);
$('logout').addEventListener('click', signOut);
$('event-form').addEventListener('submit', sendEvent);
$('channel-filter').addEventListener('input', () => session && session.last && renderChannels(session.last));
