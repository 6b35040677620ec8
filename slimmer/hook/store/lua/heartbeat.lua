local owner, lease = ARGV[2], tonumber(ARGV[3])
local n = 0
for i = 4, #ARGV do
  local key = p .. 'job:' .. ARGV[i]
  if redis.call('HGET', key, 'state') == 'running' and redis.call('HGET', key, 'owner') == owner then
    redis.call('HSET', key, 'lease_until', ts(now + lease))
    redis.call('ZADD', p .. 'leases', now + lease, ARGV[i])
    n = n + 1
  end
end
return n
