//! The helpers every script starts with.
//!
//! Besides writing to the inboxes, they hold the two rules every script shares:
//!
//! - **The guard** ([`COMMON`]'s `guard`): a script that changes the cluster's facts first
//!   checks that the calling node is registered (its `{P}:nop:{node}` key exists) and that its
//!   operation number is above the highest one Redis has applied for the node. An unregistered
//!   node (reaped after its lease expired, or unknown to a Redis that lost its data) changes
//!   nothing and hears [`NOT_REGISTERED`]: a node that comes back cannot resurrect members or
//!   counts that were already taken away. An operation sent again after a connection broke
//!   mid-pipeline hears [`ALREADY`] when Redis had run it: every operation counts once.
//! - **The reaper** (`reap_step`): removes what a node contributed, with the events it causes
//!   (`member_removed`, `subscription_count`, watchlist `offline`), built here because the node
//!   that caused them is gone. A survivor's heartbeat takes a dead node out of the registered
//!   ones at once (so the node, if it was only frozen, learns it must register again) into
//!   `{P}:dead`, then reaps at most [`REAP_BUDGET`] of its entries per heartbeat: each entry is
//!   removed by exactly one step of one survivor, with its events, and a node with a hundred
//!   thousand subscriptions does not stop Redis for seconds. There it also records the
//!   webhooks a leave would cause (pending `member_removed` and `channel_vacated` in
//!   `{P}:whr` / `{P}:whv`, counts), which go back to that survivor. `reap` does it all at
//!   once, for a node's own goodbye.
//!
//! The webhook helpers (`arrival`, `departure`, `count_hook`) are JOIN's and LEAVE's: see
//! `super::ops::HOOK_CODES`.

/// A script's answer when the calling node is not registered: nothing was done.
pub const NOT_REGISTERED: i64 = -1;
/// A script's answer when the operation was already applied: nothing was done again.
pub const ALREADY: i64 = -2;
/// Entries (subscriptions, members, sign-ins, watches) of dead nodes one heartbeat reaps at
/// most: a few tens of milliseconds of Redis's time (on the test machine 2,000 took 12 to 16
/// ms, 10,000 at once 190 ms), so that no other node's command waits long behind it.
pub const REAP_BUDGET: u32 = 5000;

/// The Lua every script starts with.
pub const COMMON: &str = r#"
local P = ARGV[1]
local NODE = ARGV[2]
local MAXLEN = 100000
local NOT_REGISTERED = -1
local ALREADY = -2
local function guard(op)
  local k = P .. ':nop:' .. NODE
  local hw = redis.call('GET', k)
  if not hw then return NOT_REGISTERED end
  if tonumber(op) <= tonumber(hw) then return ALREADY end
  redis.call('SET', k, op)
  return 0
end
local function registered()
  return redis.call('EXISTS', P .. ':nop:' .. NODE) == 1
end
local function xadd(node, ...)
  redis.call('XADD', P .. ':inbox:' .. node, 'MAXLEN', '~', MAXLEN, '*', ...)
end
local function interested(app, ch)
  return redis.call('SMEMBERS', P .. ':int:' .. app .. ':' .. ch)
end
local function publish(app, ch, except, frame, skip)
  for _, n in ipairs(interested(app, ch)) do
    if n ~= skip then
      xadd(n, 't', 'p', 'a', app, 'c', ch, 'x', except, 'f', frame)
    end
  end
end
-- Item `item` of publish `op` to the nodes `to`; `last[n]` is the last item node n gets.
local function publish_op(to, app, ch, except, frame, op, item, last)
  for _, n in ipairs(to) do
    local e = '0'
    if last[n] == item then e = '1' end
    xadd(n, 't', 'p', 'a', app, 'c', ch, 'x', except, 'f', frame, 'o', NODE, 'n', op, 'i', item, 'e', e)
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
local function jstr(s)
  return (string.gsub(cjson.encode(s), '\\/', '/'))
end
local function removed_frame(ch, user)
  return wsframe('{"event":"pusher_internal:member_removed","channel":' .. jstr(ch)
    .. ',"data":' .. jstr('{"user_id":' .. jstr(user) .. '}') .. '}')
