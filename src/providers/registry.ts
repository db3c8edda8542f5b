// Every provider Envelope serves, in one list: the gateway's routes, the SDK wrappers' URL matching, the CLI's
// `--NAME-url` flags and `--upstream NAME=FAMILY:URL`, and the routes a 404 names all come from here.
import { anthropic } from './anthropic.js';
import { gemini } from './gemini.js';
import { openai } from './openai.js';
import { openaiResponses } from './openai-responses.js';
import type { Provider, ProviderRoute, UpstreamFamily } from './provider.js';

type CallerHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** Where two providers serve one path (GET /v1/models), the one that owns the caller's headers wins, else the last. */
export const PROVIDERS: readonly Provider[] = [anthropic, gemini, openai, openaiResponses];

/** The fallback for a caller whose headers name no provider: OpenAI's shape is what most clients expect. */
export const DEFAULT_PROVIDER: Provider = openai;

/** The upstream families (one base URL each), in the order of their first provider. */
export const FAMILIES: readonly UpstreamFamily[] = [...new Map(PROVIDERS.map((p) => [p.family.name, p.family])).values()];

export const familyNamed = (name: string): UpstreamFamily | undefined => FAMILIES.find((f) => f.name === name);

export interface Served {
  provider: Provider;
  route: ProviderRoute;
}

/** Picks among the providers serving one path: the caller's own, else the last (the default). */
export function pick(candidates: readonly Served[], headers: CallerHeaders): Served | undefined {
  return candidates.find((c) => c.provider.ownsCaller?.(headers)) ?? candidates.at(-1);
}

/** The provider a caller speaks, from its headers and path (for the shape of an error on a path no provider serves). */
export const providerOfCaller = (headers: CallerHeaders, path?: string): Provider => PROVIDERS.find((p) => p.ownsCaller?.(headers, path)) ?? DEFAULT_PROVIDER;

/** The provider behind an AI SDK model (`anthropic.messages`, `openai.responses`, `google.generative-ai` …). */
export const providerOfAiSdk = (providerId: string): Provider | undefined => {
  const name = providerId.split('.')[0];
  return PROVIDERS.find((p) => (p.aiSdkProvider ?? p.family.name) === name);
};

/** The routes the gateway serves, for a 404 that names them. */
export const routeLabels = (): string[] => [...new Set(PROVIDERS.flatMap((p) => p.routes.map((r) => `${r.method} ${r.label}`)))];

/** Unanchored copies of the patterns, to find a call at the end of any base URL's path (task.wrap). */
const TAILS = new Map<RegExp, RegExp>();
const tailOf = (re: RegExp): RegExp => {
  let tail = TAILS.get(re);
  if (!tail) TAILS.set(re, (tail = new RegExp(re.source.replace(/^\^/, ''))));
  return tail;
};

/** The budgeted call an SDK's request URL is, whatever base URL the client was given; undefined for anything else. */
export function callAtUrl(method: string, pathname: string): Served | undefined {
  for (const provider of PROVIDERS) {
    for (const route of provider.routes) {
      if (route.kind !== 'call' || route.method !== method) continue;
      if (typeof route.path === 'string' ? pathname.endsWith(route.path) : tailOf(route.path).test(pathname)) return { provider, route };
    }
  }
  return undefined;
}
