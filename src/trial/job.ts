// A scripted agent job for `envelope trial`: a task prompt, tools with canned results, and optional sub-agents that
// run side by side, each in its own envelope. Checked with a schema so a bad file says which field is wrong.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { EnvelopeError } from '../budget/errors.js';
import { invalid } from '../budget/spec.js';

const tool = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'tool names are 1-64 letters, digits, _ and -'),
    description: z.string().max(2_000).default('A tool of the job.'),
    /** What a call of the tool returns, padded to `resultBytes` (and `growBytes` more on each later call). */
    result: z.string().max(100_000).default('done'),
    resultBytes: z.number().int().min(0).max(1_000_000).default(0),
    growBytes: z.number().int().min(0).max(100_000).default(0),
  })
  .strict();

const agent = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]{1,40}$/, 'agent names are 1-40 letters, digits and . _ -'),
    /** Its part of the job's budget (the children's parts add up to at most 1). */
    budgetShare: z.number().gt(0).max(1),
    prompt: z.string().min(1).max(100_000).optional(),
    subtasks: z.number().int().min(1).max(500).optional(),
    outputTokens: z.number().int().min(1).max(100_000).optional(),
  })
  .strict();

const jobSchema = z
  .object({
    name: z.string().min(1).max(80),
    /** How the agent talks to the model: Anthropic Messages or OpenAI chat completions. */
    dialect: z.enum(['anthropic', 'openai']).default('anthropic'),
    model: z.string().min(1).max(200).default('claude-sonnet-4-6'),
    system: z.string().max(1_000_000).default('You are an agent. Work through the job with your tools, then report.'),
    /** The system prompt this many times over (an agent CLI's ~76 KB prompt without a 76 KB file). */
    systemRepeat: z.number().int().min(1).max(10_000).default(1),
    /** Mark the system prompt as a cache breakpoint (Anthropic): re-read at the cache rate, as agent CLIs do. */
    cacheSystem: z.boolean().default(false),
    prompt: z.string().min(1).max(100_000),
    maxTokens: z.number().int().min(1).max(200_000).default(4_000),
    tools: z.array(tool).min(1).max(32),
    /** The simulator's scripted agent calls a tool this many times before its final report. */
    subtasks: z.number().int().min(1).max(500).default(12),
    /** The simulator's output tokens per answer. */
    outputTokens: z.number().int().min(1).max(100_000).default(400),
    /** Sub-agents, run side by side as children of the job's task; without them the job is one agent. */
    agents: z.array(agent).max(16).default([]),
    /** Calls one agent may make before the trial stops it (a job that never ends). */
    turnsMax: z.number().int().min(1).max(2_000).default(200),
  })
  .strict()
  .superRefine((j, ctx) => {
    const shares = j.agents.reduce((s, a) => s + a.budgetShare, 0);
    if (shares > 1 + 1e-9) ctx.addIssue({ code: 'custom', path: ['agents'], message: `the agents' budget shares add up to ${shares.toFixed(2)}, more than 1` });
  });

export type TrialJob = z.output<typeof jobSchema>;
export type TrialTool = TrialJob['tools'][number];

/** Checks a job (parsed JSON); throws `invalid_request` naming the first bad field. */
export function parseJob(value: unknown): TrialJob {
  const parsed = jobSchema.safeParse(value);
  if (!parsed.success) throw invalid(parsed.error);
  return parsed.data;
}

export async function loadJob(path: string): Promise<TrialJob> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new EnvelopeError('invalid_request', `cannot read the job file ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new EnvelopeError('invalid_request', `${path} is not JSON: ${(e as Error).message}`);
  }
  try {
    return parseJob(json);
  } catch (e) {
    throw new EnvelopeError('invalid_request', `${path}: ${(e as Error).message}`);
  }
}

/** The sample job `envelope trial` runs without a file: a bug fix that reads files of a few kilobytes. */
export const SAMPLE_JOB: TrialJob = parseJob({
  name: 'bug-fix',
  prompt: 'The test suite fails on a flaky test. Find the cause and fix it.',
  tools: [{ name: 'read_file', description: 'Reads a file of the repository.', result: 'file contents', resultBytes: 3_000 }],
  subtasks: 24,
  outputTokens: 400,
});

/** A tool's canned result for its n-th call (1-based): its text, padded to its size. */
export function toolResult(t: TrialTool, n: number): string {
  const size = t.resultBytes + t.growBytes * (n - 1);
  if (t.result.length >= size) return t.result;
  const filler = ' lorem ipsum dolor sit amet';
  return t.result + filler.repeat(Math.ceil((size - t.result.length) / filler.length)).slice(0, size - t.result.length);
}
