// Where a task or a reservation lives in the Redis store: its path (root first, so its tree), from a cache of facts
// that never change, else from its lookup key; and task rows read outside any tree's batch.
import type { RedisClient } from './redis-scripts.js';
import type { TaskRow } from '../budget/types.js';
import { BoundedMap } from './bounded-map.js';
import type { RedisKeys } from './redis-keys.js';
import { rowFromHash } from './redis-rows.js';

const LOOKUPS_MAX = 100_000;

export class RedisLookups {
  readonly taskPaths = new BoundedMap<string, string[]>(LOOKUPS_MAX);
  readonly reservationPaths = new BoundedMap<string, string[]>(LOOKUPS_MAX);

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {}

  async taskPath(id: string): Promise<string[] | undefined> {
    const cached = this.taskPaths.get(id);
    if (cached) return cached;
    const text = await this.redis.get(this.keys.taskPath(id));
    return text ? (JSON.parse(text) as string[]) : undefined;
  }

  async reservationPath(id: string): Promise<string[] | undefined> {
    const cached = this.reservationPaths.get(id);
    if (cached) return cached;
    const text = await this.redis.hget(this.keys.reservationPaths(), id);
    return text ? (JSON.parse(text) as string[]) : undefined;
  }

  async readTask(root: string, id: string): Promise<TaskRow | undefined> {
    const row = rowFromHash(await this.redis.hgetall(this.keys.row(root, `t:${id}`)), `t:${id}`) as TaskRow | null;
    if (!row) return undefined;
    this.taskPaths.set(id, row.pathIds);
    return row;
  }

  async getTask(id: string): Promise<TaskRow | undefined> {
    const path = await this.taskPath(id);
    return path ? this.readTask(path[0]!, id) : undefined;
  }

  async getTasks(ids: string[]): Promise<TaskRow[]> {
    const rows = await Promise.all(ids.map((id) => this.getTask(id)));
    return rows.filter((t): t is TaskRow => t !== undefined);
  }
}
