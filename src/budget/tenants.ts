// Tenant envelopes (SPEC §4a): the operator's cap on everything one tenant spends. An envelope is a task row of its
// own (id `~tenant`: no task id can start with `~`) that every task the tenant creates hangs under as the implicit
// root of its tree, so each call counts against it atomically with the same rules as any ancestor: degrade before
// refuse, the countdown, hard/advisory/approval. It starts over each period (UTC day, ISO week, month) by the
// store's clock. Pure: the ledger loads the rows and writes what these decide.
import { z } from 'zod';
import { formatAmount, fromLedger, toLedger, utilization, USD_MICROS } from './amounts.js';
import { figures } from './view.js';
import { EnvelopeError } from './errors.js';
import { noWindow, rateUsed } from './rates.js';
import type { Decision, RuleContext, Snapshot } from './rules.js';
import { levelFor, merged, restate, touched, unused } from './states.js';
import { invalid, TASK_ID_PATTERN, TOTAL_MAX } from './spec.js';
import type { Burn, EventDraft, Meter, Mutation, Period, Policy, RateRow, TaskRow, TaskState, Unit } from './types.js';

const ENVELOPE_MARK = '~';
export const envelopeIdOf = (tenant: string): string => `${ENVELOPE_MARK}${tenant}`;
export const isEnvelopeId = (id: string): boolean => id.startsWith(ENVELOPE_MARK);
export const isEnvelope = (t: TaskRow): boolean => isEnvelopeId(t.id);
/** The tenant's tasks hang under its envelope from their creation on (tasks created before one was set do not). */
export const underEnvelope = (path: TaskRow[]): boolean => path[0] !== undefined && isEnvelope(path[0]);

// ---------------------------------------------------------------------------------------------------------
// Periods

const DAY_MS = 86_400_000;

/** When the period that holds `nowMs` began (UTC); 0 for `none`, which never starts over. */
export function periodStartOf(period: Period, nowMs: number): number {
  if (period === 'none') return 0;
  const d = new Date(nowMs);
  if (period === 'month') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  return period === 'day' ? day : day - ((d.getUTCDay() + 6) % 7) * DAY_MS; // weeks start on Monday (ISO)
}

