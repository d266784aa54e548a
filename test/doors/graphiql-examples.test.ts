/** GraphiQL's example tabs (src/http/graphiql.ts): each one valid against the schema; the commit tab runs as its comment says. */
import { parse, validate } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schema } from '../../src/graphql/schema.js';
import { exampleOperations } from '../../src/http/graphiql.js';
import { JsonText } from '../../src/storage/json-text.js';
import { startTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

describe('GraphiQL example tabs', () => {
  it('every tab is a valid operation of the schema', () => {
    const ops = exampleOperations('00000000-0000-4000-8000-0000000000a1');
    expect(ops.map((o) => o.name)).toContain('commit');
    for (const op of ops) expect(validate(schema, parse(op.query)).map((e) => e.message), op.name).toEqual([]);
  });

  it('the commit tab (a check, a put, a delete and an increment) commits once, then conflicts and writes nothing', async () => {
    const install = await t.createInstall();
    const op = exampleOperations(install.id).find((o) => o.name === 'commit')!;
    const variables = JSON.parse(op.variables) as { operations: Array<Record<string, unknown>>; checks: unknown[] };
    expect(variables.checks).toHaveLength(1);
    expect(variables.operations.map((o) => Object.keys(o)[0])).toEqual(['put', 'delete', 'increment']);
    const token = await t.adminToken();
    const first = await t.gql(op.query, variables, { token });
    expect(first.body.data.commit).toMatchObject({ __typename: 'CommitSuccess', committed: true });
    expect(first.body.data.commit.records.map((r: { key: string; revision: number } | null) => r && [r.key, r.revision])).toEqual([['todo', 1], null, ['boards', 1]]);
    const second = await t.gql(op.query, variables, { token });
    expect(second.body.data.commit).toMatchObject({
      __typename: 'CommitConflict',
      code: 'REVISION_MISMATCH',
      conflicts: [{ index: 0, namespace: 'boards', key: 'todo', expectedRevision: 0, currentRevision: 1 }],
    });
    const counter = await t.app.storage.getRecord(t.adminCaller(), { installId: install.id, namespace: 'stats', key: 'boards' });
    expect(counter).toMatchObject({ value: new JsonText('1'), revision: 1 });
  });
});
