// Where each webhook target's cursor (the seq of the last event it was sent) is kept between deliveries and
// across restarts, so no event is sent twice or skipped when the gateway comes back.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface CursorStore {
  load(targetId: string): Promise<number | undefined>;
  save(targetId: string, seq: number): Promise<void>;
}

/** For one process's lifetime (tests, or a gateway that starts webhooks from "now" on every start). */
export class MemoryCursorStore implements CursorStore {
  private readonly cursors = new Map<string, number>();

  async load(targetId: string): Promise<number | undefined> {
    return this.cursors.get(targetId);
  }

  async save(targetId: string, seq: number): Promise<void> {
    this.cursors.set(targetId, seq);
  }
}

/**
 * A small JSON file `{targetId: seq}`, replaced atomically (write a temporary file, then rename), so a crash
 * leaves either the old cursors or the new ones, never a torn file.
 */
export class FileCursorStore implements CursorStore {
  private cursors: Map<string, number> | undefined;
  /** Writes run one after another, in the order the saves were made. */
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {}

  private async all(): Promise<Map<string, number>> {
    if (this.cursors) return this.cursors;
    try {
      const parsed = JSON.parse(await readFile(this.path, 'utf8')) as Record<string, unknown>;
      this.cursors = new Map(
        Object.entries(parsed).filter((e): e is [string, number] => Number.isInteger(e[1]) && (e[1] as number) >= 0),
      );
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      this.cursors = new Map();
    }
    return this.cursors;
  }

  async load(targetId: string): Promise<number | undefined> {
    return (await this.all()).get(targetId);
  }

  async save(targetId: string, seq: number): Promise<void> {
    const cursors = await this.all();
    cursors.set(targetId, seq);
    const text = JSON.stringify(Object.fromEntries(cursors));
    const write = async (): Promise<void> => {
      await mkdir(dirname(this.path), { recursive: true });
      const tmp = `${this.path}.${process.pid}.tmp`;
      await writeFile(tmp, text);
      await rename(tmp, this.path);
    };
    this.writing = this.writing.then(write, write);
    await this.writing;
  }
}
