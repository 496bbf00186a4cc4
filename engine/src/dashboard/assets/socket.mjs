// The part of the Pusher protocol (version 7) the dashboard needs, spoken directly over the
// browser's WebSocket: wait for pusher:connection_established, subscribe to one private channel
// with an auth the page signs itself, answer pings, ping after activity_timeout seconds of
// silence, and reconnect with a growing delay unless the server said not to (codes 4000-4099).
// pusher-js does the same and much more; this is small enough to read and keeps the binary small.

const PROTOCOL_QUERY = 'protocol=7&client=ringcast-dashboard&version=1';

export class PusherSocket {
  /**
   * @param {object} opts
   * @param {string} opts.url ws:// or wss:// URL of /app/{key}, without the query
   * @param {(socketId: string, channel: string) => Promise<string>} opts.authorize
   * @param {(channel: string, event: string, data: any) => void} opts.onEvent
   * @param {(state: string, detail?: string) => void} opts.onState
   */
  constructor({ url, authorize, onEvent, onState }) {
    this.url = `${url}?${PROTOCOL_QUERY}`;
    this.authorize = authorize;
    this.onEvent = onEvent;
    this.onState = onState;
    this.channels = new Set();
    this.socketId = null;
    this.ws = null;
    this.closed = false;
    this.retryMs = 1000;
    this.activityMs = 120_000;
    this.idleTimer = null;
  }

  connect() {
    this.closed = false;
    this.onState('connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onmessage = (m) => this.#message(m.data);
    ws.onclose = (ev) => this.#closed(ev);
    ws.onerror = () => this.onState('error', 'WebSocket error');
  }

  subscribe(channel) {
    this.channels.add(channel);
    if (this.socketId) this.#subscribe(channel);
  }

  close() {
    this.closed = true;
    clearTimeout(this.idleTimer);
    if (this.ws) this.ws.close(1000);
  }

  #send(event, data) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ event, data }));
    }
  }

  async #subscribe(channel) {
    try {
      const auth = await this.authorize(this.socketId, channel);
      this.#send('pusher:subscribe', { channel, auth });
    } catch (err) {
      this.onState('error', `cannot sign the subscription: ${err.message}`);
    }
  }

  #touch() {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.#send('pusher:ping', {}), this.activityMs);
  }

  #message(text) {
    this.#touch();
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    let data = msg.data;
    if (typeof data === 'string') {
      try {
        data = JSON.parse(data);
      } catch {
        // Event data need not be JSON.
      }
    }
    switch (msg.event) {
      case 'pusher:connection_established':
        this.socketId = data.socket_id;
        this.activityMs = Math.max(1, data.activity_timeout || 120) * 1000;
        this.retryMs = 1000;
        this.onState('connected', this.socketId);
        for (const c of this.channels) this.#subscribe(c);
        break;
      case 'pusher:ping':
        this.#send('pusher:pong', {});
        break;
      case 'pusher:error':
        this.onState('error', `${data && data.code ? `${data.code}: ` : ''}${data && data.message}`);
        break;
      default:
        if (msg.channel) this.onEvent(msg.channel, msg.event, data);
    }
  }

  #closed(ev) {
    clearTimeout(this.idleTimer);
    this.socketId = null;
    if (this.closed) {
      this.onState('closed');
      return;
    }
    // Pusher: 4000-4099 "the connection SHOULD NOT be re-established unchanged".
    if (ev.code >= 4000 && ev.code < 4100) {
      this.onState('failed', `${ev.code} ${ev.reason}`);
      return;
    }
    const wait = ev.code >= 4200 && ev.code < 4300 ? 0 : this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 10_000);
    this.onState('reconnecting', `closed with ${ev.code}; again in ${wait / 1000} s`);
    setTimeout(() => this.connect(), wait);
  }
}