/** When the period that began at `startMs` ends (the next one begins); null for `none`. */
export function periodEndOf(period: Period, startMs: number): number | null {
  if (period === 'none') return null;
  if (period === 'day') return startMs + DAY_MS;
  if (period === 'week') return startMs + 7 * DAY_MS;
  const d = new Date(startMs);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/**
 * The envelope as it stands at `nowMs`: when its period has ended, what it settled is kept in a `period_reset` event
 * and it starts over (used, calls, approvals); holds of calls in flight stay and are settled into the new period, so
 * nothing is lost across the boundary. Undefined when nothing changes.
 */
export function rolledOver(t: TaskRow, nowMs: number): { row: TaskRow; event: EventDraft } | undefined {
  if (!isEnvelope(t) || t.period === undefined || t.period === 'none') return undefined;
  const startMs = periodStartOf(t.period, nowMs);
  if (startMs <= (t.periodStartMs ?? 0)) return undefined;
  const fresh: TaskRow = { ...t, used: 0, calls: 0, tokensUsed: 0, costMicros: 0, total: t.total - t.totalApproved, totalApproved: 0 };
  const level = levelFor(utilization(fresh, nowMs), fresh.thresholds);
  const row = touched(fresh, { periodStartMs: startMs, state: level === 'exhausted' && t.policy === 'approval' ? 'paused' : level }, nowMs);
  const event: EventDraft = {
    type: 'period_reset',
    taskId: t.id,
    tenant: t.tenant,
    atMs: nowMs,
    data: {
      period: t.period,
      startMs,
      previous: { startMs: t.periodStartMs ?? 0, used: fromLedger(t.unit, t.used), total: fromLedger(t.unit, t.total), calls: t.calls, tokens: t.tokensUsed, costUsd: t.costMicros / USD_MICROS },
    },
  };
  return { row, event };
}

/**
 * A rule run on envelopes as they stand now: any envelope on the path whose period has ended starts over first, in
 * the same atomic step as the rule's own change (and is written even when the rule refuses).
 */
export function withPeriods<T>(nowMs: number, decide: (snap: Snapshot) => Decision<T>): (snap: Snapshot) => Decision<T> {
  return (snap) => {
    const first = snap.path[0];
    const rolled = first ? rolledOver(first, nowMs) : undefined;
    if (!rolled) return decide(snap);
    const change: Mutation = { tasks: [rolled.row], events: [rolled.event] };
    return merged(change, decide({ ...snap, path: [rolled.row, ...snap.path.slice(1)] }));
  };
}

/** Whose budget a refusal names: a task, or a tenant's envelope. */
export const budgetOwner = (t: TaskRow): string => (isEnvelope(t) ? `tenant ${t.tenant}'s envelope` : `task ${t.id}`);

/** What can make room: an approval of the task, or (an envelope) the operator, or the next period. */
export function moreHint(t: TaskRow, add: number, nowMs: number): string {
  if (!isEnvelope(t)) return `approve more with: envelope approve ${t.id} --add ${add}`;
  const total = fromLedger(t.unit, t.total) + add;
  const ends = t.period && t.period !== 'none' ? periodEndOf(t.period, t.periodStartMs ?? periodStartOf(t.period, nowMs)) : null;
  return `the operator can raise it with: envelope tenants set ${t.tenant} --budget ${t.unit === 'usd' ? total.toFixed(2) : total}${ends === null ? '' : `; it starts over at ${new Date(ends).toISOString()}`}`;
}

// ---------------------------------------------------------------------------------------------------------
// What an envelope burned (for the report): settled billed tokens per minute and per hour

/** Hours of burn an envelope keeps: a week, so weekday peaks show against the week's median. */
export const HOURS_KEPT = 168;

export function burned(b: Burn | undefined, tokens: number, nowMs: number): Burn {
  const minute = Math.floor(nowMs / 60_000);
  const hour = Math.floor(nowMs / 3_600_000);
  const m: Burn['minute'] = b && b.minute[0] === minute ? [minute, b.minute[1] + tokens] : [minute, tokens];
  const hours = (b?.hours ?? []).filter((h) => h[0] > hour - HOURS_KEPT);
  const last = hours.at(-1);
  if (last && last[0] === hour) hours[hours.length - 1] = [hour, last[1] + tokens, Math.max(last[2], m[1])];
  else hours.push([hour, tokens, m[1]]);
  return { minute: m, hours };
}

export interface BurnSummary {
  /** The busiest minute's settled tokens (calendar minutes), over the hours kept. */
  peakMinuteTokens: number;
  peakHourTokens: number;
  /** The median of the hours that burned anything (an idle night is not a baseline). */
  medianHourTokens: number;
  /** Peak hour ÷ median hour: the seeds' weekday peaks run 1.3–1.5× the baseline. Null without two hours of burn. */
  peakHourRatio: number | null;
  hours: number;
}

export function summarizeBurn(b: Burn | undefined, nowMs: number): BurnSummary {
  const hour = Math.floor(nowMs / 3_600_000);
  const hours = (b?.hours ?? []).filter((h) => h[0] > hour - HOURS_KEPT && h[1] > 0);
  const totals = hours.map((h) => h[1]).sort((x, y) => x - y);
  const mid = totals.length >> 1;
  const median = totals.length === 0 ? 0 : totals.length % 2 ? totals[mid]! : (totals[mid - 1]! + totals[mid]!) / 2;
  const peak = totals.at(-1) ?? 0;
  return {
    peakMinuteTokens: hours.reduce((most, h) => Math.max(most, h[2]), 0),
    peakHourTokens: peak,
    medianHourTokens: median,
    peakHourRatio: totals.length >= 2 && median > 0 ? Math.round((peak / median) * 100) / 100 : null,
    hours: hours.length,
  };
}

// ---------------------------------------------------------------------------------------------------------
// The operator's settings

export interface EnvelopeSpec {
  unit: Unit;
  meter: Meter;
  /** Display units: tokens, or USD. */
  total: number;
  period: Period;
  policy: Exclude<Policy, 'measure'>;
  overrun: number | null;
}

export interface TenantSpec {
  tenant: string;
  /** Null: no cap; the envelope then only counts what the tenant spends (policy `measure`). */
  envelope: EnvelopeSpec | null;
  tpm: number | null;
  rpm: number | null;
}

export const TENANT_PATTERN = TASK_ID_PATTERN;

const positiveWhole = (name: string) =>
  z
    .number({ error: `${name} must be a number` })
    .int(`${name} must be a whole number`)
    .positive(`${name} must be positive`)
    .max(TOTAL_MAX, `${name} is at most ${TOTAL_MAX.toLocaleString('en-US')}`);

const tenantSchema = z
  .object({
    total: z.number({ error: 'total must be a number' }).finite().positive('total must be positive').nullable().optional(),
    unit: z.enum(['tokens', 'usd'], { error: 'unit must be tokens or usd' }).optional(),
    meter: z.enum(['loop', 'billed'], { error: 'meter must be billed or loop' }).optional(),
    period: z.enum(['day', 'week', 'month', 'none'], { error: 'period must be day, week, month or none' }).optional(),
    policy: z.enum(['advisory', 'hard', 'approval'], { error: 'policy must be hard, advisory or approval' }).optional(),
    overrun: z.number().min(0).max(1).optional(),
    tpm: positiveWhole('tpm').nullable().optional(),
    rpm: positiveWhole('rpm').nullable().optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const capped = s.total !== undefined && s.total !== null;
    for (const field of ['unit', 'meter', 'period', 'policy', 'overrun'] as const) {
      if (!capped && s[field] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [field], message: `${field} describes an envelope: give its total too` });
      }
    }
    if (!capped) return;
    const unit = s.unit ?? 'tokens';
    if (unit === 'tokens' && !Number.isInteger(s.total)) ctx.addIssue({ code: 'custom', path: ['total'], message: 'a token total must be a whole number' });
    if (toLedger(unit, s.total!) > TOTAL_MAX) ctx.addIssue({ code: 'custom', path: ['total'], message: `a total is at most ${formatAmount(unit, TOTAL_MAX)}` });
    if (unit === 'usd' && s.meter === 'loop') ctx.addIssue({ code: 'custom', path: ['meter'], message: 'a USD envelope is always billed' });
    if (s.overrun !== undefined && (s.policy ?? 'hard') !== 'advisory') ctx.addIssue({ code: 'custom', path: ['overrun'], message: 'overrun applies to advisory envelopes only' });
  });

