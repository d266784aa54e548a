/** Relay global object identification: the Node interface (ids are encoded in src/storage/global-id.ts). */
import { namespaceGlobalId, recordGlobalId } from '../../storage/global-id.js';
import type { InstallScope } from '../../storage/installs.js';
import type { StoredRecord } from '../../storage/records.js';
import type { NamespaceUsage } from '../../storage/usage.js';
import { builder } from '../builder.js';

/** A Namespace object: the install it belongs to (access already checked) and its name. */
export interface NamespaceShape {
  scope: InstallScope;
  name: string;
  usage?: NamespaceUsage;
}

export type NodeShape = InstallScope | NamespaceShape | StoredRecord;

const typeOf = (value: NodeShape): 'Install' | 'Namespace' | 'Record' => ('install' in value ? 'Install' : 'scope' in value ? 'Namespace' : 'Record');

/** The id of any Node: an install's UUID, or the encoded id of a namespace or record. */
export function nodeId(value: NodeShape): string {
  switch (typeOf(value)) {
    case 'Install':
      return (value as InstallScope).installId;
    case 'Namespace':
      return namespaceGlobalId((value as NamespaceShape).scope.installId, (value as NamespaceShape).name);
    case 'Record':
      return recordGlobalId((value as StoredRecord).installId, (value as StoredRecord).namespace, (value as StoredRecord).key);
  }
}

export const NodeRef = builder.interfaceRef<NodeShape>('Node').implement({
  description: 'An object with a globally unique, opaque id (Relay global object identification).',
  fields: (t) => ({ id: t.id({ description: 'Globally unique and opaque; Query.node(id) returns the object again.', resolve: nodeId }) }),
  resolveType: typeOf,
});
