//! The Lua scripts: every cluster-wide decision, each one atomic step in Redis.
//!
//! Redis runs a script alone: no other client's command runs between two of its commands.
//! So "is this the user's first connection anywhere?", "add them to the member list" and "tell
//! every node that has subscribers" are one step, and two nodes can never both decide that a
//! user arrived, or both miss that they left. Every script takes the key prefix and the calling
//! node's id as `ARGV[1]` and `ARGV[2]`; the rest of its arguments are listed above it. Keys
//! are built inside the scripts, so they are not declared in `KEYS`: ringcast needs a single
//! Redis (or a primary with replicas), not a Redis Cluster, whose slots would split a
//! channel's keys.
//!
//! `subscription_count` is throttled as on a lone node: on a channel with more than 100
//! subscriptions it goes out at most every 5 seconds (`{P}:cthr:{app}:{ch}`, a `PX` key), and a
//! change within the window is remembered in `{P}:cdirty` and sent by the next heartbeat of any
//! node once the window has passed.
//!
//! Frames are built by the calling node (the event JSON and its WebSocket header) and only
//! copied by the scripts, except `subscription_count`, whose number only the script knows: the
//! node passes the JSON before and after the number and [`COMMON`]'s `wsframe` adds the
//! header (an unmasked text frame, RFC 6455 section 5.2), which the tests compare with the
//! protocol crate's encoder.

/// Helpers every script starts with.
pub const COMMON: &str = r#"
local P = ARGV[1]
local NODE = ARGV[2]
local MAXLEN = 100000
local function xadd(node, ...)
  redis.call('XADD', P .. ':inbox:' .. node, 'MAXLEN', '~', MAXLEN, '*', ...)
end
local function interested(app, ch)
  return redis.call('SMEMBERS', P .. ':int:' .. app .. ':' .. ch)
end
local function publish(app, ch, except, frame, self_too)
  for _, n in ipairs(interested(app, ch)) do
    if self_too or n ~= NODE then
      xadd(n, 't', 'p', 'a', app, 'c', ch, 'x', except, 'f', frame)
    end
  end
end
local function wsframe(payload)
  local n = #payload
  if n < 126 then
    return string.char(129, n) .. payload
  elseif n < 65536 then
    return string.char(129, 126, math.floor(n / 256), n % 256) .. payload
  end
  local b = {}
  for i = 8, 1, -1 do
    b[i] = n % 256
    n = math.floor(n / 256)
  end
  return string.char(129, 127, unpack(b)) .. payload
end
local function total(app, ch)
  local t = 0
  for _, v in ipairs(redis.call('HVALS', P .. ':subs:' .. app .. ':' .. ch)) do
    t = t + tonumber(v)
  end
  return t
end
local THROTTLE_ABOVE = 100
local THROTTLE_MS = 5000
local function send_count(app, ch, pre, post)
  local t = total(app, ch)
  if t > 0 then
    publish(app, ch, '', wsframe(pre .. string.format('%d', t) .. post), true)
  end
  return t
end
local function count(app, ch, pre, post)
  if pre == '' then return nil end
  local field = app .. '\0' .. ch
  if total(app, ch) > THROTTLE_ABOVE then
    local k = P .. ':cthr:' .. app .. ':' .. ch
    if not redis.call('SET', k, '1', 'PX', THROTTLE_MS, 'NX') then
      redis.call('HSET', P .. ':cdirty', field, pre .. '\0' .. post)
      return false
    end
  end
  return send_count(app, ch, pre, post)
end
local HOOK_DELAY_MS = 3000
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function hooks_for(flags)
  return function(c) return string.find(flags, c, 1, true) ~= nil end
end
-- A webhook that arrives with a fact: sent unless its delayed opposite is pending (a return
-- within 3 s: both are dropped); if that one is pending but already due, both are sent, the
-- delayed one first.
local function arrival(out, hash, field, delayed_code, code)
  local due = redis.call('HGET', hash, field)
  if due then
    redis.call('HDEL', hash, field)
    if tonumber(due) <= now_ms() then
      table.insert(out, delayed_code)
      table.insert(out, code)
    end
  else
    table.insert(out, code)
  end
end
-- A webhook of a departure: pending in `hash` until the deciding node fires it.
local function departure(out, hash, field, code)
  local due = tostring(now_ms() + HOOK_DELAY_MS)
  redis.call('HSET', hash, field, due)
  table.insert(out, code)
  table.insert(out, due)
