/** How the cost model prices the change feed (src/graphql/cost.ts): a page like recordList, by `first`. */
import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { compilePlan, evaluatePlan, overLimit } from '../../src/graphql/cost.js';
import { schema } from '../../src/graphql/schema.js';

const config = loadConfig({ NODE_ENV: 'test' });

function price(query: string, variables: Record<string, unknown> = {}) {
  return evaluatePlan(compilePlan(schema, parse(query), undefined), variables, { limits: config.limits, namespaceBound: () => 32 });
}

describe('pricing the change feed', () => {
  it('a page is two statements and up to `first` records (default 100, at most 1000); its records add no statement up front', () => {
    const page = (args: string) => `{ changes${args} { edges { cursor node { key record { value } } } pageInfo { endCursor } } }`;
    expect(price(page(''))).toEqual({ reads: 2, records: 100 });
    expect(price(page('(first: 7)'))).toEqual({ reads: 2, records: 7 });
    expect(price(page('(first: $n)').replace('{ changes', 'query($n: Int) { changes'), { n: 1000 })).toEqual({ reads: 2, records: 1000 });
    // Past the limit the field refuses to run; the price stays at the limit.
    expect(price(page('(first: 5000)'))).toEqual({ reads: 2, records: 1000 });
    expect(overLimit(price(page('(first: 1000)')), config.cost)).toBeNull();
    // Aliased pages add up, like recordList.
    const two = `{ a: changes(first: 600) { pageInfo { endCursor } } b: changes(first: 600) { pageInfo { endCursor } } }`;
    expect(overLimit(price(two), config.cost)).toMatchObject({ limit: 'records', cost: 1200 });
  });

  it('changesCursor is one statement', () => {
    expect(price('{ install { changesCursor } }')).toEqual({ reads: 2, records: 0 });
  });
});
