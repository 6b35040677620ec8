local id, owner, state, saved = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local key = p .. 'job:' .. id
if redis.call('HGET', key, 'state') ~= 'running' or redis.call('HGET', key, 'owner') ~= owner then
  return 0
end
for i = 6, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', key, ARGV[i])
  else redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
end
redis.call('HSET', key, 'finished', ts(now))
redis.call('HDEL', key, 'owner', 'lease_until')
redis.call('ZREM', p .. 'leases', id)
setstate(id, key, 'running', state)
redis.call('HINCRBY', p .. 'counters', state, 1)
if saved > 0 then redis.call('HINCRBY', p .. 'counters', 'bytes_saved', saved) end
return 1