end
local function offline_frame(user)
  return wsframe('{"event":"pusher_internal:watchlist_events","data":'
    .. jstr('{"events":[{"name":"offline","user_ids":[' .. jstr(user) .. ']}]}') .. '}')
end
local function count_parts(ch)
  return '{"event":"pusher_internal:subscription_count","channel":' .. jstr(ch)
    .. ',"data":"{\\"subscription_count\\":', '}"}'
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
-- Publishes the count event of a channel when the node passed its JSON (pre is not ''),
-- and returns the count.
local function send_count(app, ch, pre, post)
  local t = total(app, ch)
  if t > 0 and pre ~= '' then
    publish(app, ch, '', wsframe(pre .. string.format('%d', t) .. post), '')
  end
  return t
end
-- A channel's count changed: its count event when the app sends those (pre is not ''), and
-- its count for the subscription_count webhook when `hook`, both under the one throttle.
-- Returns nil when neither is wanted, false when throttled, else the count.
local function count(app, ch, pre, post, hook)
  if pre == '' and not hook then return nil end
  local field = app .. '\0' .. ch
  if total(app, ch) > THROTTLE_ABOVE then
    local k = P .. ':cthr:' .. app .. ':' .. ch
    if not redis.call('SET', k, '1', 'PX', THROTTLE_MS, 'NX') then
      if pre ~= '' then
        redis.call('HSET', P .. ':cdirty', field, pre .. '\0' .. post)
      end
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
-- A webhook of a departure: pending in `hash` until the deciding node fires it. Returns the
-- due time, which the fire must find unchanged.
local function pend(hash, field)
  local due = tostring(now_ms() + HOOK_DELAY_MS)
  redis.call('HSET', hash, field, due)
  return due
end
local function departure(out, hash, field, code)
  table.insert(out, code)
  table.insert(out, pend(hash, field))
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
-- A webhook the reaper decided, for the survivor that reaps: kind, app, channel, user, and
-- the due time of a pending departure or the count of a subscription_count.
local function reaped_hook(hooks, kind, app, ch, user, arg)
  if hooks then
    for _, x in ipairs({kind, app, ch, user, arg}) do table.insert(hooks, x) end
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
local function watch_field(app, watched, watcher)
  return app .. '\0' .. cjson.encode({watched, watcher})
