import { readFileSync } from 'node:fs';
import { buildSchema, findBreakingChanges, findDangerousChanges } from 'graphql';
import { describe, expect, it } from 'vitest';
import { printedSchema } from '../../src/graphql/schema.js';

const contractPath = new URL('../../../shared/contract/schema.graphql', import.meta.url);
const checkedInPath = new URL('../../schema/schema.graphql', import.meta.url);

/**
 * Contract fields the server may still answer "not implemented" for. Empty: every field of the
 * contract is implemented (the guards issue emptied it).
 */
const NOT_IMPLEMENTED_YET: string[] = [];

describe('the printed schema', () => {
  it('is checked in and current (run `npm run print-schema` after changing the API)', () => {
    expect(readFileSync(checkedInPath, 'utf8')).toBe(printedSchema());
  });

  it('has no breaking change against contract/schema.graphql', () => {
    const contract = buildSchema(readFileSync(contractPath, 'utf8'));
    const breaking = findBreakingChanges(contract, buildSchema(printedSchema()))
      .map((c) => c.description)
      .filter((d) => !NOT_IMPLEMENTED_YET.some((field) => d.includes(field)));
    expect(breaking).toEqual([]);
  });

  it('has no dangerous change either (argument defaults, enum values, union members)', () => {
    const contract = buildSchema(readFileSync(contractPath, 'utf8'));
    expect(findDangerousChanges(contract, buildSchema(printedSchema())).map((c) => c.description)).toEqual([]);
  });
});
