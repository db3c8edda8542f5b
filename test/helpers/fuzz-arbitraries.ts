// Generators for the fuzz suite (test/fuzz.test.ts): request bodies of every dialect the gateway reads, the AI SDK's
// prompt, Envelope's own headers and the admin API's inputs. Each is mostly the right shape, with any field now and
// then replaced by any JSON value, left out, or the whole body broken (truncated, not JSON, nested too deep): the
// bodies a parser meets from clients that are buggy, hostile or merely new.
import fc from 'fast-check';

/** Characters a header value may hold (fetch refuses the others before sending). */
const printable = fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c));
export const headerText = fc.string({ unit: printable, maxLength: 24 });

/** Any JSON value, shallow. */
export const json = fc.jsonValue({ maxDepth: 3 });

/** The right kind of value most of the time; now and then any JSON value. Record keys are left out at random. */
export function mostly<T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 20, arbitrary: valid }, { weight: 1, arbitrary: json });
}

/** Left out most of the time (a field that sends most calls one way when present). */
const rarely = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });

const words = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('hello', 'job: 3 subtasks', 'continue', '', 'x'.repeat(300)) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
);
const count = fc.oneof({ weight: 30, arbitrary: fc.integer({ min: 1, max: 5_000 }) }, { weight: 1, arbitrary: fc.integer() }, { weight: 1, arbitrary: fc.double() }, { weight: 1, arbitrary: fc.constantFrom(0, -1, 1e300, 2 ** 53) });
const dict = fc.dictionary(fc.string({ maxLength: 6 }), json, { maxKeys: 3 });
const opt = { requiredKeys: [] as never[] };

/** Anthropic Messages. */
const anthropicBlock = fc.oneof(
  fc.record({ type: fc.constant('text'), text: mostly(words), cache_control: mostly(fc.record({ type: fc.constant('ephemeral') })) }, { requiredKeys: ['type'] as never[] }),
  fc.record({ type: fc.constant('tool_use'), id: mostly(fc.constantFrom('tu_1', 'tu_2')), name: mostly(fc.constant('do_subtask')), input: mostly(dict) }, opt),
  fc.record({ type: fc.constant('tool_result'), tool_use_id: mostly(fc.constant('tu_1')), content: mostly(fc.oneof(words, fc.array(fc.record({ type: fc.constant('text'), text: words }), { maxLength: 2 }))) }, opt),
  fc.record({ type: fc.constantFrom('image', 'document', 'thinking'), source: json }, opt),
  json,
);
const anthropicContent = fc.oneof({ weight: 3, arbitrary: words }, { weight: 3, arbitrary: fc.array(anthropicBlock, { maxLength: 3 }) }, { weight: 1, arbitrary: json });
const anthropicMessage = fc.record({ role: mostly(fc.constantFrom('user', 'user', 'assistant')), content: mostly(anthropicContent) }, { requiredKeys: ['role', 'content'] as never[] });
export const anthropicBody = fc.record(
  {
    model: mostly(fc.constantFrom('claude-sonnet-4-6', 'claude-opus-4-7', 'claude-haiku-4-5')),
    max_tokens: mostly(count),
    messages: mostly(fc.array(anthropicMessage, { minLength: 1, maxLength: 5 })),
    system: mostly(fc.oneof(words, fc.array(fc.record({ type: fc.constant('text'), text: words }), { maxLength: 2 }))),
    stream: mostly(fc.boolean()),
    tools: mostly(fc.array(fc.record({ name: mostly(fc.constant('do_subtask')), description: words, input_schema: mostly(fc.constant({ type: 'object' })) }, opt), { maxLength: 2 })),
    output_config: mostly(fc.record({ task_budget: mostly(fc.record({ type: mostly(fc.constant('tokens')), total: mostly(fc.integer({ min: 0, max: 200_000 })), remaining: mostly(fc.integer({ min: 0, max: 20_000 })) }, { requiredKeys: ['type', 'total'] as never[] })) }, opt)),
    metadata: dict,
  },
  { requiredKeys: ['model', 'max_tokens', 'messages'] as never[] },
);

