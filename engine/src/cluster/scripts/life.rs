//! The scripts of a node's life in the cluster: registering, re-asserting what its
//! connections hold, settling after Redis lost its data, the heartbeat (which reaps the dead)
//! and the goodbye.
//!
//! Three of them take the app table as triples from a fixed argument on: app id, this node's
//! open connections to it, and '1' when the app sends `subscription_count` events, 'h' when
//! only its webhooks want the counts, '0' otherwise (the reaper builds the counts of a dead
//! node's channels itself).

/// REGISTER: 3 the epoch this node knows ('' for none), 4 a fresh epoch to use if Redis has
/// none, 5 the operation number to start from, 6 the lease in milliseconds, 7 '1' to start
/// from scratch even when still registered, 8 the highest operation number Redis answered
/// this node, 9 on: the app triples.
///
/// `{P}:epoch` names the data set: a Redis that restarted without persistence (or was
/// flushed) has none, and the first node to register after that writes a new one. Returns
/// `{mode, epoch}`:
///
/// - `continue`: the same data set and the node is still registered (a connection that broke
///   and came back, a Redis that was only slow): everything the node contributed is there.
/// - `silent`: another data set, or this one without the last operations Redis answered the
///   node (a Redis restored from an older snapshot). What the node contributed is gone or
///   stale, and it puts its own back without events, since every client already saw those
///   members and counts.
/// - `loud`: the same data set, but the node is not registered: its lease expired and a
///   survivor reaped it, sending `member_removed` for its members. It comes back with events,
///   as new joins.
///
/// Except in `continue`, whatever is left under the node's id goes first, silently (nothing
/// is, unless a re-assertion was interrupted), and the node starts from scratch: it is in
/// `{P}:rebuilding` until it has asserted its share (the other nodes wait for that before they
/// send what they held, `super::super::command`).
pub const REGISTER: &str = r#"
local ek = P .. ':epoch'
local ep = redis.call('GET', ek)
if not ep then
  ep = ARGV[4]
  redis.call('SET', ek, ep)
end
local mode
if ep ~= ARGV[3] then
  mode = 'silent'
elseif registered() and ARGV[7] ~= '1' then
  if tonumber(redis.call('GET', P .. ':nop:' .. NODE)) < tonumber(ARGV[8]) then
    mode = 'silent'
  else
    mode = 'continue'
  end
else
  mode = 'loud'
end
if mode ~= 'continue' then
  local apps, sc = app_list(9)
  -- What is left under this id: the rest of a reap that survivors had begun (its events are
  -- due), or an interrupted re-assertion of its own (whose events were not all sent).
  local dying = redis.call('SISMEMBER', P .. ':dead', NODE) == 1
  reap(NODE, dying, sc, apps, false)
  redis.call('SET', P .. ':nop:' .. NODE, ARGV[5])
  redis.call('SADD', P .. ':rebuilding', NODE)
end
redis.call('SET', P .. ':node:' .. NODE, '1', 'PX', ARGV[6])
redis.call('SADD', P .. ':nodes', NODE)
return {mode, ep}
"#;