end
-- The subscription_count webhook of a count() result.
local function count_hook(out, app, ch, sent)
  if sent == false then
    redis.call('HSET', P .. ':whcd', app .. '\0' .. ch, '1')
    table.insert(out, 'd')
  elseif sent and sent > 0 then
    table.insert(out, 'n')
    table.insert(out, sent)
  end
end
local function flush_counts()
  local dirty = redis.call('HGETALL', P .. ':cdirty')
  for i = 1, #dirty, 2 do
    local app, ch = string.match(dirty[i], '^(.-)%z(.*)$')
    local k = P .. ':cthr:' .. app .. ':' .. ch
    if redis.call('EXISTS', k) == 0 then
      local pre, post = string.match(dirty[i + 1], '^(.-)%z(.*)$')
      redis.call('HDEL', P .. ':cdirty', dirty[i])
      if send_count(app, ch, pre, post) > THROTTLE_ABOVE then
        redis.call('SET', k, '1', 'PX', THROTTLE_MS)
      end
    end
  end
end
local function notify(app, user, frame)
  local watchers = redis.call('HKEYS', P .. ':watch:' .. app .. ':' .. user)
  if #watchers == 0 then return end
  local list = cjson.encode(watchers)
  for _, n in ipairs(redis.call('SMEMBERS', P .. ':nodes')) do
    xadd(n, 't', 'tu', 'a', app, 'u', list, 'f', frame)
  end
end
"#;

/// JOIN: 3 app, 4 channel, 5 worker, 6 slot, 7 generation, 8 presence user id ('' for none),
/// 9 user_info, 10 socket id, 11 max presence members, 12 '1' for a cache channel,
/// 13 and 14 the `subscription_count` JSON around the number ('' when off), 15 the
/// `member_added` frame, 16 the webhooks the app wants ([`HOOK_FLAGS`]). Answers through this
/// node's inbox (`t=ja`); returns 0 when a full presence channel refused the member, else
/// `{1, webhook codes...}` ([`HOOK_CODES`]).
pub const JOIN: &str = r#"
local app, ch, user = ARGV[3], ARGV[4], ARGV[8]
local has = hooks_for(ARGV[16] or '')
local out = {1}
local base = app .. ':' .. ch
local answer = {'t', 'ja', 'w', ARGV[5], 's', ARGV[6], 'g', ARGV[7], 'a', app, 'c', ch, 'u', user}
local pres = P .. ':pres:' .. base
local new_member = false
if user ~= '' then
  local npc = P .. ':npc:' .. NODE
  local npcf = app .. '\0' .. ch .. '\0' .. user
  if redis.call('HINCRBY', npc, npcf, 1) == 1 then
    if redis.call('HEXISTS', pres, user) == 0 and redis.call('HLEN', pres) >= tonumber(ARGV[11]) then
      redis.call('HDEL', npc, npcf)
      table.insert(answer, 'ok')
      table.insert(answer, '0')
      xadd(NODE, unpack(answer))
      return 0
    end
    if redis.call('HINCRBY', P .. ':pcnt:' .. base, user, 1) == 1 then
      redis.call('HSET', pres, user, ARGV[9])
      new_member = true
    end
  end
end
if redis.call('HINCRBY', P .. ':nsubs:' .. NODE, app .. '\0' .. ch, 1) == 1 then
  redis.call('SADD', P .. ':int:' .. base, NODE)
end
redis.call('HINCRBY', P .. ':subs:' .. base, NODE, 1)
if has('o') and total(app, ch) == 1 then
  arrival(out, P .. ':whv', app .. '\0' .. ch, 'V', 'o')
end
if has('m') and new_member then
  arrival(out, P .. ':whr', app .. '\0' .. ch .. '\0' .. user, 'R', 'a')
end
redis.call('SADD', P .. ':chans:' .. app, ch)
table.insert(answer, 'ok')
table.insert(answer, '1')
if user ~= '' then
  table.insert(answer, 'm')
  table.insert(answer, cjson.encode(redis.call('HGETALL', pres)))
end
if ARGV[12] == '1' then
  local f = redis.call('HGET', P .. ':cache:' .. base, 'f')
  if f then
    table.insert(answer, 'cf')
    table.insert(answer, f)
  else
    table.insert(answer, 'cm')
    table.insert(answer, '1')
    if has('c') and redis.call('SET', P .. ':whcm:' .. base, '1', 'PX', 1000, 'NX') then
      table.insert(out, 'c')
    end
  end
end
xadd(NODE, unpack(answer))
if new_member then
  publish(app, ch, ARGV[10], ARGV[15], true)
