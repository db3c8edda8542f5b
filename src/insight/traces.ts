// Trace export for `envelope serve`: the spans of src/pipeline/call-span.ts, batched and sent over OTLP/HTTP when an
// endpoint is set (as metrics.ts does for metrics). It registers the process's global tracer provider and the W3C
// trace-context propagator, so a client's `traceparent` parents the gateway's spans. The library never calls this:
// an application that embeds Envelope registers its own provider, and Envelope's spans go to it.
import { propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { otlpTarget } from './otlp.js';

export interface TracingOptions {
  /** OTLP/HTTP base URL (e.g. http://collector:4318); defaults to OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT. */
  otlpEndpoint?: string;
  /** More span processors (e.g. one with an in-memory exporter). */
  spanProcessors?: SpanProcessor[];
}

export interface Tracing {
  /** Exports the spans ended so far. */
  flush(): Promise<void>;
  /** Exports what is left and stops; the global provider goes back to the no-op one. */
  shutdown(): Promise<void>;
}

/** Starts tracing when an endpoint or a processor is configured; null (spans stay no-ops) otherwise. */
export function startTracing(options: TracingOptions = {}): Tracing | null {
  const processors = [...(options.spanProcessors ?? [])];
  const exporter = otlpExporter(options.otlpEndpoint);
  // Batched: a span costs the request path one queue push; the export happens off it (OTEL_BSP_* tune it).
  if (exporter) processors.push(new BatchSpanProcessor(exporter));
  if (processors.length === 0) return null;
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': 'envelope' }))
    .merge(detectResources({ detectors: [envDetector] })); // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
  const provider = new BasicTracerProvider({ resource, spanProcessors: processors });
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return {
    flush: () => provider.forceFlush(),
    async shutdown() {
      await provider.shutdown();
      trace.disable();
      propagation.disable();
    },
  };
}

function otlpExporter(endpoint: string | undefined): OTLPTraceExporter | undefined {
  const target = otlpTarget(endpoint, 'traces');
  return target ? new OTLPTraceExporter(target) : undefined;
}
