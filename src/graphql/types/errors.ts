/** The typed errors of the result unions: the core's error classes, exposed as GraphQL objects. */
import {
  LimitExceededError,
  QuotaExceededError,
  RevisionMismatchError,
  StorageError,
  ValidationFailedError,
  type ValidationIssue,
} from '../../storage/errors.js';
import { builder } from '../builder.js';

export const StorageErrorCodeEnum = builder.enumType('StorageErrorCode', {
  values: [
    'VALIDATION_FAILED',
    'LIMIT_EXCEEDED',
    'QUOTA_EXCEEDED',
    'REVISION_MISMATCH',
    'NOT_FOUND',
    'UNAUTHENTICATED',
    'FORBIDDEN',
    'RATE_LIMITED',
    'INTERNAL',
  ] as const,
});

export const StorageErrorInterface = builder.interfaceRef<StorageError>('StorageError').implement({
  description: 'What every typed error in a result union carries.',
  fields: (t) => ({
    code: t.field({ type: StorageErrorCodeEnum, resolve: (e) => e.code }),
    message: t.exposeString('message'),
  }),
});

builder.objectType(RevisionMismatchError, {
  name: 'RevisionMismatch',
  interfaces: [StorageErrorInterface],
  fields: (t) => ({
    namespace: t.exposeString('namespace'),
    key: t.exposeString('key'),
    expectedRevision: t.exposeInt('expectedRevision'),
    currentRevision: t.exposeInt('currentRevision', { nullable: true }),
  }),
});

builder.objectType(QuotaExceededError, {
  name: 'QuotaExceeded',
  interfaces: [StorageErrorInterface],
  fields: (t) => ({
    quota: t.exposeString('quota'),
    allowed: t.expose('allowed', { type: 'SafeInt' }),
    used: t.expose('used', { type: 'SafeInt' }),
    itemIndex: t.exposeInt('itemIndex', { nullable: true }),
  }),
});

builder.objectType(LimitExceededError, {
  name: 'LimitExceeded',
  interfaces: [StorageErrorInterface],
  fields: (t) => ({
    limit: t.exposeString('limit'),
    max: t.expose('max', { type: 'SafeInt', nullable: true }),
    actual: t.expose('actual', { type: 'SafeInt', nullable: true }),
    itemIndex: t.exposeInt('itemIndex', { nullable: true }),
  }),
});

const ValidationIssueRef = builder.objectRef<ValidationIssue>('ValidationIssue').implement({
  fields: (t) => ({
    path: t.exposeString('path'),
    message: t.exposeString('message'),
    keyword: t.exposeString('keyword'),
  }),
});

builder.objectType(ValidationFailedError, {
  name: 'ValidationFailed',
  interfaces: [StorageErrorInterface],
  fields: (t) => ({
    schemaVersion: t.exposeInt('schemaVersion', { nullable: true }),
    issues: t.field({ type: [ValidationIssueRef], resolve: (e) => e.issues }),
  }),
});

export const WRITE_ERRORS = [RevisionMismatchError, QuotaExceededError, LimitExceededError, ValidationFailedError];
export const DELETE_ERRORS = [RevisionMismatchError, LimitExceededError];
export const SCHEMA_ERRORS = [LimitExceededError, ValidationFailedError];
