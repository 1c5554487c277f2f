// The GCRA decision as one Lua script, so that one decision is one atomic round trip to Redis
// however many gateways share the counters (gcra.ts states the algorithm; local.ts is the same
// decision in process). KEYS: one counter per limit, all in one cluster slot (see keys.ts).
// ARGV[1]: units a gateway already admitted from its local batch, charged whatever happens;
// ARGV[2]: units asked for now (1; 0 when a batch is only reported); then, per key, the emission
// interval and the tolerance in microseconds. Redis's clock is used, so gateways whose clocks
// disagree still agree on the counters. Returns { 1 admitted | 0 refused, µs each TAT is ahead }.
export const gcraScript = `
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local committed = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local tats = {}
local admitted = 1
for i = 1, #KEYS do
  local emission = tonumber(ARGV[2 * i + 1])
  local tolerance = tonumber(ARGV[2 * i + 2])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '')
  if tat == nil or tat < now then tat = now end
  tat = tat + committed * emission
  tats[i] = tat
  if cost > 0 and tat + (cost - 1) * emission - now > tolerance + 0.001 then admitted = 0 end
end
local out = { admitted }
for i = 1, #KEYS do
  local tat = tats[i]
  if admitted == 1 then tat = tat + cost * tonumber(ARGV[2 * i + 1]) end
  if tat > now and (committed > 0 or (admitted == 1 and cost > 0)) then
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
  end
  out[i + 1] = math.floor(tat - now)
end
return out
`;

/** The name the script is defined under on ioredis clients (`defineCommand`: EVALSHA, EVAL on NOSCRIPT). */
export const gcraCommand = 'gatehouseGcra';
