/** npm run token -- --role admin --tenant <uuid> [--install <uuid>] [--scope "storage:read storage:write"] [--sub name] [--expires 1h] */
import { parseArgs } from 'node:util';
import { mintToken } from '../auth/credentials.js';
import { normalizeId } from '../storage/principal.js';

const usage = `usage: STORAGE_JWT_SECRET=... npm run token -- --role admin|extension --tenant <uuid>
       [--install <uuid>] [--scope "storage:read storage:write"] [--sub <subject>] [--expires 1h]`;

let values;
try {
  ({ values } = parseArgs({
    options: {
      role: { type: 'string' },
      tenant: { type: 'string' },
      install: { type: 'string' },
      scope: { type: 'string', default: 'storage:read storage:write' },
      sub: { type: 'string' },
      expires: { type: 'string', default: '1h' },
      help: { type: 'boolean' },
    },
  }));
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n${usage}\n`);
  process.exit(2);
}
const secret = process.env.STORAGE_JWT_SECRET;
const fail = (message: string) => {
  process.stderr.write(`${message}\n${usage}\n`);
  process.exit(2);
};
if (values.help) fail('');
if (!secret) fail('STORAGE_JWT_SECRET must be set to the gateway\'s secret');
if (values.role !== 'admin' && values.role !== 'extension') fail('--role must be admin or extension');
const tenant = normalizeId(values.tenant);
if (!tenant) fail('--tenant must be a UUID');
const install = normalizeId(values.install);
if (values.role === 'extension' && !install) fail('--install (a UUID) is required for extension tokens');
const token = await mintToken(secret!, {
  sub: values.sub ?? (values.role === 'admin' ? 'admin' : 'extension'),
  tid: tenant!,
  role: values.role as 'admin' | 'extension',
  iid: install ?? undefined,
  scope: values.role === 'extension' ? values.scope : undefined,
  expiresIn: values.expires,
});
process.stdout.write(`${token}\n`);
