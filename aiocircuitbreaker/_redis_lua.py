"""The Lua script behind the Redis storage: each protocol operation as one atomic step.

One script, one ``EVALSHA`` per operation, dispatching on ``ARGV[1]``. The keys of one breaker
share a Redis Cluster hash tag (see ``redis.py``):

``KEYS[1]`` the state hash
    ``g`` generation, ``st`` state, ``f`` failures, ``o`` openings, ``d`` open_for (as the
    client wrote it), ``at`` when it was stored, ``n`` the latest time seen; the failure streak
    ``c``; a window's totals ``wc wf ws`` and its position ``wn`` (count) or head epoch ``wh``
    (time); the probes ``pr ps pf pl pn`` (running, successes, failures, slow, run).
``KEYS[2]`` the window's slots: ``<i>`` a count window's call flags (1 failed, 2 slow), or
    ``c<i> f<i> s<i>`` a time window's bucket counters.
``KEYS[3]`` the probe leases: owner token -> ``until,max`` (the lease may be renewed up to max).
``KEYS[4]`` the quorum's reporters: owner -> when it last reported a failure.

Common arguments: ``ARGV[2]`` now (empty: the server's ``TIME``), ``ARGV[3]`` the keys' TTL in
milliseconds, ``ARGV[4..6]`` the window (kind ``''``, ``'c'`` or ``'t'``; size or bucket
length; buckets), ``ARGV[7..8]`` the quorum (processes, seconds); the operation's own from
``ARGV[9]``. ``successes`` adds successes counted in the client (a count window's, once they
can no longer trip it) in one step. Numbers go back as strings (``%.17g``): a Lua number in a
reply would be cut to an integer. A time earlier than the latest one seen is taken as that one
(the server's clock may step back: no age, lease or window goes backwards).
"""

from __future__ import annotations

__all__ = ["SCRIPT"]