/** OpenAI Chat Completions. */
const chatPart = fc.oneof(
  fc.record({ type: fc.constant('text'), text: mostly(words) }, opt),
  fc.record({ type: fc.constant('image_url'), image_url: mostly(fc.record({ url: words }, opt)) }, opt),
  json,
);
const chatMessage = fc.record(
  {
    role: mostly(fc.constantFrom('system', 'developer', 'user', 'assistant', 'tool')),
    content: mostly(fc.oneof(words, fc.array(chatPart, { maxLength: 3 }), fc.constant(null))),
    tool_calls: mostly(fc.array(fc.record({ id: words, type: fc.constant('function'), function: fc.record({ name: words, arguments: words }) }, opt), { maxLength: 2 })),
    tool_call_id: words,
  },
  { requiredKeys: ['role', 'content'] as never[] },
);
export const chatBody = fc.record(
  {
    model: mostly(fc.constantFrom('gpt-4.1', 'gpt-5', 'o3')),
    messages: mostly(fc.array(chatMessage, { minLength: 1, maxLength: 5 })),
    max_tokens: mostly(count),
    max_completion_tokens: mostly(count),
    n: mostly(fc.integer({ min: -2, max: 140 })),
    best_of: mostly(fc.integer({ min: 0, max: 5 })),
    stream: mostly(fc.boolean()),
    stream_options: mostly(fc.record({ include_usage: mostly(fc.boolean()) }, opt)),
    tools: mostly(fc.array(fc.record({ type: fc.constant('function'), function: fc.record({ name: words, parameters: dict }, opt) }, opt), { maxLength: 2 })),
    output_config: json,
  },
  { requiredKeys: ['model', 'messages'] as never[] },
);

/** OpenAI Responses. */
const responsesItem = fc.oneof(
  { weight: 12, arbitrary: fc.record({ role: mostly(fc.constantFrom('user', 'assistant', 'system', 'developer')), content: mostly(fc.oneof(words, fc.array(fc.record({ type: fc.constantFrom('input_text', 'output_text', 'input_image'), text: words }, opt), { maxLength: 3 }))), type: fc.constantFrom('message', undefined) }, { requiredKeys: ['role', 'content'] as never[] }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('function_call_output'), call_id: words, output: mostly(words) }, opt) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('function_call'), call_id: words, name: words, arguments: words }, opt) },
  { weight: 1, arbitrary: fc.oneof(json, fc.constant({})) },
);
export const responsesBody = fc.record(
  {
    model: mostly(fc.constantFrom('gpt-5', 'gpt-4.1', 'o3')),
    input: mostly(fc.oneof(words, fc.array(responsesItem, { minLength: 1, maxLength: 4 }))),
    instructions: mostly(words),
    max_output_tokens: mostly(count),
    previous_response_id: rarely(mostly(fc.oneof(words, fc.constant('resp_sim_00000001')))),
    stream: mostly(fc.boolean()),
    n: rarely(mostly(fc.integer({ min: 0, max: 3 }))),
    tools: mostly(fc.array(fc.record({ type: fc.constant('function'), name: words, parameters: dict }, opt), { maxLength: 2 })),
  },
  { requiredKeys: ['model', 'input'] as never[] },
);

/** Gemini generateContent, with the model and method in the path. */
const geminiPart = fc.oneof(
  fc.record({ text: mostly(words) }),
  fc.record({ functionCall: mostly(fc.record({ name: words, args: dict }, opt)) }, opt),
  fc.record({ functionResponse: mostly(fc.record({ name: words, response: dict }, opt)) }, opt),
  fc.record({ inlineData: json }, opt),
  json,
);
const geminiContent = fc.record({ role: mostly(fc.constantFrom('user', 'model')), parts: mostly(fc.array(geminiPart, { maxLength: 3 })) }, { requiredKeys: ['parts'] as never[] });
export const geminiBody = fc.record(
  {
    contents: mostly(fc.array(geminiContent, { minLength: 1, maxLength: 4 })),
    systemInstruction: mostly(fc.record({ parts: fc.array(fc.record({ text: words }), { maxLength: 2 }) }, opt)),
    generationConfig: mostly(fc.record({ maxOutputTokens: mostly(count), candidateCount: mostly(fc.integer({ min: -1, max: 10 })), temperature: json }, opt)),
    tools: json,
  },
  { requiredKeys: ['contents'] as never[] },
);
export const geminiPath = fc
  .record({
    version: fc.constantFrom('v1beta', 'v1', 'v1alpha'),
    model: fc.oneof({ weight: 5, arbitrary: fc.constantFrom('gemini-2.5-flash', 'gemini-2.5-pro') }, { weight: 1, arbitrary: fc.string({ maxLength: 10 }).map(encodeURIComponent) }),
    stream: fc.boolean(),
  })
  .map(({ version, model, stream }) => `/${version}/models/${model}:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`);

