local id, owner, lease, max_attempts = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local key = p .. 'job:' .. id
local st = redis.call('HGET', key, 'state')
if not st then return {'missing'} end
local attempts = tonumber(redis.call('HGET', key, 'attempts') or '0')
if st == 'running' then
  if tonumber(redis.call('HGET', key, 'lease_until') or '0') >= now then return {'busy'} end
  redis.call('HSET', key, 'error', 'worker lost: lease expired during attempt ' .. attempts)
  redis.call('HINCRBY', p .. 'counters', 'lost', 1)
elseif st ~= 'queued' and st ~= 'retrying' then
  return {st}
end
redis.call('ZREM', p .. 'leases', id)
redis.call('ZREM', p .. 'waiting', id)
if attempts >= max_attempts then
  local err = redis.call('HGET', key, 'error') or 'unknown error'
  redis.call('HSET', key, 'error', 'gave up after ' .. attempts .. ' attempts: ' .. err,
             'finished', ts(now))
  redis.call('HDEL', key, 'owner', 'lease_until')
  setstate(id, key, st, 'failed')
  redis.call('HINCRBY', p .. 'counters', 'failed', 1)
  return {'gave-up'}
end
redis.call('HSET', key, 'owner', owner, 'lease_until', ts(now + lease),
           'attempts', tostring(attempts + 1), 'started', ts(now))
setstate(id, key, st, 'running')
redis.call('ZADD', p .. 'leases', now + lease, id)
local out = {'claimed'}
for _, v in ipairs(redis.call('HGETALL', key)) do out[#out + 1] = v end
return out
