// `envelope report --tenants`: per tenant, this period's spend against its envelope, the busiest minute's tokens
// against its TPM limit, and the peak-hour burn ratio (peak hour ÷ median hour over the week kept), so an operator
// can check the seeds' rule (weekday peaks at 1.3–1.5× the baseline) against their own traffic. From the tenant
// views (budget/tenants.ts viewTenant), which the admin API's GET /tenants also serves to the dashboard.
import type { Period, Unit } from '../budget/types.js';
import type { TenantView } from '../budget/tenants.js';

export interface TenantReportRow {
  tenant: string;
  period: Period | null;
  unit: Unit | null;
  /** This period's spend, in the envelope's unit; null for a tenant with no envelope (rate limits only). */
  spent: number | null;
  /** The cap; null without one. */
  envelopeTotal: number | null;
  /** spent ÷ cap, 0-1 (4 decimals); null without a cap. */
  envelopeShare: number | null;
  /** Settled billed tokens of the busiest calendar minute, over the hours kept. */
  peakMinuteTokens: number;
  tpmLimit: number | null;
  /** peak minute ÷ the TPM limit (4 decimals); null without a limit. */
  tpmShare: number | null;
  peakHourTokens: number;
  medianHourTokens: number;
  /** Null until two hours burned anything. */
  peakHourRatio: number | null;
  /** Hours with any burn, of the week kept. */
  hours: number;
}

const share = (x: number, of: number | null): number | null => (of === null || of <= 0 ? null : Math.round((x / of) * 10_000) / 10_000);

export function tenantReport(views: TenantView[]): TenantReportRow[] {
  return views.map((v) => {
    const total = v.envelope?.total ?? null;
    const spent = v.spend?.used ?? null;
    const tpm = v.limits?.tpm ?? null;
    return {
      tenant: v.tenant,
      period: v.spend?.period ?? null,
      unit: v.spend?.unit ?? null,
      spent,
      envelopeTotal: total,
      envelopeShare: spent === null ? null : share(spent, total),
      peakMinuteTokens: v.burn.peakMinuteTokens,
      tpmLimit: tpm,
      tpmShare: share(v.burn.peakMinuteTokens, tpm),
      peakHourTokens: v.burn.peakHourTokens,
      medianHourTokens: v.burn.medianHourTokens,
      peakHourRatio: v.burn.peakHourRatio,
      hours: v.burn.hours,
    };
  });
}
