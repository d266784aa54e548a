/**
 * The checked-in typed documents (client/generated/) are what `npm run codegen` produces now:
 * regenerated in memory from codegen.ts and compared with the files on disk.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { generate } from '@graphql-codegen/cli';
import { describe, expect, it } from 'vitest';
import config from '../../codegen.js';

const root = resolve(import.meta.dirname, '../..');

async function generateInMemory(): Promise<Map<string, string>> {
  const outputs = (await generate({ ...config, cwd: root, silent: true }, false)) as Array<{ filename: string; content: string }>;
  // Sorted by file: codegen builds its outputs concurrently, so the array's order is the order they finished in.
  const files = outputs.map((o) => [relative(root, resolve(root, o.filename)), o.content] as const);
  return new Map(files.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

describe('generated client documents', () => {
  it('codegen reads only local inputs: the printed schema and client/operations', () => {
    expect(config.schema).toBe('schema/schema.graphql');
    expect(existsSync(join(root, 'schema/schema.graphql'))).toBe(true);
    expect(config.documents).toEqual(['client/operations/*.graphql']);
    expect(config.hooks).toBeUndefined();
  });

  it('client/generated/ matches a fresh generation byte for byte (run `npm run codegen` when this fails)', async () => {
    const fresh = await generateInMemory();
    expect(fresh.size).toBeGreaterThan(0);
    const onDisk = readdirSync(join(root, 'client/generated')).map((f) => `client/generated/${f}`).sort();
    expect(onDisk, 'files in client/generated/').toEqual([...fresh.keys()].sort());
    for (const [file, content] of fresh) {
      expect(readFileSync(join(root, file), 'utf8'), `${file} is stale`).toBe(content);
    }
  });

  it('generation is deterministic: two runs give identical output', async () => {
    const [a, b] = [await generateInMemory(), await generateInMemory()];
    expect([...a.entries()]).toEqual([...b.entries()]);
  });

  it('generates possibleTypes (Apollo Client 3+ format) and the Graphcache schema from the same printed schema', () => {
    expect(Object.keys(config.generates).sort()).toEqual(['client/generated/', 'client/generated/graphcache-schema.ts', 'client/generated/possible-types.ts']);
    expect(config.generates['client/generated/possible-types.ts']).toMatchObject({ plugins: ['fragment-matcher'], config: { apolloClientVersion: 3 } });
    expect(config.generates['client/generated/graphcache-schema.ts']).toMatchObject({ plugins: ['urql-introspection'], config: { module: 'es2015', useTypeImports: true } });
    const possible = readFileSync(join(root, 'client/generated/possible-types.ts'), 'utf8');
    expect(possible).toMatch(/"StorageError": \[\s*"CommitConflict",\s*"LimitExceeded",\s*"QuotaExceeded",\s*"RevisionMismatch",\s*"ValidationFailed"\s*\]/);
    expect(possible).toMatch(/"Node": \[\s*"Install",\s*"Namespace",\s*"Record"\s*\]/);
    expect(possible).toMatch(/"PutRecordResult": \[/);
  });

  it('maps the custom scalars as the stack notes say (JSON unknown, DateTime string, SafeInt number)', () => {
    const types = readFileSync(join(root, 'client/generated/graphql.ts'), 'utf8');
    expect(types).toMatch(/value: unknown, metadata: unknown/);
    expect(types).toMatch(/createdAt: string, updatedAt: string/);
    expect(types).toMatch(/allowed: number, used: number/);
    expect(types).toMatch(/metadata\?: unknown;/);
  });

  it('uses .js suffixes on relative imports (NodeNext) and needs no graphql-js at run time', () => {
    for (const file of readdirSync(join(root, 'client/generated'))) {
      const text = readFileSync(join(root, 'client/generated', file), 'utf8');
      for (const [, spec] of text.matchAll(/from ['"](\.[^'"]+)['"]/g)) expect(spec, `${file}`).toMatch(/\.js$/);
      // Type-only imports (`import type`) are erased; nothing may import graphql-js as a value.
      expect(text, file).not.toMatch(/^import (?!type\b)[^;]*from ['"]graphql['"]/m);
    }
  });
});
