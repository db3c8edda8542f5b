// The shape of a new task, checked at every boundary (library, admin API, headers) before the rules see it.
import { z } from 'zod';
import { EnvelopeError } from './errors.js';
import type { Policy, Unit } from './types.js';

export interface TaskSpec {
  id: string;
  tenant: string;
  label: string;
  unit: Unit;
  /** Display units: tokens, or USD. */
  total: number;
  policy: Policy;
  overrun: number | null;
  limitCalls: number | null;
  limitSeconds: number | null;
  thresholds: [number, number] | null;
  parentId: string | null;
}

export const TASK_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$/;

const taskId = z
  .string()
  .regex(TASK_ID_PATTERN, 'ids are 1-128 characters of letters, digits and . _ : @ / -, starting with a letter or digit');

const fraction = z.number().min(0).max(1);

const specSchema = z
  .object({
    id: taskId,
    tenant: z.string().min(1).max(128).optional(),
    label: z.string().min(1).max(128).optional(),
    unit: z.enum(['tokens', 'usd']).optional(),
    total: z.number().finite().positive(),
    policy: z.enum(['advisory', 'hard', 'approval', 'measure']).optional(),
    overrun: fraction.optional(),
    limits: z
      .object({
        calls: z.number().int().positive().optional(),
        seconds: z.number().positive().optional(),
      })
      .strict()
      .optional(),
    thresholds: z.tuple([fraction, fraction]).optional(),
    parent: taskId.optional(),
    parentId: taskId.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if ((s.unit ?? 'tokens') === 'tokens' && !Number.isInteger(s.total)) {
      ctx.addIssue({ code: 'custom', path: ['total'], message: 'a token total must be a whole number' });
    }
    if (s.thresholds && !(s.thresholds[0] < s.thresholds[1] && s.thresholds[1] < 1)) {
      ctx.addIssue({ code: 'custom', path: ['thresholds'], message: 'thresholds must rise and stay below 1' });
    }
    if (s.overrun !== undefined && s.policy !== undefined && s.policy !== 'advisory') {
      ctx.addIssue({ code: 'custom', path: ['overrun'], message: 'overrun applies to advisory tasks only' });
    }
  });

export type TaskSpecInput = z.input<typeof specSchema>;

/** Checks untrusted input; throws `invalid_request` naming the first bad field. */
export function parseTaskSpec(input: unknown, defaults: { tenant?: string } = {}): TaskSpec {
  const parsed = specSchema.safeParse(input);
  if (!parsed.success) throw invalid(parsed.error);
  const s = parsed.data;
  return {
    id: s.id,
    tenant: s.tenant ?? defaults.tenant ?? 'default',
    label: s.label ?? 'default',
    unit: s.unit ?? 'tokens',
    total: s.total,
    policy: s.policy ?? 'advisory',
    overrun: s.overrun ?? null,
    limitCalls: s.limits?.calls ?? null,
    limitSeconds: s.limits?.seconds ?? null,
    thresholds: s.thresholds ?? null,
    parentId: s.parentId ?? s.parent ?? null,
  };
}

export function invalid(error: z.ZodError): EnvelopeError {
  const issue = error.issues[0];
  const where = issue && issue.path.length ? `${issue.path.join('.')}: ` : '';
  return new EnvelopeError('invalid_request', `${where}${issue?.message ?? 'invalid input'}`);
}

export const parseTaskId = (id: unknown): string => {
  const r = taskId.safeParse(id);
  if (!r.success) throw invalid(r.error);
  return r.data;
};
