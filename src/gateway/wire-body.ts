// A request body as the gateway holds it (issue 16): the client's bytes, read by its provider's scan where the scan
// can vouch for them (providers/json-scan.ts), else parsed whole as before. The pipeline sees it through
// wireDialect(provider), which answers parse, prepare and strip from the scan, or from the parsed body, so a body the
// scan cannot read is treated exactly as it was before there was one.
import { joinParts, ScanFallback, type BodyParts } from '../providers/json-scan.js';
import type { Provider, ScannedCall } from '../providers/provider.js';
import { parseJson } from './http-io.js';

export class WireBody {
  private parsedBody: unknown;
  private isParsed = false;

  private bytes: Buffer | null;

  private constructor(
    /** The bytes as received; for the body going upstream, its pieces as spliced (see `parts`) joined on demand. */
    bytes: Buffer | null,
    /** The body in pieces, in order: the client's buffer as one, or the slices and edits a splice made. */
    readonly parts: BodyParts,
    /** The provider's reading of the bytes, or null when they are parsed whole. */
    readonly scanned: ScannedCall | null,
    /** Why they are parsed whole (the scan's reason), or null when the scan read them. */
    readonly fallback: string | null,
  ) {
    this.bytes = bytes;
  }

  /** A client's body: scanned when its provider scans and the scan can read it. */
  static read(provider: Provider, raw: Buffer, path: string): WireBody {
    if (!provider.scan) return new WireBody(raw, [raw], null, 'no_scan');
    try {
      return new WireBody(raw, [raw], provider.scan(raw, path), null);
    } catch (e) {
      // Whatever the scan threw (a field it does not read, a check that fails), the parse decides, as before.
      return new WireBody(raw, [raw], null, e instanceof ScanFallback ? e.reason : 'check');
    }
  }

  /** A body going upstream, as the pieces to send. */
  static of(parts: BodyParts): WireBody {
    return new WireBody(null, parts, null, null);
  }

  /** The bytes in one buffer (the body going upstream: its pieces copied together, once). */
  get raw(): Buffer {
    return (this.bytes ??= joinParts(this.parts));
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
  d.prepare = (body, plan) => WireBody.of(body.scanned ? body.scanned.prepare(plan) : [Buffer.from(JSON.stringify(provider.prepare(record(body), plan)))]);
  d.strip = (body) => WireBody.of(body.scanned ? body.scanned.strip() : [Buffer.from(JSON.stringify(provider.strip(record(body))))]);
  // An exact count near the budget's edge posts the prompt's fields: the one step that needs the body parsed.
  if (provider.countInputTokens) d.countInputTokens = (req) => provider.countInputTokens!({ ...req, body: record(req.body as unknown as WireBody) });
  dialects.set(provider, d);
  return d;
}
