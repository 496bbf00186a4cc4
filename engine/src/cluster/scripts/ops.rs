//! The scripts of the workers' operations: joins, leaves, publishes, sign-ins, terminations,
//! and the API's questions.
//!
//! Every operation script takes the node's operation number as `ARGV[3]` and starts with the
//! guard (`super::common`): it answers [`super::NOT_REGISTERED`] or [`super::ALREADY`] and
//! does nothing, or does its work and answers as documented above it. Its own arguments start
//! at `ARGV[4]`. QUERY changes nothing and has no operation number.

/// JOIN: 4 app, 5 channel, 6 worker, 7 slot, 8 generation, 9 the join's number on its worker,
/// 10 presence user id ('' for none), 11 user_info, 12 socket id, 13 max presence members,
/// 14 '1' for a cache channel, 15 and 16 the `subscription_count` JSON around the number (''
/// when the app sends no count events; the count is still taken for the webhook when 18 has
/// `n`), 17 the `member_added` frame, 18 the webhooks the app wants ([`HOOK_FLAGS`]).
/// Answers the subscriber through this node's inbox (`t=ja`); returns 0 when a full presence
/// channel refused the member, else 1, or `{1, webhook codes...}` ([`HOOK_CODES`]) when the
/// join decided webhooks.
pub const JOIN: &str = r#"
local g = guard(ARGV[3])
if g ~= 0 then return g end
local app, ch, user = ARGV[4], ARGV[5], ARGV[10]
local has = hooks_for(ARGV[18] or '')
local out = {1}
local base = app .. ':' .. ch
local answer = {'t', 'ja', 'w', ARGV[6], 's', ARGV[7], 'g', ARGV[8], 'q', ARGV[9], 'a', app, 'c', ch, 'u', user}
local pres = P .. ':pres:' .. base
local new_member = false
if user ~= '' then
  local npc = P .. ':npc:' .. NODE
  local npcf = app .. '\0' .. ch .. '\0' .. user
  if redis.call('HINCRBY', npc, npcf, 1) == 1 then
    if redis.call('HEXISTS', pres, user) == 0 and redis.call('HLEN', pres) >= tonumber(ARGV[13]) then
      redis.call('HDEL', npc, npcf)
      table.insert(answer, 'ok')
      table.insert(answer, '0')
      xadd(NODE, unpack(answer))
      return 0
    end
    if redis.call('HINCRBY', P .. ':pcnt:' .. base, user, 1) == 1 then
      redis.call('HSET', pres, user, ARGV[11])
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
if ARGV[14] == '1' then
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
  publish(app, ch, ARGV[12], ARGV[17], '')
end
local sent = count(app, ch, ARGV[15], ARGV[16], has('n'))
if has('n') then count_hook(out, app, ch, sent) end
if #out == 1 then return 1 end
return out
"#;

/// LEAVE: 4 app, 5 channel, 6 presence user id ('' for none), 7 the `member_removed` frame,
/// 8 and 9 the `subscription_count` JSON around the number ('' when the app sends no count
/// events), 10 the webhooks the app wants ([`HOOK_FLAGS`]). Returns 1, or `{1, webhook
/// codes...}` ([`HOOK_CODES`]) when the leave decided webhooks.
pub const LEAVE: &str = r#"
local g = guard(ARGV[3])
if g ~= 0 then return g end
local app, ch, user = ARGV[4], ARGV[5], ARGV[6]
local has = hooks_for(ARGV[10] or '')
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
      publish(app, ch, '', ARGV[7], '')
      if has('m') then
        departure(out, P .. ':whr', field .. '\0' .. user, 'r')
      end
    end
  end
end
if has('o') and emptied then
  departure(out, P .. ':whv', field, 'v')
end
local sent = count(app, ch, ARGV[8], ARGV[9], has('n'))
if has('n') then count_hook(out, app, ch, sent) end
if #out == 1 then return 1 end
return out
"#;

/// HOOKFIRE: from 3 on, groups of five: kind (`v` a pending `channel_vacated`, `r` a pending
/// `member_removed`, `d` a deferred `subscription_count`), app, channel, user id (or ''), and
/// the due time the departure was recorded with (or ''). Run by the node that decided the
/// departure (with a leave, or by reaping a dead node) once its delay has passed. Not an
/// operation: it has no number and no guard, since it only removes what it finds unchanged.
/// Returns per group 1 when the webhook is to be sent (nobody came back: the pending entry
/// was still there, and is now removed), 0 when it is not, and for `d` the channel's
/// subscription count, or -1 when another node sent it.
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

