local id = ARGV[2]
local key = p .. 'job:' .. id
local old = redis.call('HGET', key, 'state')
if old and old ~= 'failed' then return 0 end
if old then redis.call('SREM', p .. 'state:' .. old, id); redis.call('DEL', key) end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, unpack(fields))
redis.call('HSET', key, 'attempts', '0', 'created', ts(now), 'next_at', ts(now))
setstate(id, key, nil, 'queued')
redis.call('ZADD', p .. 'waiting', now, id)
return 1