end
local sent = count(app, ch, ARGV[13], ARGV[14])
if has('n') then count_hook(out, app, ch, sent) end
return out
"#;

/// LEAVE: 3 app, 4 channel, 5 presence user id ('' for none), 6 the `member_removed` frame,
/// 7 and 8 the `subscription_count` JSON around the number ('' when off), 9 the webhooks the
/// app wants ([`HOOK_FLAGS`]). Returns `{1, webhook codes...}` ([`HOOK_CODES`]).
pub const LEAVE: &str = r#"
local app, ch, user = ARGV[3], ARGV[4], ARGV[5]
local has = hooks_for(ARGV[9] or '')
local out = {1}
local base = app .. ':' .. ch
local nsubs = P .. ':nsubs:' .. NODE
local field = app .. '\0' .. ch
local left = redis.call('HINCRBY', nsubs, field, -1)
if left <= 0 then
  redis.call('HDEL', nsubs, field)
  redis.call('SREM', P .. ':int:' .. base, NODE)
end
local subs = P .. ':subs:' .. base
if redis.call('HINCRBY', subs, NODE, -1) <= 0 then
  redis.call('HDEL', subs, NODE)
end
if redis.call('EXISTS', subs) == 0 then
  redis.call('SREM', P .. ':chans:' .. app, ch)
end
-- Only a leave that had a subscription to undo empties the channel.
local emptied = left >= 0 and redis.call('EXISTS', subs) == 0
if user ~= '' then
  local npc = P .. ':npc:' .. NODE
  local npcf = field .. '\0' .. user
  if redis.call('HINCRBY', npc, npcf, -1) <= 0 then
    redis.call('HDEL', npc, npcf)
    local pcnt = P .. ':pcnt:' .. base
    if redis.call('HINCRBY', pcnt, user, -1) <= 0 then
      redis.call('HDEL', pcnt, user)
      redis.call('HDEL', P .. ':pres:' .. base, user)
      publish(app, ch, '', ARGV[6], true)
      if has('m') then
        departure(out, P .. ':whr', field .. '\0' .. user, 'r')
      end
    end
  end
end
if has('o') and emptied then
  departure(out, P .. ':whv', field, 'v')
end
local sent = count(app, ch, ARGV[7], ARGV[8])
if has('n') then count_hook(out, app, ch, sent) end
return out
"#;

/// PUBLISH: from 3 on, groups of six: app, channel, excluded socket id ('' for none), frame,
/// cache data, cache TTL in milliseconds ('' for a channel that is not a cache channel). One
/// call per API request, so a batch is atomic and in order on every node. A cache channel's
/// event goes to this node's inbox too: its subscribers and its joiners must see the event and
/// the replay in one order.
pub const PUBLISH: &str = r#"
for i = 3, #ARGV, 6 do
  local app, ch, x, f, data, ttl = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  if ttl ~= '' then
    local k = P .. ':cache:' .. app .. ':' .. ch
    redis.call('HSET', k, 'f', f, 'd', data)
    redis.call('PEXPIRE', k, ttl)
    publish(app, ch, x, f, true)
  else
    publish(app, ch, x, f, false)
  end
end
return 1
"#;

/// SIGNIN: 3 app, 4 user, 5 worker, 6 slot, 7 generation, 8 the watchlist frame saying the
/// user came online, 9 on: the user ids it watches. Answers the watchlist's online/offline
/// split through this node's inbox (`t=wl`).
pub const SIGNIN: &str = r#"
local app, user = ARGV[3], ARGV[4]
for i = 9, #ARGV do
  redis.call('HINCRBY', P .. ':watch:' .. app .. ':' .. ARGV[i], user, 1)
end
redis.call('HINCRBY', P .. ':nuon:' .. NODE, app .. '\0' .. user, 1)
local uon = P .. ':uon:' .. app
local came = redis.call('HINCRBY', uon, user, 1) == 1
if #ARGV >= 9 then
  local on, off = {}, {}
  for i = 9, #ARGV do
    if redis.call('HEXISTS', uon, ARGV[i]) == 1 then
      table.insert(on, ARGV[i])
    else
      table.insert(off, ARGV[i])
    end
  end
  xadd(NODE, 't', 'wl', 'w', ARGV[5], 's', ARGV[6], 'g', ARGV[7], 'on', cjson.encode(on), 'off', cjson.encode(off))
end
if came then
  notify(app, user, ARGV[8])
end
return 1
"#;

