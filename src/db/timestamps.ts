/**
 * timestamptz as PostgreSQL sends it to a session in UTC, read without pg's general parser
 * (postgres-date: regular expressions and several Date calls per value). A page of 100 records
 * carries 200–300 of them, and their parsing showed in the list and records profiles. Anything
 * that is not exactly `YYYY-MM-DD HH:MM:SS[.f…]+00` (another zone, BC, infinity, a year beyond
 * 9999) is left to `fallback`, the general parser, so the results are the same for every value.
 */
export function parseUtcTimestamp(fallback: (text: string) => unknown): (text: string) => unknown {
  return (text) => {
    const n = text.length;
    // Shortest: '2026-11-30 09:50:12+00' (22); longest with six fraction digits (29).
    if (n < 22 || n > 29 || text.charCodeAt(n - 3) !== 43 /* + */ || text.charCodeAt(n - 2) !== 48 || text.charCodeAt(n - 1) !== 48) return fallback(text);
    if (text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || text.charCodeAt(10) !== 32 || text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58) return fallback(text);
    const year = digits(text, 0, 4);
    const month = digits(text, 5, 2);
    const day = digits(text, 8, 2);
    const hour = digits(text, 11, 2);
    const minute = digits(text, 14, 2);
    const second = digits(text, 17, 2);
    let ms = 0;
    if (n > 22) {
      // '.' and 1–6 digits of fraction: milliseconds are its first three (JavaScript keeps no more).
      const fraction = n - 23;
      if (text.charCodeAt(19) !== 46 || fraction < 1) return fallback(text);
      const kept = digits(text, 20, Math.min(fraction, 3));
      if (digits(text, 20, fraction) < 0 || kept < 0) return fallback(text);
      ms = fraction >= 3 ? kept : kept * (fraction === 1 ? 100 : 10);
    }
    if (year < 1000 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return fallback(text);
    return new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms));
  };
}

/** The decimal number of `length` digits at `at`, or -1 if any of them is not a digit. */
function digits(text: string, at: number, length: number): number {
  let value = 0;
  for (let i = at; i < at + length; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}