SCRIPT = r"""
if redis.replicate_commands then redis.replicate_commands() end
local S, W, L, Q = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op = ARGV[1]
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[2])
end
local ttl = tonumber(ARGV[3])
local wkind, wa, wb = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local qk, qwin = tonumber(ARGV[7]), tonumber(ARGV[8])

local function fmt(x) return string.format('%.17g', x) end
local function num(x)
  if x == 'inf' then return math.huge end
  return tonumber(x)
end
local function geti(k) return tonumber(redis.call('HGET', S, k) or '0') end

local last = tonumber(redis.call('HGET', S, 'n') or '')
if last and now < last then now = last end

local function touch()
  redis.call('HSET', S, 'n', fmt(now))
  for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, ttl) end
end

local function ensure()
  if redis.call('EXISTS', S) == 0 then
    redis.call('HSET', S, 'g', '0', 'st', 'closed', 'f', '0', 'o', '0', 'd', '0.0',
      'at', fmt(now), 'c', '0')
    return true
  end
  return false
end

local function current()
  local v = redis.call('HMGET', S, 'g', 'st')
  if not v[1] then return 0, 'closed' end
  return tonumber(v[1]), v[2]
end

local function counting(st) return st == 'closed' or st == 'metrics_only' end

-- the time window -------------------------------------------------------------------------
local function tw_move(epoch)
  local head = tonumber(redis.call('HGET', S, 'wh') or '')
  if head and epoch - head >= wb then
    redis.call('DEL', W)
    redis.call('HSET', S, 'wc', 0, 'wf', 0, 'ws', 0)
  elseif head then
    for e = head + 1, epoch do
      local slot = e % wb
      local c = tonumber(redis.call('HGET', W, 'c' .. slot) or '0')
      if c > 0 then
        local f = tonumber(redis.call('HGET', W, 'f' .. slot) or '0')
        local s = tonumber(redis.call('HGET', W, 's' .. slot) or '0')
        redis.call('HDEL', W, 'c' .. slot, 'f' .. slot, 's' .. slot)
        redis.call('HINCRBY', S, 'wc', 0 - c)  -- (not -c: Redis refuses '-0')
        redis.call('HINCRBY', S, 'wf', 0 - f)
        redis.call('HINCRBY', S, 'ws', 0 - s)
      end
    end
  end
  redis.call('HSET', S, 'wh', fmt(epoch))
end

local function tw_record(failed, slow, started)
  local epoch = math.floor(now / wa)
  local head = tonumber(redis.call('HGET', S, 'wh') or '')
  if not head or epoch > head then
    tw_move(epoch)
    head = epoch
  end
  local start = math.floor(started / wa)
  if start > head then start = head elseif start <= head - wb then return end
  local slot = start % wb
  redis.call('HINCRBY', W, 'c' .. slot, 1)
  redis.call('HINCRBY', S, 'wc', 1)
  if failed then
    redis.call('HINCRBY', W, 'f' .. slot, 1)
    redis.call('HINCRBY', S, 'wf', 1)
  end
  if slow then
    redis.call('HINCRBY', W, 's' .. slot, 1)
    redis.call('HINCRBY', S, 'ws', 1)
  end
end

local function tw_peek()
  local c, f, s = geti('wc'), geti('wf'), geti('ws')
  local head = tonumber(redis.call('HGET', S, 'wh') or '')
  local epoch = math.floor(now / wa)
  if head and epoch > head then
    if epoch - head >= wb then return 0, 0, 0 end
    for e = head + 1, epoch do
      local slot = e % wb
      c = c - tonumber(redis.call('HGET', W, 'c' .. slot) or '0')
      f = f - tonumber(redis.call('HGET', W, 'f' .. slot) or '0')
      s = s - tonumber(redis.call('HGET', W, 's' .. slot) or '0')
    end
  end
  return c, f, s
end

-- the count window ------------------------------------------------------------------------
local function cw_record(failed, slow)
  local flags = (failed and 1 or 0) + (slow and 2 or 0)
  local i = geti('wn')
  local old = tonumber(redis.call('HGET', W, tostring(i)) or '0')
  redis.call('HSET', W, tostring(i), flags)
  redis.call('HINCRBY', S, 'wf', (flags % 2) - (old % 2))
  redis.call('HINCRBY', S, 'ws', math.floor(flags / 2) - math.floor(old / 2))
  if geti('wc') < wa then redis.call('HINCRBY', S, 'wc', 1) end
  i = i + 1
  if i == wa then i = 0 end
  redis.call('HSET', S, 'wn', i)
end

-- the quorum: failures count only once qk processes reported one within qwin seconds -------
local function below_quorum()
  if qk <= 1 then return false end
  local all = redis.call('HGETALL', Q)
  local seen = 0
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) >= now - qwin then seen = seen + 1 end
  end
  return seen < qk
end

local function counts()
  local c, f, s = 0, 0, 0
  if wkind == 't' then c, f, s = tw_peek()
  elseif wkind == 'c' then c, f, s = geti('wc'), geti('wf'), geti('ws') end
  local streak = geti('c')
  if below_quorum() then f, streak = 0, 0 end
  return {fmt(c), fmt(f), fmt(s), fmt(streak)}
end

-- the probes ------------------------------------------------------------------------------
local function probes(admitted, expired)
  local p = redis.call('HMGET', S, 'pr', 'ps', 'pf', 'pl', 'pn')
  local out = {admitted and '1' or '0'}
  for i = 1, 5 do out[#out + 1] = p[i] or '0' end
  for _, e in ipairs(expired) do out[#out + 1] = fmt(e) end
  return out
end

local function expire()
  local all = redis.call('HGETALL', L)
  local out = {}
  for i = 1, #all, 2 do
    local untl = num(string.match(all[i + 1], '^([^,]+)'))
    if untl <= now then out[#out + 1] = {untl, all[i]} end
  end
  table.sort(out, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
  local ago = {}
  for _, e in ipairs(out) do
    redis.call('HDEL', L, e[2])
    ago[#ago + 1] = now - e[1]
  end
  if #out > 0 then
    redis.call('HINCRBY', S, 'pr', 0 - #out)
    redis.call('HINCRBY', S, 'pf', #out)
    redis.call('HINCRBY', S, 'pn', #out)
  end
  return ago
end

-- the operations --------------------------------------------------------------------------
if op == 'init' then
  if ensure() then touch() end
  return 1
end

if op == 'read' then
  local g, st = current()
  local v = redis.call('HMGET', S, 'f', 'o', 'd', 'at')
  local age = 0
  if v[4] then age = math.max(0, now - tonumber(v[4])) end
  local out = {fmt(g), st, v[1] or '0', v[2] or '0', v[3] or '0.0', fmt(age)}
  if counting(st) then
    for _, x in ipairs(counts()) do out[#out + 1] = x end
  elseif st == 'half_open' then
    for _, x in ipairs(probes(false, {})) do out[#out + 1] = x end
    local all = redis.call('HGETALL', L)
    local left = {}
    for i = 2, #all, 2 do left[#left + 1] = num(string.match(all[i], '^([^,]+)')) - now end
    table.sort(left)
    for _, x in ipairs(left) do out[#out + 1] = fmt(x) end
  end
  return out
end

local gen = tonumber(ARGV[9])
local g, st = current()

if op == 'replace' then
  if g ~= gen then return 0 end
  if tonumber(ARGV[10]) <= gen then return 2 end
  local nst, nf = ARGV[11], ARGV[12]
  redis.call('DEL', W, L, Q)
  redis.call('HDEL', S, 'wn', 'wc', 'wf', 'ws', 'wh', 'pr', 'ps', 'pf', 'pl', 'pn')
  redis.call('HSET', S, 'g', ARGV[10], 'st', nst, 'f', nf, 'o', ARGV[13], 'd', ARGV[14],
    'at', fmt(now), 'c', counting(nst) and nf or '0')
  touch()
  return 1
end

if op == 'record' then
  if g ~= gen or not counting(st) then return false end
  local failed, slow = ARGV[10] == '1', ARGV[11] == '1'
  if failed then
    redis.call('HINCRBY', S, 'c', 1)
    if qk > 1 then redis.call('HSET', Q, ARGV[13], fmt(now)) end
  else
    redis.call('HSET', S, 'c', 0)
    if qk > 1 and wkind == '' then redis.call('DEL', Q) end
  end
  if wkind == 't' then tw_record(failed, slow, now - tonumber(ARGV[12]))
  elseif wkind == 'c' then cw_record(failed, slow) end
  touch()
  return counts()
end

if op == 'successes' then
  if g ~= gen or not counting(st) then return false end
  local n = math.min(tonumber(ARGV[10]), wa)
  for _ = 1, n do cw_record(false, false) end
  redis.call('HSET', S, 'c', 0)
  touch()
  return 1
end

if g ~= gen or st ~= 'half_open' then return false end
local token = ARGV[10]

if op == 'acquire' then
  local ago = expire()
  if redis.call('HEXISTS', L, token) == 1 then
    touch()
    return probes(true, ago)
  end
  local limit, successes = tonumber(ARGV[11]), tonumber(ARGV[12] ~= '' and ARGV[12] or nil)
  local lease, hold = num(ARGV[13]), num(ARGV[14])
  local pr, ps, pf = geti('pr'), geti('ps'), geti('pf')
  local undecided, taken
  if successes == nil then
    undecided, taken = ps + pf < limit, pr + ps + pf
  else
    undecided, taken = pf == 0 and ps < successes, pr
  end
  local admitted = undecided and taken < limit
  if admitted then
    redis.call('HSET', L, token, fmt(now + math.min(lease, hold)) .. ',' .. fmt(now + lease))
    redis.call('HINCRBY', S, 'pr', 1)
  end
  touch()
  return probes(admitted, ago)
end

if op == 'release' then
  local ago = expire()
  if redis.call('HDEL', L, token) == 0 then
    if #ago == 0 then return false end
    touch()
    return probes(false, ago)
  end
  local outcome, slow = ARGV[11], ARGV[12] == '1'
  redis.call('HINCRBY', S, 'pr', -1)
  if outcome == 's' then
    redis.call('HINCRBY', S, 'ps', 1)
    redis.call('HSET', S, 'pn', 0)
  elseif outcome == 'f' then
    redis.call('HINCRBY', S, 'pf', 1)
    redis.call('HINCRBY', S, 'pn', 1)
  end
  if slow and outcome ~= 'n' then redis.call('HINCRBY', S, 'pl', 1) end
  touch()
  return probes(false, ago)
end

if op == 'renew' then
  local hold = num(ARGV[11])
  for i = 12, #ARGV do
    local v = redis.call('HGET', L, ARGV[i])
    if v then
      local untl, mx = string.match(v, '^([^,]+),(.+)$')
      local renewed = math.min(num(mx), now + hold)
      if renewed > num(untl) then
        redis.call('HSET', L, ARGV[i], fmt(renewed) .. ',' .. mx)
      end
    end
  end
  touch()
  return 1
end

return redis.error_reply('unknown operation ' .. op)
"""
