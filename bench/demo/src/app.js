// The demo's front end: the three use cases, written against Laravel Echo as a Laravel app's
// resources/js/app.js would be.
//
// - Order status notifications: `Echo.private('orders.{userId}')` listens for
//   `OrderStatusUpdated` and shows a toast, without a reload.
// - A sales dashboard: `Echo.channel('sales')` listens for `SaleRecorded`; every sale adds a
//   point to the chart.
// - "Who is viewing this document" and "who is typing": `Echo.join('documents.1')` with
//   `here`/`joining`/`leaving`, and `whisper('typing')` / `listenForWhisper('typing')`.
import './echo.js';

const $ = (id) => document.getElementById(id);
const user = JSON.parse(document.querySelector('meta[name="user"]').content);

// ---- connection state ------------------------------------------------------------------

const connection = window.Echo.connector.pusher.connection;
connection.bind('state_change', ({ current }) => {
  $('connection-state').textContent = current;
  $('connection-state').dataset.state = current;
});

// ---- toasts -----------------------------------------------------------------------------

function toast(title, body) {
  const el = document.createElement('div');
  el.className = 'toast';
  const strong = document.createElement('strong');
  strong.textContent = title;
  const p = document.createElement('p');
  p.textContent = body;
  el.append(strong, p);
  $('toasts').append(el);
  setTimeout(() => el.remove(), 8000);
}

// ---- orders -----------------------------------------------------------------------------

const orders = new Map([
  [user.id * 10 + 1001, { item: 'Mechanical keyboard', status: 'paid' }],
  [user.id * 10 + 1002, { item: 'USB-C dock', status: 'packed' }],
]);

function renderOrders() {
  $('order-rows').replaceChildren(
    ...[...orders].map(([id, o]) => {
      const tr = document.createElement('tr');
      tr.dataset.order = id;
      for (const [text, cls] of [[`#${id}`, 'id'], [o.item, 'item'], [o.status, `status ${o.status}`]]) {
        const td = document.createElement('td');
        td.textContent = text;
        td.className = cls;
        tr.append(td);
      }
      return tr;
    }),
  );
}
renderOrders();

window.Echo.private(`orders.${user.id}`).listen('OrderStatusUpdated', (e) => {
  const { id, status } = e.order;
  const known = orders.get(Number(id));
  if (known) known.status = status;
  else orders.set(Number(id), { item: e.order.item || 'Order', status });
  renderOrders();
  toast(`Order #${id}`, `is now ${status}`);
});

// ---- sales dashboard -----------------------------------------------------------------------

const sales = [];

function money(n) {
  return `$${n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

function drawSales() {
  const svg = $('sales-chart');
  const W = 520;
  const H = 200;
  const pad = 36;
  const NS = 'http://www.w3.org/2000/svg';
  const line = (attrs) => {
    const e = document.createElementNS(NS, 'polyline');
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  };
  let total = 0;
  const totals = sales.map((s) => (total += s.amount));
  const max = Math.max(100, ...totals);
  const x = (i) => pad + (sales.length < 2 ? 0 : (i / (sales.length - 1)) * (W - 2 * pad));
  const y = (v) => H - pad - (v / max) * (H - 2 * pad);
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const children = [line({ points: `${pad},${H - pad} ${W - pad},${H - pad}`, class: 'axis' })];
  if (totals.length) {
    children.push(line({ points: totals.map((v, i) => `${x(i)},${y(v)}`).join(' '), class: 'revenue' }));
    totals.forEach((v, i) => {
      const c = document.createElementNS(NS, 'circle');
      c.setAttribute('cx', x(i));
      c.setAttribute('cy', y(v));
      c.setAttribute('r', 4);
      c.setAttribute('class', 'sale');
      children.push(c);
    });
  }
  svg.replaceChildren(...children);
  svg.dataset.points = String(sales.length);
  $('sales-total').textContent = money(total);
  $('sales-count').textContent = `${sales.length} sale${sales.length === 1 ? '' : 's'}`;
}
drawSales();

window.Echo.channel('sales').listen('SaleRecorded', (e) => {
  sales.push({ amount: Number(e.sale.amount), product: e.sale.product });
  if (sales.length > 50) sales.shift();
  drawSales();
  $('last-sale').textContent = `Last: ${money(Number(e.sale.amount))} · ${e.sale.product || 'sale'}`;
});

// ---- who is viewing, who is typing ----------------------------------------------------------

const viewers = new Map();
const typing = new Map();

function renderViewers() {
  $('viewers').replaceChildren(
    ...[...viewers.values()].map((u) => {
      const span = document.createElement('span');
      span.className = u.id === user.id ? 'viewer me' : 'viewer';
      span.dataset.userId = u.id;
      span.textContent = u.id === user.id ? `${u.name} (you)` : u.name;
      return span;
    }),
  );
  $('viewer-count').textContent = `${viewers.size} viewing`;
}

function renderTyping() {
  const names = [...typing.keys()];
  $('typing').textContent =
    names.length === 0 ? '' : `${names.join(' and ')} ${names.length === 1 ? 'is' : 'are'} typing…`;
}

const documentChannel = window.Echo.join('documents.1')
  .here((users) => {
    viewers.clear();
    for (const u of users) viewers.set(u.id, u);
    renderViewers();
  })
  .joining((u) => {
    viewers.set(u.id, u);
    renderViewers();
    toast(u.name, 'opened the document');
  })
  .leaving((u) => {
    viewers.delete(u.id);
    typing.delete(u.name);
    renderViewers();
    renderTyping();
  })
  .listenForWhisper('typing', (e) => {
    clearTimeout(typing.get(e.name));
    typing.set(
      e.name,
      setTimeout(() => {
        typing.delete(e.name);
        renderTyping();
      }, 3000),
    );
    renderTyping();
  });

let lastWhisper = 0;
$('editor').addEventListener('input', () => {
  // Client events are rate-limited (10 per second per connection): one per second is plenty.
  const now = Date.now();
  if (now - lastWhisper < 1000) return;
  lastWhisper = now;
  documentChannel.whisper('typing', { id: user.id, name: user.name });
});
