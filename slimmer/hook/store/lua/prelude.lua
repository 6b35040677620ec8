if redis.replicate_commands then redis.replicate_commands() end  -- TIME before writes (< 5.0)
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function setstate(id, key, old, new)
  if old then redis.call('SREM', p .. 'state:' .. old, id) end
  redis.call('SADD', p .. 'state:' .. new, id)
  redis.call('HSET', key, 'state', new, 'updated', string.format('%.6f', now))
  redis.call('ZADD', p .. 'jobs', now, id)
end
local function ts(x) return string.format('%.6f', x) end
