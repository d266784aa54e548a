
      export type PossibleTypesResultData = {
  "possibleTypes": {
    "BulkPutRecordsResult": [
      "BulkPutRecordsSuccess",
      "LimitExceeded",
      "QuotaExceeded",
      "RevisionMismatch",
      "ValidationFailed"
    ],
    "CommitResult": [
      "CommitConflict",
      "CommitSuccess",
      "LimitExceeded",
      "QuotaExceeded",
      "ValidationFailed"
    ],
    "DeleteRecordResult": [
      "DeleteRecordSuccess",
      "LimitExceeded",
      "RevisionMismatch"
    ],
    "IncrementRecordResult": [
      "LimitExceeded",
      "PutRecordSuccess",
      "QuotaExceeded",
      "ValidationFailed"
    ],
    "Node": [
      "Install",
      "Namespace",
      "Record"
    ],
    "PutRecordResult": [
      "LimitExceeded",
      "PutRecordSuccess",
      "QuotaExceeded",
      "RevisionMismatch",
      "ValidationFailed"
    ],
    "SetNamespaceSchemaResult": [
      "LimitExceeded",
      "SetNamespaceSchemaSuccess",
      "ValidationFailed"
    ],
    "StorageError": [
      "CommitConflict",
      "LimitExceeded",
      "QuotaExceeded",
      "RevisionMismatch",
      "ValidationFailed"
    ]
  }
};
      const result: PossibleTypesResultData = {
  "possibleTypes": {
    "BulkPutRecordsResult": [
      "BulkPutRecordsSuccess",
      "LimitExceeded",
      "QuotaExceeded",
      "RevisionMismatch",
      "ValidationFailed"
    ],
    "CommitResult": [
      "CommitConflict",
      "CommitSuccess",
      "LimitExceeded",
      "QuotaExceeded",
      "ValidationFailed"
    ],
    "DeleteRecordResult": [
      "DeleteRecordSuccess",
      "LimitExceeded",
      "RevisionMismatch"
    ],
    "IncrementRecordResult": [
      "LimitExceeded",
      "PutRecordSuccess",
      "QuotaExceeded",
      "ValidationFailed"
    ],
    "Node": [
      "Install",
      "Namespace",
      "Record"
    ],
    "PutRecordResult": [
      "LimitExceeded",
      "PutRecordSuccess",
      "QuotaExceeded",
      "RevisionMismatch",
      "ValidationFailed"
    ],
    "SetNamespaceSchemaResult": [
      "LimitExceeded",
      "SetNamespaceSchemaSuccess",
      "ValidationFailed"
    ],
    "StorageError": [
      "CommitConflict",
      "LimitExceeded",
      "QuotaExceeded",
      "RevisionMismatch",
      "ValidationFailed"
    ]
  }
};
      export default result;
    