/// SIGNOUT: 3 app, 4 user, 5 the watchlist frame saying the user went offline, 6 on: the user
/// ids it watched.
pub const SIGNOUT: &str = r#"
local app, user = ARGV[3], ARGV[4]
for i = 6, #ARGV do
  local k = P .. ':watch:' .. app .. ':' .. ARGV[i]
  if redis.call('HINCRBY', k, user, -1) <= 0 then
    redis.call('HDEL', k, user)
  end
end
local nuon = P .. ':nuon:' .. NODE
local f = app .. '\0' .. user
if redis.call('HINCRBY', nuon, f, -1) <= 0 then
  redis.call('HDEL', nuon, f)
end
local uon = P .. ':uon:' .. app
if redis.call('HINCRBY', uon, user, -1) <= 0 then
  redis.call('HDEL', uon, user)
  notify(app, user, ARGV[5])
end
return 1
"#;

/// TERMINATE: 3 app, 4 user. Every node closes the user's connections, this one included.
pub const TERMINATE: &str = r#"
for _, n in ipairs(redis.call('SMEMBERS', P .. ':nodes')) do
  xadd(n, 't', 'tm', 'a', ARGV[3], 'u', ARGV[4])
end
return 1
"#;

/// QUERY: 3 kind, 4 app, 5 channel or prefix. `c`: {subscriptions, users[, cache data, cache
/// ms left]}; `l`: {channel, subscriptions, users, ...} for the occupied channels whose name
/// starts with the prefix; `u`: a presence channel's user ids; `n` (no 5): {node, connections
/// to the app as its last heartbeat counted them, PTTL of its lease, ...} for every node of
/// `{P}:nodes` (a PTTL of -2 is a lease that has expired).
pub const QUERY: &str = r#"
local kind, app, arg = ARGV[3], ARGV[4], ARGV[5]
if kind == 'n' then
  local out = {}
  local conns = P .. ':conns:' .. app
  for _, n in ipairs(redis.call('SMEMBERS', P .. ':nodes')) do
    table.insert(out, n)
    table.insert(out, tonumber(redis.call('HGET', conns, n) or '0'))
    table.insert(out, redis.call('PTTL', P .. ':node:' .. n))
  end
  return out
elseif kind == 'c' then
  local base = app .. ':' .. arg
  local out = {total(app, arg), redis.call('HLEN', P .. ':pres:' .. base)}
  local k = P .. ':cache:' .. base
  local d = redis.call('HGET', k, 'd')
  if d then
    table.insert(out, d)
    table.insert(out, redis.call('PTTL', k))
  end
  return out
