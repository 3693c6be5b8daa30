//! The Redis scripts the broker runs, each one atomic step on one key: a token bucket's
//! lease, a quota window's lease, and unspent quota tokens handed back. Times are Redis's
//! (`TIME`), so every node agrees on them whatever its own clock says.

/// The bucket script: KEYS[1] the bucket; ARGV tokens per ms, burst, tokens wanted, ms to
/// keep an idle bucket. Returns {granted, ms until one token when none was granted}.
pub const BUCKET: &str = r"
local per_ms = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1])
local at = tonumber(v[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * per_ms)
end
local grant = math.max(0, math.min(want, math.floor(tokens)))
tokens = tokens - grant
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local next_ms = 0
if grant == 0 then
  next_ms = math.ceil((1 - tokens) / per_ms)
end
return {grant, next_ms}
";

/// The quota script: KEYS[1] the count; ARGV limit, tokens wanted, copies leasing (nodes ×
/// shards), period (`hour`, `day`, `month`), now in ms since the epoch (0: Redis's `TIME`).
/// The record holds the current window's start and what it granted; a grant is at most what
/// is left over twice the copies (at least 1), so the last tokens spread over the shards.
/// The record expires an hour after its window ends, counted from the caller's now (a
/// relative expiry: a node clock off from Redis's neither shortens nor stretches it).
/// Returns {granted, ms until the window ends, left after the grant, window start in ms}.
pub const QUOTA: &str = r"
local limit = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local copies = tonumber(ARGV[3])
local period = ARGV[4]
local now = tonumber(ARGV[5])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local day = 86400000
-- days since 1970-01-01 of a civil date, and the civil date of such a day (proleptic
-- Gregorian, eras of 400 years)
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end
local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp + 3
  if m > 12 then m = m - 12 end
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m
end
local start, stop
if period == 'hour' then
  start = now - now % 3600000
  stop = start + 3600000
elseif period == 'day' then
  start = now - now % day
  stop = start + day
else
  local y, m = civil_from_days(math.floor(now / day))
  start = days_from_civil(y, m, 1) * day
  if m == 12 then y = y + 1; m = 1 else m = m + 1 end
  stop = days_from_civil(y, m, 1) * day
end
local v = redis.call('HMGET', KEYS[1], 'window', 'used')
local used = 0
if tonumber(v[1]) == start then used = tonumber(v[2]) or 0 end
local left = math.max(0, limit - used)
local grant = math.min(want, left, math.max(1, math.floor(left / (2 * copies))))
used = used + grant
redis.call('HSET', KEYS[1], 'window', string.format('%d', start), 'used', string.format('%d', used))
redis.call('PEXPIRE', KEYS[1], string.format('%d', stop - now + 3600000))
return {grant, stop - now, left - grant, start}
";

/// Unspent quota tokens back: KEYS[1] the count; ARGV tokens, the window they were granted
/// in. A count that moved on to another window is left alone.
pub const GIVE_BACK: &str = r"
local v = redis.call('HMGET', KEYS[1], 'window', 'used')
if tonumber(v[1]) ~= tonumber(ARGV[2]) then return 0 end
local used = math.max(0, (tonumber(v[2]) or 0) - tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'used', string.format('%d', used))
return 1
";
