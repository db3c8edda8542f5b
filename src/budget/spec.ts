// The shape of a new task, checked at every boundary (library, admin API, headers) before the rules see it.
import { z } from 'zod';
import { EnvelopeError } from './errors.js';
import type { Meter, Policy, Unit } from './types.js';

/**
 * The largest total a task can have, in ledger units: 10^12 tokens, or 10^6 USD (10^12 micro-USD). Far below 2^53,
 * so every sum a store makes stays exact, and every store gives the same answer (none ever sees Infinity).
 */
export const TOTAL_MAX = 1e12;
/** The same bound in display units. */
const TOTAL_MAX_SHOWN: Record<Unit, { value: number; text: string }> = {
  tokens: { value: TOTAL_MAX, text: '1,000,000,000,000 tokens' },
  usd: { value: 1e6, text: '1,000,000 USD' },
};

export interface TaskSpec {
  id: string;
  tenant: string;
  label: string;
  /** Null: the parent's (a root task: tokens). */
  unit: Unit | null;
  /** Null: the parent's when it counts tokens too, else `loop` for tokens; a USD task is always `billed`. */
  meter: Meter | null;
  /** Display units: tokens, or USD. */
  total: number;
  /** Null: the parent's (a root task: advisory). */
  policy: Policy | null;
  overrun: number | null;
  limitCalls: number | null;
  limitSeconds: number | null;
  /** Tokens and requests per minute (a sliding window: budget/rates.ts). */
  tpm: number | null;
  rpm: number | null;
  thresholds: [number, number] | null;
  parentId: string | null;
}

export const TASK_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$/;

const taskId = z
  .string()
  .regex(TASK_ID_PATTERN, 'ids are 1-128 characters of letters, digits and . _ : @ / -, starting with a letter or digit');

/**
 * Task ids are each tenant's own: the store keeps a tenant's task under `tenant~id` (the default tenant's under its
 * id), so two tenants may use the same id and neither can learn by a clash that the other has it. A task id holds no
 * `~`, so a store id splits one way only. The admin (and the library) name tasks by their store ids.
 */
export const DEFAULT_TENANT = 'default';
const TENANT_MARK = '~';

/**
 * The store id of a tenant's task, from its own id or its store id alike (a task id holds no `~`, so the two cannot be
 * confused). A tenant's envelope (`~tenant`) is its own store id.
 */
export function storeIdOf(tenant: string, id: string): string {
  const mark = `${tenant}${TENANT_MARK}`;
  return tenant === DEFAULT_TENANT || id.startsWith(TENANT_MARK) || id.startsWith(mark) ? id : `${mark}${id}`;
}

/** The id a caller uses: a tenant names its tasks without its own prefix; the admin (no tenant) by the store id. */
export function shownIdOf(tenant: string | undefined, storeId: string): string {
  if (tenant === undefined || tenant === DEFAULT_TENANT) return storeId;
  const mark = `${tenant}${TENANT_MARK}`;
  return storeId.startsWith(mark) ? storeId.slice(mark.length) : storeId;
}

/** A task id, or a tenant's task by its store id (`tenant~id`). */
const storedTaskId = z.string().refine((s) => {
  const at = s.lastIndexOf(TENANT_MARK);
  return at === -1 ? TASK_ID_PATTERN.test(s) : at >= 1 && at <= 128 && !s.startsWith(TENANT_MARK) && TASK_ID_PATTERN.test(s.slice(at + 1));
}, 'ids are 1-128 characters of letters, digits and . _ : @ / -, starting with a letter or digit (a tenant\'s task by the admin: tenant~id)');

const fraction = z.number().min(0).max(1);

const specSchema = z
  .object({
    id: taskId,
    tenant: z.string().min(1).max(128).optional(),
    label: z.string().min(1).max(128).optional(),
    unit: z.enum(['tokens', 'usd']).optional(),
    meter: z.enum(['loop', 'billed']).optional(),
    total: z.number().finite().positive(),
    policy: z.enum(['advisory', 'hard', 'approval', 'measure']).optional(),
    overrun: fraction.optional(),
    limits: z
      .object({
        calls: z.number().int().positive().max(TOTAL_MAX).optional(),
        seconds: z.number().positive().max(TOTAL_MAX).optional(),
        tpm: z.number().int().positive().max(TOTAL_MAX).optional(),
        rpm: z.number().int().positive().max(TOTAL_MAX).optional(),
      })
      .strict()
      .optional(),
    thresholds: z.tuple([fraction, fraction]).optional(),
    parent: storedTaskId.optional(),
    parentId: storedTaskId.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const unit = s.unit ?? 'tokens';
    if (s.unit === 'usd' && s.meter === 'loop') {
      ctx.addIssue({ code: 'custom', path: ['meter'], message: 'a USD task is always billed: leave meter out, or use unit tokens' });
    }
    if (s.unit === 'tokens' && !Number.isInteger(s.total)) {
      ctx.addIssue({ code: 'custom', path: ['total'], message: 'a token total must be a whole number' });
    }
    if (s.total > TOTAL_MAX_SHOWN[unit].value) {
      ctx.addIssue({ code: 'custom', path: ['total'], message: `a total is at most ${TOTAL_MAX_SHOWN[unit].text}` });
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
    tenant: s.tenant ?? defaults.tenant ?? DEFAULT_TENANT,
    label: s.label ?? 'default',
    unit: s.unit ?? null,
    meter: s.meter ?? null,
    total: s.total,
    policy: s.policy ?? null,
    overrun: s.overrun ?? null,
    limitCalls: s.limits?.calls ?? null,
    limitSeconds: s.limits?.seconds ?? null,
    tpm: s.limits?.tpm ?? null,
    rpm: s.limits?.rpm ?? null,
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
  const r = storedTaskId.safeParse(id);
  if (!r.success) throw invalid(r.error);
  return r.data;
};

/**
 * A number from an x-envelope-* header: plain decimal digits, with a fraction only where `fraction` allows it (USD).
 * No sign, exponent, hex, separators or inner spaces: what a header says is read one way only.
 */
export function parseHeaderNumber(name: string, text: string, fraction: boolean): number {
  if (!(fraction ? /^[0-9]+(\.[0-9]+)?$/ : /^[0-9]+$/).test(text)) {
    const want = fraction ? 'a plain decimal such as 2.50' : 'a whole number in plain digits such as 50000';
    throw new EnvelopeError('invalid_request', `${name} must be ${want}, got ${JSON.stringify(text.slice(0, 40))}`);
  }
  return Number(text);
}