elseif kind == 'l' then
  local out = {}
  for _, ch in ipairs(redis.call('SMEMBERS', P .. ':chans:' .. app)) do
    if string.sub(ch, 1, #arg) == arg then
      local t = total(app, ch)
      if t > 0 then
        table.insert(out, ch)
        table.insert(out, t)
        table.insert(out, redis.call('HLEN', P .. ':pres:' .. app .. ':' .. ch))
      end
    end
  end
  return out
end
return redis.call('HKEYS', P .. ':pres:' .. app .. ':' .. arg)
"#;

/// HEARTBEAT: 3 the lease in milliseconds, 4 on: pairs of app and this node's open
/// connections. Renews the lease, publishes the counts, sends the throttled
/// `subscription_count`s that are due (whichever node's heartbeat comes first), and returns per
/// app the connections of the other nodes whose lease is alive.
pub const HEARTBEAT: &str = r#"
flush_counts()
redis.call('SET', P .. ':node:' .. NODE, '1', 'PX', ARGV[3])
redis.call('SADD', P .. ':nodes', NODE)
local out = {}
for i = 4, #ARGV, 2 do
  local k = P .. ':conns:' .. ARGV[i]
  redis.call('HSET', k, NODE, ARGV[i + 1])
  local all = redis.call('HGETALL', k)
  local others = 0
  for j = 1, #all, 2 do
    if all[j] ~= NODE and redis.call('EXISTS', P .. ':node:' .. all[j]) == 1 then
      others = others + tonumber(all[j + 1])
    end
  end
  table.insert(out, others)
end
return out
"#;

/// GOODBYE: 3 on: the app ids. A node that stops cleanly takes its lease, its connection
/// counts and its inbox with it (its subscriptions left with its connections, before this).
pub const GOODBYE: &str = r#"
redis.call('DEL', P .. ':node:' .. NODE, P .. ':inbox:' .. NODE)
redis.call('SREM', P .. ':nodes', NODE)
for i = 3, #ARGV do
  redis.call('HDEL', P .. ':conns:' .. ARGV[i], NODE)
end
return 1
"#;

/// HOOKFIRE: from 3 on, groups of five: kind (`v` a pending `channel_vacated`, `r` a pending
/// `member_removed`, `d` a deferred `subscription_count`), app, channel, user id (or ''), and
/// the due time the departure was recorded with (or ''). Run by the node that decided the
/// departure once its delay has passed; returns per group 1 when the webhook is to be sent
/// (nobody came back: the pending entry was still there, and is now removed), 0 when it is
/// not, and for `d` the channel's subscription count, or -1 when another node sent it.
pub const HOOKFIRE: &str = r#"
local out = {}
for i = 3, #ARGV, 5 do
  local kind, app, ch, user, due = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local field = app .. '\0' .. ch
  if kind == 'd' then
    if redis.call('HDEL', P .. ':whcd', field) == 1 then
      table.insert(out, total(app, ch))
    else
      table.insert(out, -1)
    end
  else
    local hash = P .. ':whv'
    if kind == 'r' then
      hash = P .. ':whr'
      field = field .. '\0' .. user
    end
    if redis.call('HGET', hash, field) == due then
      redis.call('HDEL', hash, field)
      table.insert(out, 1)
    else
      table.insert(out, 0)
    end
  end
end
return out
"#;

/// The webhooks an app wants, as the flags JOIN and LEAVE take: `o` the occupancy pair
/// (`channel_occupied`, `channel_vacated`), `m` the member pair, `c` `cache_miss`, `n`
/// `subscription_count`.
pub const HOOK_FLAGS: &str = "ocmn";

/// The webhook codes JOIN and LEAVE return after their 1: `o` `channel_occupied`, `a`
/// `member_added`, `c` `cache_miss`, `V` and `R` a `channel_vacated` or `member_removed`
/// that was already due when the join came (sent now, before the `o` or `a` that follows),
/// `v` and `r` followed by a due time: a departure recorded as pending (the calling node fires
/// it with HOOKFIRE after the delay), `n` followed by a `subscription_count`, `d` a throttled
/// count (fired after the throttle window).
pub const HOOK_CODES: &str = "oacVRvrnd";

/// One of the scripts, loaded once per connection with `SCRIPT LOAD` and called by its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptId {
    Join,
    Leave,
    Publish,
    Signin,
    Signout,
    Terminate,
    Query,
    Heartbeat,
    Goodbye,
    HookFire,
}

impl ScriptId {
    /// Every script.
    pub const ALL: [ScriptId; 10] = [
        ScriptId::Join,
        ScriptId::Leave,
        ScriptId::Publish,
        ScriptId::Signin,
        ScriptId::Signout,
        ScriptId::Terminate,
        ScriptId::Query,
        ScriptId::Heartbeat,
        ScriptId::Goodbye,
        ScriptId::HookFire,
    ];

    fn body(self) -> &'static str {
        match self {
            ScriptId::Join => JOIN,
            ScriptId::Leave => LEAVE,
            ScriptId::Publish => PUBLISH,
            ScriptId::Signin => SIGNIN,
            ScriptId::Signout => SIGNOUT,
            ScriptId::Terminate => TERMINATE,
            ScriptId::Query => QUERY,
            ScriptId::Heartbeat => HEARTBEAT,
            ScriptId::Goodbye => GOODBYE,
            ScriptId::HookFire => HOOKFIRE,
        }
    }
}

/// The scripts' code with their hashes.
#[derive(Debug)]
pub struct Scripts {
    code: Vec<String>,
    hashes: Vec<String>,
}

impl Default for Scripts {
    fn default() -> Self {
        let code: Vec<String> = ScriptId::ALL
            .iter()
            .map(|id| format!("{COMMON}{}", id.body()))
            .collect();
        let hashes = code
            .iter()
            .map(|c| redis::Script::new(c).get_hash().to_string())
            .collect();
        Scripts { code, hashes }
    }
}

impl Scripts {
    /// The `EVALSHA` of script `id` with no keys, to which the caller adds its arguments.
    pub fn call(&self, id: ScriptId, prefix: &str, node: &str) -> redis::Cmd {
        let mut c = redis::cmd("EVALSHA");
        c.arg(&self.hashes[id as usize])
            .arg(0)
            .arg(prefix)
            .arg(node);
        c
    }

    /// Loads every script into the connected Redis (again after a restart emptied its cache).
    pub fn load(&self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for code in &self.code {
            pipe.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
        }
        pipe.exec(con)
    }
}