export const parseTenantName = (tenant: unknown): string => {
  if (typeof tenant !== 'string' || !TENANT_PATTERN.test(tenant)) {
    throw new EnvelopeError('invalid_request', `tenant names are 1-128 characters of letters, digits and . _ : @ / -, starting with a letter or digit; got ${JSON.stringify(String(tenant).slice(0, 40))}`);
  }
  return tenant;
};

/** Checks an operator's settings for one tenant (PUT /tenants/:id, the config file, `envelope tenants set`). */
export function parseTenantSpec(tenant: unknown, input: unknown): TenantSpec {
  const name = parseTenantName(tenant);
  const parsed = tenantSchema.safeParse(input ?? {});
  if (!parsed.success) throw invalid(parsed.error);
  const s = parsed.data;
  const unit = s.unit ?? 'tokens';
  const envelope: EnvelopeSpec | null =
    s.total === undefined || s.total === null
      ? null
      : { unit, meter: unit === 'usd' ? 'billed' : (s.meter ?? 'billed'), total: s.total, period: s.period ?? 'none', policy: s.policy ?? 'hard', overrun: s.overrun ?? null };
  return { tenant: name, envelope, tpm: s.tpm ?? null, rpm: s.rpm ?? null };
}

/** `{"team-a": {"total": 5000000, "period": "day", "tpm": 250000}, …}` (--tenants, ENVELOPE_TENANTS, the config file). */
export function parseTenantSettings(text: string): TenantSpec[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new EnvelopeError('invalid_request', 'tenants must be a JSON object of tenant: settings, e.g. {"team-a": {"total": 5000000, "period": "day", "tpm": 250000}}');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new EnvelopeError('invalid_request', 'tenants must be a JSON object of tenant: settings');
  }
  return Object.entries(parsed).map(([tenant, settings]) => {
    try {
      return parseTenantSpec(tenant, settings);
    } catch (e) {
      throw new EnvelopeError('invalid_request', `tenants.${tenant}: ${(e as Error).message}`);
    }
  });
}

/**
 * The tenant's envelope after the operator's change: created, or changed in place (its figures kept; a new unit
 * starts a new count, and only with no call in flight). Without a cap it still counts the tenant's spend (`measure`).
 */