end
-- The app triples from `from` on: the app ids, and per app that counts its channels '1'
-- (it sends count events, and its webhooks may want the counts) or 'h' (only its webhooks
-- want them).
local function app_list(from)
  local apps, sc = {}, {}
  for i = from, #ARGV, 3 do
    apps[#apps + 1] = ARGV[i]
    local c = ARGV[i + 2]
    if c == '1' or c == 'h' then sc[ARGV[i]] = c end
  end
  return apps, sc
end
local function take(key, budget)
  local out, seen, cursor = {}, {}, '0'
  repeat
    local r = redis.call('HSCAN', key, cursor, 'COUNT', budget)
    cursor = r[1]
    for i = 1, #r[2], 2 do
      local f = r[2][i]
      if not seen[f] and #out < 2 * budget then
        seen[f] = true
        out[#out + 1] = f
        out[#out + 1] = r[2][i + 1]
      end
    end
  until cursor == '0' or #out >= 2 * budget
  return out
end
local function reap_some(n, events, sc, budget, hooks)
  local counted = {}
  local f = take(P .. ':nsubs:' .. n, budget)
  for i = 1, #f, 2 do
    local app, ch = string.match(f[i], '^(.-)%z(.*)$')
    if app then
      local base = app .. ':' .. ch
      redis.call('SREM', P .. ':int:' .. base, n)
      local subs = P .. ':subs:' .. base
      redis.call('HDEL', subs, n)
      if redis.call('EXISTS', subs) == 0 then
        redis.call('SREM', P .. ':chans:' .. app, ch)
        if hooks then
          reaped_hook(hooks, 'v', app, ch, '', pend(P .. ':whv', f[i]))
        end
      end
      if events and sc[app] and string.sub(ch, 1, 9) ~= 'presence-' then
        counted[#counted + 1] = {app, ch}
      end
    end
    redis.call('HDEL', P .. ':nsubs:' .. n, f[i])
  end
  budget = budget - #f / 2
  if budget <= 0 then return counted, budget end
  f = take(P .. ':npc:' .. n, budget)
  for i = 1, #f, 2 do
    local app, ch, user = string.match(f[i], '^(.-)%z(.-)%z(.*)$')
    if app then
      local base = app .. ':' .. ch
      local pcnt = P .. ':pcnt:' .. base
      if redis.call('HINCRBY', pcnt, user, -1) <= 0 then
        redis.call('HDEL', pcnt, user)
        redis.call('HDEL', P .. ':pres:' .. base, user)
        if events then publish(app, ch, '', removed_frame(ch, user), n) end
        if hooks then
          reaped_hook(hooks, 'r', app, ch, user, pend(P .. ':whr', f[i]))
        end
      end
    end
    redis.call('HDEL', P .. ':npc:' .. n, f[i])
  end
  budget = budget - #f / 2
  if budget <= 0 then return counted, budget end
  f = take(P .. ':nuon:' .. n, budget)
  for i = 1, #f, 2 do
    local app, user = string.match(f[i], '^(.-)%z(.*)$')
    if app then
      local uon = P .. ':uon:' .. app
      if redis.call('HINCRBY', uon, user, -tonumber(f[i + 1])) <= 0 then
        redis.call('HDEL', uon, user)
        if events then notify(app, user, offline_frame(user)) end
      end
    end
    redis.call('HDEL', P .. ':nuon:' .. n, f[i])
  end
  budget = budget - #f / 2
  if budget <= 0 then return counted, budget end
  f = take(P .. ':nwatch:' .. n, budget)
  for i = 1, #f, 2 do
    local app, pair = string.match(f[i], '^(.-)%z(.*)$')
    local ok, ids = pcall(cjson.decode, pair or '')
    if app and ok and type(ids) == 'table' and ids[1] and ids[2] then
      local k = P .. ':watch:' .. app .. ':' .. ids[1]
      if redis.call('HINCRBY', k, ids[2], -tonumber(f[i + 1])) <= 0 then
        redis.call('HDEL', k, ids[2])
      end
    end
    redis.call('HDEL', P .. ':nwatch:' .. n, f[i])
  end
  return counted, budget - #f / 2
end
local function forget(n, apps, drop_inbox)
  for _, app in ipairs(apps) do
    redis.call('HDEL', P .. ':conns:' .. app, n)
  end
  redis.call('DEL', P .. ':nsubs:' .. n, P .. ':npc:' .. n, P .. ':nuon:' .. n,
    P .. ':nwatch:' .. n, P .. ':nop:' .. n, P .. ':node:' .. n)
  redis.call('SREM', P .. ':dead', n)
  if drop_inbox then
    redis.call('DEL', P .. ':inbox:' .. n)
  end
end
local function unregister(n)
  redis.call('SREM', P .. ':nodes', n)
  redis.call('SREM', P .. ':rebuilding', n)
  redis.call('DEL', P .. ':nop:' .. n)
end
local function reap_step(n, events, sc, apps, drop_inbox, budget, hooks)
  local counted, left = reap_some(n, events, sc, budget, hooks)
  for _, c in ipairs(counted) do
    local pre, post = '', ''
    if sc[c[1]] == '1' then pre, post = count_parts(c[2]) end
    local sent = count(c[1], c[2], pre, post, hooks ~= nil)
    if hooks and sent == false then
      redis.call('HSET', P .. ':whcd', c[1] .. '\0' .. c[2], '1')
      reaped_hook(hooks, 'd', c[1], c[2], '', '')
    elseif hooks and sent and sent > 0 then
      reaped_hook(hooks, 'n', c[1], c[2], '', tostring(sent))
    end
  end
  if left > 0 then
    forget(n, apps, drop_inbox)
    return true, left
  end
  return false, left
end
local function reap(n, events, sc, apps, drop_inbox, hooks)
  unregister(n)
  repeat
    local done = reap_step(n, events, sc, apps, drop_inbox, 100000, hooks)
  until done
end
"#;
