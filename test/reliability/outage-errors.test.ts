/**
 * What the database driver throws when a connection is gone maps to the clean "temporarily
 * unavailable" answer at every door, never to "Unexpected error." (a flake of the outage test in CI:
 * an error outside the known list reached the GraphQL door as INTERNAL).
 */
import { GraphQLError } from 'graphql';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { maskError } from '../../src/graphql/errors.js';
import { mapDatabaseError, UnavailableError } from '../../src/storage/errors.js';
import { adminUrl, backend } from '../support/db.js';

const UNAVAILABLE = 'storage is temporarily unavailable; retry shortly';

describe('errors of a lost database connection', () => {
  it('map to unavailability whatever the SQLSTATE class or driver message', () => {
    const lost = [
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      Object.assign(new Error('the database system is starting up'), { code: '57P03' }),
      Object.assign(new Error('connection failure'), { code: '08006' }),
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      new Error('Connection terminated unexpectedly'),
      new Error('Client has encountered a connection error and is not queryable'),
      new Error('Client was closed and is not queryable'),
      new Error('timeout exceeded when trying to connect'),
      new Error('Query read timeout'),
    ];
    for (const error of lost) expect(mapDatabaseError(error), error.message).toBeInstanceOf(UnavailableError);
    // A bug stays a bug: not every error is an outage.
    expect(mapDatabaseError(new TypeError('x is undefined'))).not.toBeInstanceOf(UnavailableError);
    expect(mapDatabaseError(Object.assign(new Error('duplicate key'), { code: '23505' }))).not.toBeInstanceOf(UnavailableError);
  });

  it('reach a GraphQL caller as the unavailability error even when raised outside the storage facade', () => {
    const unexpected: unknown[] = [];
    const raw = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
    const masked = maskError(new GraphQLError(raw.message, { originalError: raw }), (e) => unexpected.push(e));
    expect({ message: masked.message, code: (masked as GraphQLError).extensions.code }).toEqual({ message: UNAVAILABLE, code: 'INTERNAL' });
    expect(unexpected).toEqual([]);
    const bug = maskError(new GraphQLError('boom', { originalError: new TypeError('boom') }), (e) => unexpected.push(e));
    expect(bug.message).toBe('Unexpected error.');
    expect(unexpected).toHaveLength(1);
  });

  it.skipIf(backend !== 'postgres')('the real driver: a query on a closed client maps to unavailability', async () => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    await client.end();
    const error = await client.query('SELECT 1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(mapDatabaseError(error)).toBeInstanceOf(UnavailableError);
  });
});
