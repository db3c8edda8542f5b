// The operator's governance as the ledger applies it (SPEC §4a): which tenants have an envelope or rate limits, the
// admission of each call against its tenant's rate row and its correction after settlement, and the tenants'
// settings and views. The rules are in budget/tenants.ts and budget/admission.ts; this only loads and writes.
//
// Which tenants are governed is read from the store at most every GOVERNANCE_TTL_MS (one small read for all of
// them), so a change made through another replica takes effect here within that time; this process's own changes at
// once. What is decided with it is always checked against the rows themselves, atomically.
import { planAdmit, planCorrect, type Admission } from '../budget/admission.js';
import type { RuleContext } from '../budget/rules.js';
import { envelopeIdOf, planSetEnvelope, planSetRate, rolledOver, viewTenant, withPeriods, type TenantSpec, type TenantView } from '../budget/tenants.js';
import type { TaskRow } from '../budget/types.js';
import type { LedgerStore } from '../store/store.js';

export const GOVERNANCE_TTL_MS = 2_000;

export interface TenantPolicy {
  /** The tenant has an envelope: its tasks hang under it, and calls without a task are counted in it. */
  envelopeId: string | null;
  /** The tenant has a rate limit: each call is admitted against its window first. */
  limited: boolean;
}

export class Governance {
  private policies = new Map<string, TenantPolicy>();
  private loadedAt = Number.NEGATIVE_INFINITY;
  private loading: Promise<void> | null = null;

  constructor(
    private readonly store: LedgerStore,
    private readonly ctx: () => RuleContext,
  ) {}

  /** What applies to a tenant's calls; undefined for a tenant the operator never set anything for. */
  async policyOf(tenant: string): Promise<TenantPolicy | undefined> {
    if (performance.now() - this.loadedAt > GOVERNANCE_TTL_MS) await this.load();
    return this.policies.get(tenant);
  }

  /** Whether the operator governs any tenant at all (else no call needs to know its tenant's policy). */
  async any(): Promise<boolean> {
    if (performance.now() - this.loadedAt > GOVERNANCE_TTL_MS) await this.load();
    return this.policies.size > 0;
  }

  /** Reads which tenants are governed now (one read shared by the callers that wait for it). */
  private load(): Promise<void> {
    this.loading ??= (async () => {
      try {
        const { envelopes, rates } = await this.store.tenantRows();
        const next = new Map<string, TenantPolicy>();
        for (const e of envelopes) next.set(e.tenant, { envelopeId: e.id, limited: false });
        for (const r of rates) {
          if (r.tpm === null && r.rpm === null) continue;
          next.set(r.tenant, { envelopeId: next.get(r.tenant)?.envelopeId ?? null, limited: true });
        }
        this.policies = next;
        this.loadedAt = performance.now();
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  /** Counts a call in its tenant's window, or throws `rate_limited`; null when the tenant has no rate limit. */
  admit(tenant: string, taskId: string, tokens: number): Promise<Admission | null> {
    return this.store.atomically({ rate: tenant }, (snap) => planAdmit(snap.rate, taskId, tokens, this.ctx()));
  }

  /**
   * Replaces an admission's worst case by what the call was billed (`requests` −1: the call never went out). Best
   * effort: should the store fail here, the window keeps the worst case until it leaves it (a minute).
   */
  async correct(admitted: Admission, tokens: number, requests: 0 | -1): Promise<void> {
    await this.store.atomically({ rate: admitted.tenant }, (snap) => planCorrect(snap.rate, admitted, tokens, requests, this.ctx())).catch(() => undefined);
  }

  /** Sets a tenant's envelope and rate limits (the whole of them: what the spec leaves out is removed). */
  async set(spec: TenantSpec): Promise<TenantView> {
    const envelopeId = envelopeIdOf(spec.tenant);
    const envelope = await this.store.atomically(
      { path: envelopeId },
      withPeriods(this.ctx().nowMs, (snap) => planSetEnvelope(snap.path[0]?.id === envelopeId ? snap.path[0] : undefined, spec, this.ctx())),
    );
    const rate = await this.store.atomically({ rate: spec.tenant }, (snap) => planSetRate(snap.rate, spec, this.ctx()));
    this.loadedAt = Number.NEGATIVE_INFINITY;
    return this.view(spec.tenant, envelope, rate);
  }

  /** Every governed tenant, by name. */
  async list(): Promise<TenantView[]> {
    const { envelopes, rates } = await this.store.tenantRows();
    const names = [...new Set([...envelopes.map((e) => e.tenant), ...rates.map((r) => r.tenant)])].sort();
    return names.map((t) => this.view(t, envelopes.find((e) => e.tenant === t), rates.find((r) => r.tenant === t)));
  }

  /**
   * Starts over every envelope whose period has ended and that no call has touched since (a call does it itself),
   * so each period's `period_reset` event comes at its end. Returns how many started over.
   */
  async rollPeriods(): Promise<number> {
    const { envelopes } = await this.store.tenantRows();
    let rolled = 0;
    for (const e of envelopes) {
      const done = await this.store.atomically({ path: e.id }, (snap) => {
        const r = snap.path[0] && rolledOver(snap.path[0], this.ctx().nowMs);
        return r ? { result: true, mutation: { tasks: [r.row], events: [r.event] } } : { result: false };
      });
      if (done) rolled++;
    }
    return rolled;
  }

  view(tenant: string, envelope: TaskRow | undefined, rate: Parameters<typeof viewTenant>[2]): TenantView {
    const ctx = this.ctx();
    return viewTenant(tenant, envelope, rate, ctx.nowMs, ctx.config.rateWindowMs);
  }
}
