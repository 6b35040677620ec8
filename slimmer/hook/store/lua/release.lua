local id, owner = ARGV[2], ARGV[3]
local key = p .. 'job:' .. id
if redis.call('HGET', key, 'state') ~= 'running' or redis.call('HGET', key, 'owner') ~= owner then
  return 0
end
local attempts = tonumber(redis.call('HGET', key, 'attempts') or '1')
redis.call('HSET', key, 'attempts', tostring(math.max(0, attempts - 1)), 'next_at', ts(now))
redis.call('HDEL', key, 'owner', 'lease_until')
redis.call('ZREM', p .. 'leases', id)
redis.call('ZADD', p .. 'waiting', now, id)
setstate(id, key, 'running', 'queued')
return 1
