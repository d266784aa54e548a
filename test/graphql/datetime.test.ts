import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isoString } from '../../src/graphql/types/scalars.js';

describe('DateTime serialises exactly as Date#toISOString', () => {
  it('for any valid date, including years outside 1000–9999', () => {
    fc.assert(
      fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), (ms) => {
        const d = new Date(ms);
        expect(isoString(d)).toBe(d.toISOString());
      }),
      { numRuns: 5000 },
    );
    for (const s of ['1970-01-01T00:00:00.000Z', '0999-12-31T23:59:59.999Z', '1000-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z', '+010000-01-01T00:00:00.000Z', '-000001-06-01T00:00:00.000Z']) {
      expect(isoString(new Date(s))).toBe(s);
    }
  });

  it('an invalid date is refused the same way', () => {
    expect(() => isoString(new Date(NaN))).toThrow(RangeError);
  });
});
