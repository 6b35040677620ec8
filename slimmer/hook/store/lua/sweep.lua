local requeue_after = tonumber(ARGV[2])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'leases', '-inf', '(' .. ts(now))) do
  local key = p .. 'job:' .. id
  redis.call('ZREM', p .. 'leases', id)
  if redis.call('HGET', key, 'state') == 'running' then
    local a = redis.call('HGET', key, 'attempts') or '0'
    redis.call('HSET', key, 'error', 'worker lost: lease expired during attempt ' .. a,
               'next_at', ts(now))
    redis.call('HDEL', key, 'owner', 'lease_until')
    setstate(id, key, 'running', 'queued')
    redis.call('ZADD', p .. 'waiting', now, id)
    redis.call('HINCRBY', p .. 'counters', 'lost', 1)
    out[#out + 1] = id
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'waiting', '-inf',
                               '(' .. ts(now - requeue_after))) do
  local key = p .. 'job:' .. id
  local st = redis.call('HGET', key, 'state')
  if st == 'queued' or st == 'retrying' then
    redis.call('ZADD', p .. 'waiting', now, id)
    redis.call('HSET', key, 'next_at', ts(now))
    out[#out + 1] = id
  else
    redis.call('ZREM', p .. 'waiting', id)
  end
end
return out
