// The two Lua scripts of the Redis store. Neither knows a budget rule: `commit` compares row versions and writes
// what the TypeScript rules decided; `publish` copies committed events, run records and index entries to the shared
// keys. Each script touches one hash slot: `commit` one task tree, `publish` the shared `{~}` slot.

/**
 * Applies a batch of decided changes to one task tree, in order, each only if every row it read is unchanged.
 * KEYS: the keys the batch checks or writes. ARGV: nOps, then per op: nChecks, {keyIndex, field, expected}…,
 * nWrites, {write}…  `expected` '' means "must not exist"; field `v` is a task's version, `s` a reservation's status.
 * Writes: `H keyIndex field value field value` | `Z keyIndex score member` | `X keyIndex payload` (outbox entry).
 * Returns how many ops were applied: fewer than nOps means the next op found a row changed since it was read.
 */
export const COMMIT_LUA = `
local pos = 2
for op = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[pos]); pos = pos + 1
  for _ = 1, n do
    local have = redis.call('HGET', KEYS[tonumber(ARGV[pos])], ARGV[pos + 1])
    local want = ARGV[pos + 2]
    pos = pos + 3
    if (want == '' and have) or (want ~= '' and have ~= want) then return op - 1 end
  end
  n = tonumber(ARGV[pos]); pos = pos + 1
  for _ = 1, n do
    local kind, key = ARGV[pos], KEYS[tonumber(ARGV[pos + 1])]
    if kind == 'H' then
      redis.call('HSET', key, ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4], ARGV[pos + 5]); pos = pos + 6
    elseif kind == 'Z' then
      redis.call('ZADD', key, ARGV[pos + 2], ARGV[pos + 3]); pos = pos + 4
    else
      redis.call('XADD', key, '*', 'p', ARGV[pos + 2]); pos = pos + 3
    end
  end
end
return tonumber(ARGV[1])
`;

/**
 * Publishes one tree's outbox entries, each exactly once: entries at or before the tree's cursor were published
 * already (by this process or another), so a retry or a concurrent publisher skips them.
 * KEYS[1] cursor hash, KEYS[2] event sequence, KEYS[3] outbox registry, KEYS[4…] the shared keys the ops name.
 * ARGV: root, registeredAt ('' keeps the registry entry), nEntries, then per entry: entryId, nOps, ops…
 * Ops: `E all task tenant json` (next sequence number s, then XADD 0-s to the three streams) |
 * `Z keyIndex score member` | `H keyIndex field value`.
 * The registry entry is removed only if no writer re-registered the tree since `registeredAt`.
 */
export const PUBLISH_LUA = `
local function later(a, b)
  if not b then return true end
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
local root = ARGV[1]
local cursor = redis.call('HGET', KEYS[1], root)
local pos = 4
local published = 0
for _ = 1, tonumber(ARGV[3]) do
  local id, n = ARGV[pos], tonumber(ARGV[pos + 1]); pos = pos + 2
  local fresh = later(id, cursor)
  for _ = 1, n do
    local kind = ARGV[pos]
    if kind == 'E' then
      if fresh then
        local sid = '0-' .. redis.call('INCR', KEYS[2])
        for k = 1, 3 do redis.call('XADD', KEYS[tonumber(ARGV[pos + k])], sid, 'e', ARGV[pos + 4]) end
      end
      pos = pos + 5
    else
      if fresh then
        if kind == 'Z' then redis.call('ZADD', KEYS[tonumber(ARGV[pos + 1])], ARGV[pos + 2], ARGV[pos + 3])
        else redis.call('HSET', KEYS[tonumber(ARGV[pos + 1])], ARGV[pos + 2], ARGV[pos + 3]) end
      end
      pos = pos + 4
    end
  end
  if fresh then cursor = id; published = published + 1 end
end
if cursor then redis.call('HSET', KEYS[1], root, cursor) end
if ARGV[2] ~= '' and tonumber(redis.call('ZSCORE', KEYS[3], root)) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[3], root)
end
return published
`;
