// Broadcasts the demo's events through ringcast's HTTP API, as Laravel's broadcaster does when
// an event that implements ShouldBroadcast is dispatched: the Pusher server SDK (here the Node
// `pusher` package, configured like config/broadcasting.php's `reverb` connection from the same
// REVERB_* variables) signs a POST /apps/{id}/events whose event name is the class name and
// whose data is the event's public properties as JSON.
//
//   node trigger.mjs order <user id> <order id> <status>   App\Events\OrderStatusUpdated on private-orders.<user id>
//   node trigger.mjs sale <amount> [product]               App\Events\SaleRecorded on sales
//   node trigger.mjs simulate [seconds]                    a sale every 2-4 s and an order update every ~10 s
//
// REVERB_APP_ID, REVERB_APP_KEY, REVERB_APP_SECRET, REVERB_HOST, REVERB_PORT and
// REVERB_SCHEME default to the demo's (start.mjs).

import Pusher from 'pusher';
import { fileURLToPath } from 'node:url';

export const DEMO_APP = Object.freeze({ id: '1001', key: 'demo-key', secret: 'demo-secret' });

/** The SDK client, from the environment a Laravel app would have. */
export function broadcaster(env = process.env) {
  return new Pusher({
    appId: env.REVERB_APP_ID || DEMO_APP.id,
    key: env.REVERB_APP_KEY || DEMO_APP.key,
    secret: env.REVERB_APP_SECRET || DEMO_APP.secret,
    host: env.REVERB_HOST || '127.0.0.1',
    port: String(env.REVERB_PORT || 8080),
    useTLS: (env.REVERB_SCHEME || 'http') === 'https',
  });
}

/** OrderStatusUpdated: broadcastOn() is `new PrivateChannel("orders.{$userId}")`. */
export function orderStatus(pusher, userId, orderId, status) {
  return pusher.trigger(`private-orders.${userId}`, 'App\\Events\\OrderStatusUpdated', {
    order: { id: Number(orderId), status },
  });
}

/** SaleRecorded: broadcastOn() is `new Channel('sales')`. */
export function sale(pusher, amount, product = 'Keyboard') {
  return pusher.trigger('sales', 'App\\Events\\SaleRecorded', {
    sale: { amount: Number(amount), product, at: new Date().toISOString() },
  });
}

const PRODUCTS = ['Keyboard', 'USB-C dock', 'Monitor arm', 'Webcam', 'Headset'];
const STATUSES = ['packed', 'shipped', 'out for delivery', 'delivered'];

/** Sales and order updates at a human pace until `signal` aborts or `seconds` pass. */
export async function simulate(pusher, { seconds = Infinity, signal, log = () => {} } = {}) {
  const end = Date.now() + seconds * 1000;
  let n = 0;
  while (Date.now() < end && !(signal && signal.aborted)) {
    await new Promise((r) => setTimeout(r, 2000 + Math.random() * 2000));
    if (signal && signal.aborted) break;
    try {
      const amount = Math.round((15 + Math.random() * 185) * 100) / 100;
      const product = PRODUCTS[n % PRODUCTS.length];
      await sale(pusher, amount, product);
      log(`sale ${amount} ${product}`);
      if (n % 3 === 2) {
        const user = 1 + (Math.floor(n / 3) % 3);
        const status = STATUSES[Math.floor(n / 9) % STATUSES.length];
        await orderStatus(pusher, user, user * 10 + 1001, status);
        log(`order ${user * 10 + 1001} of user ${user}: ${status}`);
      }
    } catch (err) {
      log(`broadcast failed: ${err.message}`);
    }
    n++;
  }
}

async function main(argv) {
  const [what, ...args] = argv;
  const pusher = broadcaster();
  if (what === 'order' && args.length === 3) {
    await orderStatus(pusher, ...args);
    console.log(`OrderStatusUpdated: order ${args[1]} of user ${args[0]} is ${args[2]}`);
  } else if (what === 'sale' && args.length >= 1) {
    await sale(pusher, args[0], args[1]);
    console.log(`SaleRecorded: ${args[0]} ${args[1] || ''}`.trim());
  } else if (what === 'simulate') {
    await simulate(pusher, { seconds: args[0] ? Number(args[0]) : Infinity, log: console.log });
  } else {
    console.error('usage: node trigger.mjs order <user id> <order id> <status> | sale <amount> [product] | simulate [seconds]');
    process.exit(64);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(`trigger failed: ${err.message}${err.body ? ` (${err.status}: ${err.body})` : ''}`);
    process.exit(1);
  });
}
