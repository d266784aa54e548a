/**
 * The printed schema passes the schema linter (eslint.config.js: @graphql-eslint's schema rules,
 * descriptions required on every kind of definition) with zero findings; `npm run lint:schema`
 * runs the same config from the command line. The second block proves the linter really checks:
 * a schema missing one description of each kind gets exactly that finding.
 */
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
// @ts-expect-error eslint.config.js is plain JavaScript (ESLint loads it without a build step); tsc has no types for it.
import { schemaLintConfig } from '../../eslint.config.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

async function format(eslint: ESLint, results: ESLint.LintResult[]): Promise<string> {
  return (await eslint.loadFormatter('stylish')).format(results) as string;
}

describe('the schema linter', () => {
  it('finds nothing in schema/schema.graphql (run `npm run lint:schema` to see findings)', async () => {
    const eslint = new ESLint({ cwd: root });
    const results = await eslint.lintFiles(['schema/schema.graphql']);
    expect(results).toHaveLength(1);
    const findings = results.flatMap((r) => r.messages);
    expect(findings, await format(eslint, results)).toEqual([]);
  });

  /** A small schema with a description on every definition; each case below removes one. */
  const described = `
"""An enum."""
enum Color {
  """A value."""
  RED
}

"""A union."""
union Either = Thing

"""Root."""
type Mutation {
  """A field."""
  setThing(
    """An argument."""
    input: SetThingInput!
  ): Thing
}

"""Root."""
type Query {
  """A field."""
  color: Color
  """A field."""
  either: Either
  """A field."""
  shape: Shape
  """A field."""
  stamp: Stamp
  """A field."""
  thing(
    """An argument."""
    size: Int
  ): Thing
}

"""An input."""
input SetThingInput {
  """An input field."""
  name: String
}

"""An interface."""
interface Shape {
  """A field."""
  id: ID!
}

"""A scalar."""
scalar Stamp

"""An object."""
type Thing implements Shape {
  """A field."""
  id: ID!
}
`;

  async function lintSchema(sdl: string) {
    // The probe has no connections, so the rule that requires a Relay PageInfo type is off for it.
    const config = schemaLintConfig(sdl).map((c: { rules?: object }) => ({ ...c, rules: { ...c.rules, '@graphql-eslint/relay-page-info': 'off' } }));
    const eslint = new ESLint({ cwd: root, overrideConfigFile: true, overrideConfig: config });
    const [result] = await eslint.lintText(sdl, { filePath: 'schema/probe.graphql' });
    return result!.messages.map((m) => ({ ruleId: m.ruleId, message: m.message }));
  }

  it('finds nothing in a schema whose every definition is described', async () => {
    expect(await lintSchema(described)).toEqual([]);
  });

  const cases: Array<[kind: string, remove: string, message: string]> = [
    ['object type', '"""An object."""\ntype Thing', 'Description is required for type "Thing"'],
    ['interface', '"""An interface."""\ninterface', 'Description is required for interface "Shape"'],
    ['input type', '"""An input."""\ninput', 'Description is required for input "SetThingInput"'],
    ['union', '"""A union."""\nunion', 'Description is required for union "Either"'],
    ['enum', '"""An enum."""\nenum', 'Description is required for enum "Color"'],
    ['scalar', '"""A scalar."""\nscalar', 'Description is required for scalar "Stamp"'],
    ['root field', '"""A field."""\n  shape', 'Description is required for field "shape" in type "Query"'],
    ['interface field', '"""A field."""\n  id', 'Description is required for field "id" in interface "Shape"'],
    ['argument', '"""An argument."""\n    size', 'Description is required for input value "size" in field "thing"'],
    ['input field', '"""An input field."""\n  name', 'Description is required for input value "name" in input "SetThingInput"'],
    ['enum value', '"""A value."""\n  RED', 'Description is required for enum value "RED" in enum "Color"'],
  ];

  it.each(cases)('reports a missing description (%s)', async (_kind, remove, message) => {
    expect(described).toContain(remove);
    const [, ...kept] = remove.split('\n');
    const sdl = described.replace(remove, kept.join('\n').trimStart());
    expect(await lintSchema(sdl)).toEqual([{ ruleId: '@graphql-eslint/require-description', message }]);
  });

  it('reports a naming convention breach', async () => {
    const sdl = described.replace('"""A value."""\n  RED', '"""A value."""\n  blue\n  """A value."""\n  RED');
    expect(await lintSchema(sdl)).toEqual([
      { ruleId: '@graphql-eslint/naming-convention', message: expect.stringContaining('"blue" should be in UPPER_CASE format') },
    ]);
  });
});