/** The AI SDK's prompt (LanguageModelV3Prompt), as the middleware is handed it. */
const aiPart = fc.oneof(
  fc.record({ type: fc.constant('text'), text: mostly(words) }, opt),
  fc.record({ type: fc.constant('tool-call'), toolCallId: words, toolName: words, input: json }, opt),
  fc.record({ type: fc.constant('tool-result'), toolCallId: words, toolName: words, output: fc.record({ type: fc.constant('text'), value: words }) }, opt),
  fc.record({ type: fc.constant('file'), mediaType: fc.constant('image/png'), data: fc.constantFrom('aGk=', new Uint8Array([1, 2, 3])) }, opt),
  json,
);
export const aiPrompt = mostly(
  fc.array(
    fc.record({ role: mostly(fc.constantFrom('system', 'user', 'assistant', 'tool')), content: mostly(fc.oneof(words, fc.array(aiPart, { maxLength: 3 }))) }, opt),
    { minLength: 0, maxLength: 4 },
  ),
);
export const aiParams = fc.record({ prompt: aiPrompt, maxOutputTokens: mostly(count), tools: json }, { requiredKeys: ['prompt'] as never[] });

/** A body on the wire: mostly the generated JSON, sometimes cut short, not JSON at all, or nested far too deep. */
export function wire(body: fc.Arbitrary<unknown>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 30, arbitrary: body.map((b) => JSON.stringify(b) ?? 'null') },
    { weight: 1, arbitrary: fc.tuple(body, fc.nat()).map(([b, n]) => { const s = JSON.stringify(b) ?? ''; return s.slice(0, n % (s.length + 1)); }) },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
    { weight: 1, arbitrary: fc.integer({ min: 400, max: 3_000 }).map((d) => `{"messages":[{"role":"user","content":"hi"}],"x":${'['.repeat(d)}${']'.repeat(d)}}`) },
  );
}

/** Envelope's own headers: which task, its budget and policy — right, wrong, or hostile. */
export const envelopeHeaders = fc
  .record(
    {
      'x-envelope-task': fc.oneof({ weight: 16, arbitrary: fc.constantFrom('fz-hard', 'fz-adv', 'fz-appr', 'fz-child', 'fz-usd', 'fz-loop', 'fz-spent', 'fz-paused') }, { weight: 1, arbitrary: headerText }, { weight: 2, arbitrary: fc.constant(undefined) }),
      'x-envelope-budget': fc.oneof({ weight: 16, arbitrary: fc.constantFrom('20000', '50000', '100000', '0.50') }, { weight: 1, arbitrary: fc.constantFrom('1e30', '0x4E20', '-5', '', '99999999999999999999') }, { weight: 1, arbitrary: headerText }),
      'x-envelope-policy': fc.oneof({ weight: 16, arbitrary: fc.constantFrom('hard', 'advisory', 'approval', 'measure') }, { weight: 1, arbitrary: headerText }),
      'x-envelope-meter': fc.oneof({ weight: 10, arbitrary: fc.constantFrom('loop', 'billed') }, { weight: 1, arbitrary: headerText }),
      'x-envelope-unit': fc.oneof({ weight: 10, arbitrary: fc.constantFrom('tokens', 'usd') }, { weight: 1, arbitrary: headerText }),
      'x-envelope-label': fc.oneof({ weight: 12, arbitrary: fc.constantFrom('bug-fix', 'research') }, { weight: 1, arbitrary: headerText }),
      'x-envelope-parent': fc.oneof({ weight: 6, arbitrary: fc.constantFrom('fz-parent', 'fz-hard', 'fz-appr') }, { weight: 1, arbitrary: fc.constantFrom('fz-none') }, { weight: 1, arbitrary: headerText }),
    },
    { requiredKeys: ['x-envelope-task', 'x-envelope-budget'] as never[] },
  )
  .map((h) => Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Record<string, string>);