/// ASSERT: 3 `loud` or `silent`, then records, each a tag and its fields:
///
/// - `s` app, channel, subscriptions, and the `subscription_count` JSON around the number (''
///   when off);
/// - `m` app, channel, user, its connections, `user_info`, the `member_added` frame;
/// - `u` app, user, its signed-in connections, the watchlist frame saying it came online;
/// - `w` app, watched user, watcher, the watcher's connections;
/// - `h` an operation number: the node's highest applied one is raised to it (after a loud
///   assertion, the operations Redis answered before the reap are not sent again).
///
/// Adds this node's share of each fact. A `loud` assertion sends what new joins would: the
/// member's `member_added` to the other nodes (this node's own clients never saw it leave),
/// the channel's count, the watchers' `online`. Returns 1, or [`super::NOT_REGISTERED`].
pub const ASSERT: &str = r#"
if not registered() then return NOT_REGISTERED end
local loud = ARGV[3] == 'loud'
local i = 4
while i <= #ARGV do
  local t = ARGV[i]
  if t == 's' then
    local app, ch, c = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
    local base = app .. ':' .. ch
    redis.call('HINCRBY', P .. ':nsubs:' .. NODE, app .. '\0' .. ch, c)
    redis.call('SADD', P .. ':int:' .. base, NODE)
    redis.call('HINCRBY', P .. ':subs:' .. base, NODE, c)
    redis.call('SADD', P .. ':chans:' .. app, ch)
    if loud then count(app, ch, ARGV[i + 4], ARGV[i + 5]) end
    i = i + 6
  elseif t == 'm' then
    local app, ch, user, c = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
    local base = app .. ':' .. ch
    if redis.call('HINCRBY', P .. ':npc:' .. NODE, app .. '\0' .. ch .. '\0' .. user, c) == c then
      if redis.call('HINCRBY', P .. ':pcnt:' .. base, user, 1) == 1 then
        redis.call('HSET', P .. ':pres:' .. base, user, ARGV[i + 5])
        if loud then publish(app, ch, '', ARGV[i + 6], NODE) end
      end
    end
    i = i + 7
  elseif t == 'u' then
    local app, user, c = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
    redis.call('HINCRBY', P .. ':nuon:' .. NODE, app .. '\0' .. user, c)
    if redis.call('HINCRBY', P .. ':uon:' .. app, user, c) == c and loud then
      notify(app, user, ARGV[i + 4])
    end
    i = i + 5
  elseif t == 'w' then
    local app, watched, watcher, c = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
    redis.call('HINCRBY', P .. ':watch:' .. app .. ':' .. watched, watcher, c)
    redis.call('HINCRBY', P .. ':nwatch:' .. NODE, watch_field(app, watched, watcher), c)
    i = i + 5
  elseif t == 'h' then
    local k = P .. ':nop:' .. NODE
    if tonumber(redis.call('GET', k)) < tonumber(ARGV[i + 1]) then
      redis.call('SET', k, ARGV[i + 1])
    end
    i = i + 2
  else
    return redis.error_reply('ASSERT: unknown record ' .. tostring(t))
  end
end
return 1
"#;

