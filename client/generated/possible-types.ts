
      export type PossibleTypesResultData = {
  "possibleTypes": {
    "BulkPutRecordsResult": [
      "BulkPutRecordsSuccess",
      "LimitExceeded",
      "QuotaExceeded",
      "RevisionMismatch",
      "ValidationFailed"
    ],
    "DeleteRecordResult": [
      "DeleteRecordSuccess",
      "LimitExceeded",
      "RevisionMismatch"
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
    "DeleteRecordResult": [
      "DeleteRecordSuccess",
      "LimitExceeded",
      "RevisionMismatch"
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
      "LimitExceeded",
      "QuotaExceeded",
      "RevisionMismatch",
      "ValidationFailed"
    ]
  }
};
      export default result;
    