export function planSetEnvelope(existing: TaskRow | undefined, spec: TenantSpec, ctx: RuleContext): Decision<TaskRow> {
  const e = spec.envelope;
  const unit: Unit = e?.unit ?? existing?.unit ?? 'tokens';
  const policy: Policy = e?.policy ?? 'measure';
  const period: Period = e?.period ?? existing?.period ?? 'none';
  const settings = {
    unit,
    meter: e?.meter ?? (unit === 'usd' ? 'billed' : (existing?.meter ?? 'billed')),
    total: e ? toLedger(unit, e.total) : TOTAL_MAX,
    totalApproved: 0,
    policy,
    overrun: policy === 'advisory' ? (e?.overrun ?? ctx.config.overrun) : 0,
    period,
  } satisfies Partial<TaskRow>;
  if (!existing) {
    const row: TaskRow = {
      id: envelopeIdOf(spec.tenant),
      tenant: spec.tenant,
      label: 'tenant',
      ...settings,
      limitCalls: null,
      limitSeconds: null,
      thresholds: ctx.config.thresholds,
      parentId: null,
      pathIds: [envelopeIdOf(spec.tenant)],
      ...unused(ctx.nowMs),
      periodStartMs: periodStartOf(period, ctx.nowMs),
      burn: { minute: [0, 0], hours: [] },
    };
    return { result: row, mutation: { tasks: [row], events: [] } };
  }
  let base = existing;
  if (unit !== existing.unit) {
    if (existing.reserved > 0) {
      return { error: new EnvelopeError('conflict', `tenant ${spec.tenant} has calls in flight counted in ${existing.unit}; change the envelope's unit when none are`) };
    }
    base = { ...existing, used: 0, calls: 0, tokensUsed: 0, costMicros: 0 };
  }
  const next = touched(base, { ...settings, periodStartMs: period === existing.period ? existing.periodStartMs : periodStartOf(period, ctx.nowMs) }, ctx.nowMs);
  // A new total is a new budget: the state follows the figures, a pause lifts once there is room (as an approval).
  const level = levelFor(utilization(next, ctx.nowMs), next.thresholds);
  const state: TaskState = next.policy === 'measure' ? 'active' : level === 'exhausted' && next.policy === 'approval' ? 'paused' : level;
  const { row, events } = restate({ ...existing, state: existing.state === 'paused' ? 'active' : existing.state }, { ...next, state }, ctx.nowMs);
  return { result: row, mutation: { tasks: [row], events } };
}

/** The tenant's rate row after the operator's change: its window kept (what was counted stays counted). */
export function planSetRate(existing: RateRow | undefined, spec: TenantSpec, ctx: RuleContext): Decision<RateRow> {
  const row: RateRow = existing
    ? { ...existing, tpm: spec.tpm, rpm: spec.rpm, updatedAtMs: ctx.nowMs, version: existing.version + 1 }
    : { tenant: spec.tenant, ...noWindow(spec.tpm, spec.rpm), updatedAtMs: ctx.nowMs, version: 1 };
  return { result: row, mutation: { tasks: [], events: [], rate: row } };
}

// ---------------------------------------------------------------------------------------------------------
// The picture of a tenant

export interface TenantView {
  tenant: string;
  /** The cap; null when the operator set none (the envelope then only counts). */
  envelope: {
    unit: Unit;
    meter: Meter;
    policy: Policy;
    period: Period;
    total: number;
    used: number;
    reserved: number;
    remaining: number;
    utilization: number;
    state: TaskState;
  } | null;
  /** This period's spend, capped or not. */
  spend: { period: Period; startMs: number; resetsAtMs: number | null; used: number; unit: Unit; tokens: number; costUsd: number; calls: number } | null;
  limits: { tpm: number | null; rpm: number | null; window: { tokens: number; requests: number } } | null;
  burn: BurnSummary;
}

export function viewTenant(tenant: string, stored: TaskRow | undefined, rate: RateRow | undefined, nowMs: number, windowMs: number): TenantView {
  const env = stored && (rolledOver(stored, nowMs)?.row ?? stored);
  const d = (x: number): number => fromLedger(env!.unit, x);
  return {
    tenant,
    envelope:
      env && env.policy !== 'measure'
        ? {
            unit: env.unit,
            meter: env.meter,
            policy: env.policy,
            period: env.period ?? 'none',
            ...figures(env, nowMs),
            state: env.state,
          }
        : null,
    spend: env
      ? {
          period: env.period ?? 'none',
          startMs: env.periodStartMs ?? env.createdAtMs,
          resetsAtMs: periodEndOf(env.period ?? 'none', env.periodStartMs ?? 0),
          used: d(env.used),
          unit: env.unit,
          tokens: env.tokensUsed,
          costUsd: env.costMicros / USD_MICROS,
          calls: env.calls,
        }
      : null,
    limits: rate && (rate.tpm !== null || rate.rpm !== null) ? { tpm: rate.tpm, rpm: rate.rpm, window: rateUsed(rate, nowMs, windowMs) } : null,
    burn: summarizeBurn(env?.burn, nowMs),
  };
}