/// SETTLE: once every node re-asserted after Redis lost its data (or a few seconds passed),
/// what changed meanwhile is sent. Records from 3:
///
/// - `r` app, channel, user, the `member_removed` frame: a member whose last connection here
///   left while Redis was away; removed everywhere if no node has them now;
/// - `c` app, channel, the `subscription_count` JSON around the number: the channel's count,
///   sent again;
/// - `o` app, user, the watchlist frame saying it went offline: a user who signed out here
///   while Redis was away; their watchers are told if no node has them signed in now;
/// - `l` app, worker, slot, generation, the watched user ids as a JSON list: a sign-in made
///   while Redis was away, whose connection is told which of them are online (`t=wl`, as
///   SIGNIN answers). A re-assertion with events (after a reap) sends only these.
///
/// Returns 1, or [`super::NOT_REGISTERED`].
pub const SETTLE: &str = r#"
if not registered() then return NOT_REGISTERED end
local i = 3
while i <= #ARGV do
  local t = ARGV[i]
  if t == 'r' then
    local app, ch, user = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    if redis.call('HEXISTS', P .. ':pres:' .. app .. ':' .. ch, user) == 0 then
      publish(app, ch, '', ARGV[i + 4], '')
    end
    i = i + 5
  elseif t == 'c' then
    count(ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
    i = i + 5
  elseif t == 'o' then
    local app, user = ARGV[i + 1], ARGV[i + 2]
    if redis.call('HEXISTS', P .. ':uon:' .. app, user) == 0 then
      notify(app, user, ARGV[i + 3])
    end
    i = i + 4
  elseif t == 'l' then
    local uon = P .. ':uon:' .. ARGV[i + 1]
    local ok, ids = pcall(cjson.decode, ARGV[i + 5])
    local on, off = {}, {}
    if ok and type(ids) == 'table' then
      for _, id in ipairs(ids) do
        if redis.call('HEXISTS', uon, id) == 1 then
          table.insert(on, id)
        else
          table.insert(off, id)
        end
      end
    end
    xadd(NODE, 't', 'wl', 'w', ARGV[i + 2], 's', ARGV[i + 3], 'g', ARGV[i + 4], 'on', cjson.encode(on), 'off', cjson.encode(off))
    i = i + 6
  else
    return redis.error_reply('SETTLE: unknown record ' .. tostring(t))
  end
end
return 1
"#;

/// HEARTBEAT: 3 the lease in milliseconds, 4 the reaper's budget ([`super::REAP_BUDGET`]),
/// 5 on: the app triples. Renews the lease, publishes the connection counts, sends the
/// throttled `subscription_count`s that are due (whichever node's heartbeat comes first),
/// takes every registered node whose lease has expired out of the registered ones into
/// `{P}:dead`, and reaps up to the budget of the dead nodes' entries. Returns `{0}` when this
/// node is not registered (it must register again, and nothing was done), else `{1, others,
/// nodes, reaped, hooks}`: per app the connections of the other nodes whose lease is alive, the
/// registered nodes, the nodes this call found dead, and the webhooks the reaping decided,
/// which this node sends as it would a leave's: groups of five, kind (`v` a pending
/// `channel_vacated`, `r` a pending `member_removed`, `n` a `subscription_count`, `d` a
/// throttled one), app id, channel, user id (or ''), and the pending departure's due time or
/// the count (or ''). The departures wait their 3 s in `{P}:whv` / `{P}:whr` like a leave's,
/// so a join on any node within them cancels them (a reaped user who reconnected elsewhere);
/// whether the app wants each webhook is the reaping node's to check.
pub const HEARTBEAT: &str = r#"
if not registered() then return {0} end
flush_counts()
redis.call('SET', P .. ':node:' .. NODE, '1', 'PX', ARGV[3])
redis.call('SADD', P .. ':nodes', NODE)
local apps, sc = app_list(5)
local reaped, hooks = {}, {}
for _, n in ipairs(redis.call('SMEMBERS', P .. ':nodes')) do
  if n ~= NODE and redis.call('EXISTS', P .. ':node:' .. n) == 0 then
    unregister(n)
    redis.call('SADD', P .. ':dead', n)
    table.insert(reaped, n)
  end
end
local budget = tonumber(ARGV[4])
for _, n in ipairs(redis.call('SMEMBERS', P .. ':dead')) do
  if budget <= 0 then break end
  local _, left = reap_step(n, true, sc, apps, true, budget, hooks)
  budget = left
end
local others = {}
for i = 5, #ARGV, 3 do
  local k = P .. ':conns:' .. ARGV[i]
  redis.call('HSET', k, NODE, ARGV[i + 1])
  local all = redis.call('HGETALL', k)
  local sum = 0
  for j = 1, #all, 2 do
    if all[j] ~= NODE and redis.call('EXISTS', P .. ':node:' .. all[j]) == 1 then
      sum = sum + tonumber(all[j + 1])
    end
  end
  table.insert(others, sum)
end
return {1, others, redis.call('SMEMBERS', P .. ':nodes'), reaped, hooks}
"#;

/// GOODBYE: 3 on: the app triples. A node that stops cleanly reaps itself: its subscriptions
/// left with its connections before this, and whatever is still recorded under its id (with
/// its events), its lease, counts and inbox go now. Returns 1.
pub const GOODBYE: &str = r#"
local apps, sc = app_list(3)
reap(NODE, true, sc, apps, true)
return 1
"#;
