local id, owner, delay, err = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local key = p .. 'job:' .. id
if redis.call('HGET', key, 'state') ~= 'running' or redis.call('HGET', key, 'owner') ~= owner then
  return 0
end
redis.call('HSET', key, 'error', err, 'next_at', ts(now + delay))
redis.call('HDEL', key, 'owner', 'lease_until')
redis.call('ZREM', p .. 'leases', id)
redis.call('ZADD', p .. 'waiting', now + delay, id)
setstate(id, key, 'running', 'retrying')
redis.call('HINCRBY', p .. 'counters', 'retries', 1)
return 1