/** An admin API request: method, path (with query), body and who asks. */
export interface AdminRequest {
  method: 'GET' | 'POST';
  path: string;
  body: string | undefined;
  contentType: string | undefined;
  auth: string | undefined;
  origin: string | undefined;
}

const adminId = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('fz-hard', 'fz-adv', 'fz-appr', 'adm-1', 'adm-2', 'nope') }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }).map(encodeURIComponent) });
const taskSpec = fc.record(
  {
    id: mostly(fc.oneof(fc.constantFrom('adm-1', 'adm-2', 'adm-child', 'fz-hard'), headerText)),
    total: mostly(fc.oneof(fc.constantFrom(20_000, 50_000, 1e12, 1e13, 0.5), fc.double(), fc.integer())),
    policy: mostly(fc.constantFrom('advisory', 'hard', 'approval', 'measure')),
    unit: mostly(fc.constantFrom('tokens', 'usd')),
    meter: mostly(fc.constantFrom('loop', 'billed')),
    label: mostly(words),
    tenant: mostly(fc.constantFrom('acme', 'globex')),
    parent: mostly(fc.constantFrom('adm-1', 'fz-hard', 'nope')),
    overrun: mostly(fc.double({ min: 0, max: 1, noNaN: true })),
    limits: mostly(fc.record({ calls: mostly(count), seconds: mostly(count) }, opt)),
    thresholds: mostly(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }))),
  },
  opt,
);
const query = fc.dictionary(fc.constantFrom('parent', 'roots', 'state', 'label', 'limit', 'offset', 'format', 'after', 'task'), headerText, { maxKeys: 3 }).map((q) => (Object.keys(q).length ? `?${new URLSearchParams(q)}` : ''));

export const adminRequest: fc.Arbitrary<AdminRequest> = fc
  .record({
    route: fc.oneof(
      fc.record({ method: fc.constant('POST' as const), path: fc.constant('/tasks'), body: taskSpec }),
      fc.record({ method: fc.constant('POST' as const), path: adminId.map((id) => `/tasks/${id}/approve`), body: fc.oneof(fc.record({ add: mostly(count) }, opt), json) }),
      fc.record({ method: fc.constant('POST' as const), path: adminId.map((id) => `/tasks/${id}/close`), body: fc.oneof(fc.record({ outcome: mostly(fc.constantFrom('completed', 'failed', 'paused')) }, opt), json) }),
      fc.record({ method: fc.constant('POST' as const), path: adminId.map((id) => `/tasks/${id}/progress`), body: fc.oneof(fc.record({ done: mostly(count), total: mostly(count) }, opt), json) }),
      fc.record({ method: fc.constant('GET' as const), path: query.map((q) => `/tasks${q}`), body: fc.constant(undefined) }),
      fc.record({ method: fc.constant('GET' as const), path: adminId.map((id) => `/tasks/${id}`), body: fc.constant(undefined) }),
      fc.record({ method: fc.constant('GET' as const), path: fc.tuple(fc.constantFrom('/runs', '/calibration', '/metrics', '/nowhere'), query).map(([p, q]) => p + q), body: fc.constant(undefined) }),
    ),
    raw: fc.nat({ max: 20 }),
    contentType: fc.oneof({ weight: 8, arbitrary: fc.constant('application/json') }, { weight: 1, arbitrary: fc.constantFrom('text/plain', undefined, 'application/x-www-form-urlencoded') }),
    auth: fc.oneof({ weight: 6, arbitrary: fc.constant('Bearer fuzz-admin') }, { weight: 2, arbitrary: fc.constantFrom('Bearer key-acme', 'Bearer key-globex') }, { weight: 1, arbitrary: fc.constantFrom(undefined, 'Bearer nope', 'Basic Zm9vOmJhcg==') }),
    origin: fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constant('https://evil.example') }),
  })
  .map(({ route, raw, contentType, auth, origin }) => ({
    method: route.method,
    path: route.path,
    // Now and then the body is broken on the wire: cut short or not JSON.
    body: route.body === undefined ? undefined : raw === 0 ? '{"add":' : raw === 1 ? 'add=5' : (JSON.stringify(route.body) ?? 'null'),
    contentType: route.body === undefined ? undefined : contentType,
    auth,
    origin,
  }));
