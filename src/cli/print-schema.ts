/** npm run print-schema: rewrites schema/schema.graphql from the code. */
import { writeFileSync } from 'node:fs';
import { printedSchema } from '../graphql/schema.js';

writeFileSync(new URL('../../schema/schema.graphql', import.meta.url), printedSchema());
process.stdout.write('schema/schema.graphql written\n');
