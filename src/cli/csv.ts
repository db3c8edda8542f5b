// Comma-separated values (RFC 4180): a field with a comma, quote or line break is quoted, quotes doubled.
export function csv(header: string[], rows: (string | number | boolean | null)[][]): string {
  const field = (v: string | number | boolean | null): string => {
    const s = v === null ? '' : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [header, ...rows].map((r) => r.map(field).join(',')).join('\n');
}
