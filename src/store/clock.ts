// A shared store's clock, as replicas read it alike: the local clock corrected by its offset to the server's,
// measured over a few round trips (the one with the shortest round trip wins: its error is under half of it) at
// connect and every minute after. Periods of tenant envelopes and reservation expiries are decided on it.
const SAMPLES = 3;
const RESYNC_MS = 60_000;

export class StoreClock {
  private offsetMs = 0;
  private timer: NodeJS.Timeout | null = null;

  /** `serverNowMs`: one read of the server's time, in ms since the epoch. */
  constructor(private readonly serverNowMs: () => Promise<number>) {}

  async start(): Promise<void> {
    await this.sync();
    this.timer = setInterval(() => void this.sync().catch(() => undefined), RESYNC_MS);
    this.timer.unref();
  }

  private async sync(): Promise<void> {
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < SAMPLES; i++) {
      const before = Date.now();
      const server = await this.serverNowMs();
      const after = Date.now();
      if (after - before < best) {
        best = after - before;
        this.offsetMs = server - (before + after) / 2;
      }
    }
  }

  now(): number {
    return Math.round(Date.now() + this.offsetMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
