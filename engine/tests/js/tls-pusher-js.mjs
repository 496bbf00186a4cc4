// The pusher-js side of tls.test.mjs, run as a process of its own because Node reads
// NODE_EXTRA_CA_CERTS (the test's certificate authority) only when it starts.
//
//   NODE_EXTRA_CA_CERTS=ca.pem node tls-pusher-js.mjs PORT KEY SECRET
//
// Connects to wss://localhost:PORT with pusher-js 8 exactly as a page served over https does
// (forceTLS, the transports Laravel's Echo set-up enables), subscribes to a public and a private channel (the private
// one authorised with the Pusher SDK's authorizeChannel, as a Laravel auth endpoint answers),
// prints `subscribed`, then prints every event it receives as a JSON line until the event
// `done`, and exits 0. Any error prints `error ...` and exits 1.

import PusherServer from 'pusher';
import PusherClient from 'pusher-js';

const [port, key, secret] = process.argv.slice(2);
const signer = new PusherServer({ appId: '1', key, secret });
const fail = (what) => {
  console.log(`error ${what}`);
  process.exit(1);
};
setTimeout(() => fail('timed out'), 15_000);

const client = new PusherClient(key, {
  wsHost: 'localhost',
  wssPort: Number(port),
  forceTLS: true,
  enabledTransports: ['ws', 'wss'],
  cluster: 'mt1',
  authorizer: (channel) => ({
    authorize: (socketId, callback) => callback(null, signer.authorizeChannel(socketId, channel.name)),
  }),
});
client.connection.bind('error', (err) => fail(`connection ${JSON.stringify(err)}`));
client.connection.bind('connected', () => {
  let pending = 2;
  for (const name of ['tls-news', 'private-tls-orders']) {
    const ch = client.subscribe(name);
    ch.bind('pusher:subscription_error', (e) => fail(`subscribing ${name}: ${JSON.stringify(e)}`));
    ch.bind('pusher:subscription_succeeded', () => {
      pending -= 1;
      if (pending === 0) console.log(`subscribed ${client.connection.socket_id}`);
    });
    ch.bind_global((event, data) => {
      if (event.startsWith('pusher:')) return;
      console.log(JSON.stringify({ channel: name, event, data }));
      if (event === 'done') {
        client.disconnect();
        process.exit(0);
      }
    });
  }
});
