// Where an OTLP/HTTP exporter sends, for traces and metrics alike.

/**
 * The exporter's options for `signal`: the endpoint given (a base URL, or the signal's full URL), `{}` when only the
 * standard variables configure it (the exporter reads them itself, appending /v1/<signal> to the generic one), or
 * null when nothing asks for export.
 */
export function otlpTarget(endpoint: string | undefined, signal: 'traces' | 'metrics'): { url?: string } | null {
  if (endpoint) {
    const base = endpoint.replace(/\/+$/, '');
    const path = `/v1/${signal}`;
    return { url: base.endsWith(path) ? base : `${base}${path}` };
  }
  const specific = process.env[`OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_ENDPOINT`];
  return specific || process.env.OTEL_EXPORTER_OTLP_ENDPOINT ? {} : null;
}
