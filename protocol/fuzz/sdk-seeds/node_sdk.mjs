// Writes api_auth seeds signed by the Node server SDK (npm `pusher` 5.3.4).
//
// Run from a directory where that package is installed: `node node_sdk.mjs ../corpus/api_auth`.
// The SDK's clock is frozen at the api_auth target's NOW so the seeds verify. The SDK sends
// each request to a loopback server started here, and each seed is the request as it arrived,
// `METHOD TARGET\nBODY`.
import http from "node:http";
import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.cwd() + "/");
const Pusher = require("pusher");
const NOW = 1353088179;
Date.now = () => NOW * 1000;
const out = process.argv[2];

const seen = [];
const server = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    seen.push(`${req.method} ${req.url}\n${body}`);
    res.setHeader("Content-Type", "application/json");
    res.end("{}");
  });
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const pusher = new Pusher({
  appId: "3",
  key: "278d425bdf160c739803",
  secret: "7ad3773142a6692b25b8",
  host: "127.0.0.1",
  port: String(server.address().port),
  useTLS: false,
});

const calls = [
  ["sdk-node-trigger", () => pusher.trigger("my-channel", "my-event", { message: "hello world" })],
  ["sdk-node-trigger-many", () =>
    pusher.trigger(["private-a", "presence-room", "b"], "client-ish", { n: [1, 2, 3] }, {
      socket_id: "123.456",
      info: "subscription_count",
    })],
  ["sdk-node-batch", () =>
    pusher.triggerBatch([
      { channel: "a", name: "e1", data: "one" },
      { channel: "b", name: "e2", data: { two: 2 }, info: "subscription_count" },
    ])],
  ["sdk-node-channels", () =>
    pusher.get({ path: "/channels", params: { filter_by_prefix: "presence-", info: "user_count" } })],
  ["sdk-node-send-to-user", () => pusher.sendToUser("42", "notice", { hi: "there" })],
  ["sdk-node-terminate", () => pusher.terminateUserConnections("42")],
];
for (const [name, call] of calls) {
  seen.length = 0;
  await call();
  fs.writeFileSync(`${out}/${name}`, seen[0]);
}
server.close();