/// PUBLISH: from 4 on, groups of seven: app, channel, excluded socket id ('' for none),
/// frame, cache data, cache TTL in milliseconds ('' for a channel that is not a cache
/// channel), and '1' when this node's own subscribers already have the event (it was
/// delivered here while Redis was unreachable). One call per API request, so a batch is
/// atomic and in order on every node. Every interested node's inbox gets the frame, this
/// node's too (unless it already has it): the node's own subscribers take a publish in the
/// order Redis ran it, like everyone else's, so publishes made one after the other through
/// different nodes arrive in that order everywhere. The entries carry the origin node, the
/// operation number, the item's place in the request (`i`, from 0) and `e` '1' on the last
/// item a node gets of it, so a receiver drops an item it already delivered (a publish sent
/// again after Redis restarted empty) and delivers every item of a batch or multi-channel
/// trigger. Returns 1 when this node's inbox got a copy (it has subscribers of a channel),
/// else 0.
pub const PUBLISH: &str = r#"
local g = guard(ARGV[3])
if g ~= 0 then return g end
local here = 0
local to, last = {}, {}
for i = 4, #ARGV, 7 do
  local item = (i - 4) / 7
  local nodes = {}
  for _, n in ipairs(interested(ARGV[i], ARGV[i + 1])) do
    if ARGV[i + 6] ~= '1' or n ~= NODE then
      nodes[#nodes + 1] = n
      last[n] = item
      if n == NODE then here = 1 end
    end
  end
  to[item] = nodes
end
for i = 4, #ARGV, 7 do
  local app, ch, x, f, data, ttl = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  if ttl ~= '' then
    local k = P .. ':cache:' .. app .. ':' .. ch
    redis.call('HSET', k, 'f', f, 'd', data)
    redis.call('PEXPIRE', k, ttl)
  end
  local item = (i - 4) / 7
  publish_op(to[item], app, ch, x, f, ARGV[3], item, last)
end
return here
"#;

/// SIGNIN: 4 app, 5 user, 6 worker, 7 slot, 8 generation, 9 the watchlist frame saying the
/// user came online, 10 on: the user ids it watches. Answers the watchlist's online/offline
/// split through this node's inbox (`t=wl`). Returns 1.
pub const SIGNIN: &str = r#"
local g = guard(ARGV[3])
if g ~= 0 then return g end
local app, user = ARGV[4], ARGV[5]
for i = 10, #ARGV do
  redis.call('HINCRBY', P .. ':watch:' .. app .. ':' .. ARGV[i], user, 1)
  redis.call('HINCRBY', P .. ':nwatch:' .. NODE, watch_field(app, ARGV[i], user), 1)
end
redis.call('HINCRBY', P .. ':nuon:' .. NODE, app .. '\0' .. user, 1)
local uon = P .. ':uon:' .. app
local came = redis.call('HINCRBY', uon, user, 1) == 1
if #ARGV >= 10 then
  local on, off = {}, {}
  for i = 10, #ARGV do
    if redis.call('HEXISTS', uon, ARGV[i]) == 1 then
      table.insert(on, ARGV[i])
    else
      table.insert(off, ARGV[i])
    end
  end
  xadd(NODE, 't', 'wl', 'w', ARGV[6], 's', ARGV[7], 'g', ARGV[8], 'on', cjson.encode(on), 'off', cjson.encode(off))
end
if came then
  notify(app, user, ARGV[9])
end
return 1
"#;

/// SIGNOUT: 4 app, 5 user, 6 the watchlist frame saying the user went offline, 7 on: the user
/// ids it watched. Returns 1.
pub const SIGNOUT: &str = r#"
local g = guard(ARGV[3])
if g ~= 0 then return g end
local app, user = ARGV[4], ARGV[5]
for i = 7, #ARGV do
  local k = P .. ':watch:' .. app .. ':' .. ARGV[i]
  if redis.call('HINCRBY', k, user, -1) <= 0 then
    redis.call('HDEL', k, user)
  end
  local nw = P .. ':nwatch:' .. NODE
  local wf = watch_field(app, ARGV[i], user)
  if redis.call('HINCRBY', nw, wf, -1) <= 0 then
    redis.call('HDEL', nw, wf)
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
  notify(app, user, ARGV[6])
end
return 1
"#;

/// TERMINATE: 4 app, 5 user, 6 '1' when this node already closed the user's connections
/// (while Redis was unreachable). Every node closes the user's connections. Returns 1.
pub const TERMINATE: &str = r#"
local g = guard(ARGV[3])
if g ~= 0 then return g end
for _, n in ipairs(redis.call('SMEMBERS', P .. ':nodes')) do
  if ARGV[6] ~= '1' or n ~= NODE then
    xadd(n, 't', 'tm', 'a', ARGV[4], 'u', ARGV[5])
  end
end
return 1
"#;

/// QUERY: 3 kind, 4 app, 5 channel or prefix. `c`: {subscriptions, users[, cache data, cache
/// ms left]}; `l`: {channel, subscriptions, users, ...} for the occupied channels whose name
/// starts with the prefix; `u`: a presence channel's user ids; `n` (no 5): {node, connections
/// to the app as its last heartbeat counted them, PTTL of its lease, ...} for every node of
/// `{P}:nodes` (a PTTL of -2 is a lease that has expired and not been reaped yet).
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
