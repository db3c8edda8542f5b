// A request body as the gateway holds it (issue 16): the client's bytes, read by its provider's scan where the scan
// can vouch for them (providers/json-scan.ts), else parsed whole as before. The pipeline sees it through
// wireDialect(provider), which answers parse, prepare and strip from the scan, or from the parsed body, so a body the
// scan cannot read is treated exactly as it was before there was one.
import { ScanFallback } from '../providers/json-scan.js';
import type { Provider, ScannedCall } from '../providers/provider.js';
import { parseJson } from './http-io.js';

export class WireBody {
  private parsedBody: unknown;
  private isParsed = false;

  private constructor(
    /** The bytes as received (or, for the body going upstream, as spliced). */
    readonly raw: Buffer,
    /** The provider's reading of the bytes, or null when they are parsed whole. */
    readonly scanned: ScannedCall | null,
    /** Why they are parsed whole (the scan's reason), or null when the scan read them. */
    readonly fallback: string | null,
  ) {}

  /** A client's body: scanned when its provider scans and the scan can read it. */
  static read(provider: Provider, raw: Buffer, path: string): WireBody {
    if (!provider.scan) return new WireBody(raw, null, 'no_scan');
    try {
      return new WireBody(raw, provider.scan(raw, path), null);
    } catch (e) {
      // Whatever the scan threw (a field it does not read, a check that fails), the parse decides, as before.
      return new WireBody(raw, null, e instanceof ScanFallback ? e.reason : 'check');
    }
  }

  /** Bytes going upstream as they are. */
  static of(raw: Buffer): WireBody {
    return new WireBody(raw, null, null);
  }

  /** The body parsed (once): `invalid_request` when it is not JSON or nests too deep. */
  parsed(): unknown {
    if (!this.isParsed) {
      this.parsedBody = parseJson(this.raw);
      this.isParsed = true;
    }
    return this.parsedBody;
  }
}

const dialects = new WeakMap<Provider, Provider<WireBody>>();

/** The provider over WireBody: its scan where there is one, its parse and prepare over the parsed body otherwise. */
export function wireDialect(provider: Provider): Provider<WireBody> {
  let d = dialects.get(provider);
  if (d) return d;
  const record = (body: WireBody): Record<string, unknown> => body.parsed() as Record<string, unknown>;
  d = Object.create(provider) as Provider<WireBody>;
  d.parse = (body, path) => {
    const wire = body as WireBody;
    return wire.scanned?.shape ?? provider.parse(wire.parsed(), path);
  };
  d.prepare = (body, plan) => WireBody.of(body.scanned ? body.scanned.prepare(plan) : Buffer.from(JSON.stringify(provider.prepare(record(body), plan))));
  d.strip = (body) => WireBody.of(body.scanned ? body.scanned.strip() : Buffer.from(JSON.stringify(provider.strip(record(body)))));
  // An exact count near the budget's edge posts the prompt's fields: the one step that needs the body parsed.
  if (provider.countInputTokens) d.countInputTokens = (req) => provider.countInputTokens!({ ...req, body: record(req.body as unknown as WireBody) });
  dialects.set(provider, d);
  return d;
}
