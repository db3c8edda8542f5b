// The Lua scripts of the Redis store. None knows a budget rule: `commit` compares row versions and writes what the
// TypeScript rules decided; `takeTurn` orders writers on a busy tree; `publish` copies committed events, run records
// and index entries to the shared keys. Each script touches one hash slot: one task tree, or the shared `{~}` slot.
import type { Cluster, Redis, Result } from 'ioredis';

/** A client of one Redis, or of a Redis Cluster: the store's commands are the same on both. */
export type RedisClient = Redis | Cluster;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    envelopeCommit(numKeys: number, ...keysAndArgs: (string | number)[]): Result<[number, ...(string[] | number)[]], Context>;
    envelopePublish(numKeys: number, ...keysAndArgs: (string | number)[]): Result<number, Context>;
    envelopeTakeTurn(numKeys: number, ...keysAndArgs: (string | number)[]): Result<[number, ...(string[] | number)[]], Context>;
  }
}

/**
 * Shared by the scripts that need a tree's turn (KEYS[1] the turn, KEYS[2] the writer next in line; locals `me`,
 * `turnMs`): returns {2, ms to wait} while another writer has the turn or is next in line, else leaves `holder` set
 * (this writer, or nil when the turn is free: the caller takes it).
 */
const WAIT_FOR_TURN = `local holder = redis.call('GET', KEYS[1])
if holder and holder ~= me then
  local wait = redis.call('PTTL', KEYS[1])
  if not redis.call('SET', KEYS[2], me, 'NX', 'PX', turnMs * 4) and redis.call('GET', KEYS[2]) ~= me then wait = wait + turnMs end
  return {2, wait}
end
if not holder then
  local waiting = redis.call('GET', KEYS[2])
  if waiting and waiting ~= me then return {2, tonumber(turnMs)} end
end`;

/**
 * Applies a batch of decided changes to one task tree if every row the batch read is unchanged, else nothing.
 * KEYS[1] is the tree's turn, KEYS[2] the writer waiting for the next one (see RedisStore: turns only order
 * writers; the version checks alone keep the ledger exact).
 * ARGV[1]: one JSON array (one argument is far cheaper to send than hundreds): writerId, turnMs, nChecks,
 * {keyIndex, field, expected}…, then writes to the end.
 * `expected` '' means "must not exist"; the field is a task's `version` or a reservation's `status` (redis-rows.ts).
 * Writes: `H keyIndex n field value…` (n pairs) | `Z keyIndex score member` | `X keyIndex payload` (outbox entry).
 * Returns {1} when written; {2, ms} when another writer has the turn (the first writer to ask goes next; try again
 * in ms); {0, row…} on a conflict
 * (a row changed since it was read): nothing written, and every checked row as it is now, to decide again on.
 */
export const COMMIT_LUA = `
local A = cjson.decode(ARGV[1])
local me, turnMs, checks = A[1], A[2], A[3]
${WAIT_FOR_TURN}
for i = 0, checks - 1 do
  local at = 4 + i * 3
  local have = redis.call('HGET', KEYS[tonumber(A[at])], A[at + 1])
  local want = A[at + 2]
  if (want == '' and have) or (want ~= '' and have ~= want) then
    local fresh = {0}
    for j = 0, checks - 1 do fresh[j + 2] = redis.call('HGETALL', KEYS[tonumber(A[4 + j * 3])]) end
    return fresh
  end
end
if not holder then
  redis.call('SET', KEYS[1], me, 'PX', turnMs)
  redis.call('DEL', KEYS[2])
end
local pos = 4 + checks * 3
while pos <= #A do
  local kind, key = A[pos], KEYS[tonumber(A[pos + 1])]
  if kind == 'H' then
    local n = tonumber(A[pos + 2])
    redis.call('HSET', key, unpack(A, pos + 3, pos + 2 + 2 * n)); pos = pos + 3 + 2 * n
  elseif kind == 'Z' then
    redis.call('ZADD', key, A[pos + 2], A[pos + 3]); pos = pos + 4
  else
    redis.call('XADD', key, '*', 'p', A[pos + 2]); pos = pos + 3
  end
end
return {1}
`;

/**
 * Takes a tree's turn for a writer that found it busy, and returns the rows it will decide on, so that its next
 * commit neither waits nor conflicts. KEYS[1] turn, KEYS[2] next turn, KEYS[3…] the rows. ARGV: writerId, turnMs.
 * Returns {1, row…} with the turn taken, or {2, ms} while another writer has it (that writer then goes next).
 */
export const TAKE_TURN_LUA = `
local me, turnMs = ARGV[1], ARGV[2]
${WAIT_FOR_TURN}
if not holder then
  redis.call('SET', KEYS[1], me, 'PX', turnMs)
  redis.call('DEL', KEYS[2])
end
local rows = {1}
for i = 3, #KEYS do rows[i - 1] = redis.call('HGETALL', KEYS[i]) end
return rows
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
        elseif kind == 'R' then redis.call('ZREM', KEYS[tonumber(ARGV[pos + 1])], ARGV[pos + 3])
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

export const SCRIPT_COMMANDS = ['envelopeCommit', 'envelopePublish', 'envelopeTakeTurn'] as const;

/** Makes the scripts commands of a client (sent by their SHA, loaded once per connection). */
export function defineScripts(redis: RedisClient): void {
  redis.defineCommand('envelopeCommit', { lua: COMMIT_LUA });
  redis.defineCommand('envelopePublish', { lua: PUBLISH_LUA });
  redis.defineCommand('envelopeTakeTurn', { lua: TAKE_TURN_LUA });
}
