/**
 * What a query selects below a field, read from the field's AST before it resolves: a recordList
 * page whose records show neither `value` nor `metadata` is read without them
 * (src/storage/records.ts, RecordColumns).
 */
import { Kind, type FragmentDefinitionNode, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';

type Fragments = Readonly<Record<string, FragmentDefinitionNode>>;

/**
 * The selection sets of the fields named `name` directly in `sets`, through inline fragments and
 * fragment spreads whatever their type condition or directives (a superset of what runs: erring
 * towards reading too much, never too little).
 */
function fieldsNamed(sets: readonly SelectionSetNode[], name: string, fragments: Fragments): SelectionSetNode[] {
  const found: SelectionSetNode[] = [];
  const seen = new Set<string>();
  const visit = (set: SelectionSetNode) => {
    for (const s of set.selections) {
      if (s.kind === Kind.FIELD) {
        if (s.name.value === name) found.push(s.selectionSet ?? { kind: Kind.SELECTION_SET, selections: [] });
      } else if (s.kind === Kind.INLINE_FRAGMENT) {
        visit(s.selectionSet);
      } else if (!seen.has(s.name.value)) {
        // Validation refuses fragment cycles; `seen` keeps this walk finite regardless.
        seen.add(s.name.value);
        const fragment = fragments[s.name.value];
        if (fragment) visit(fragment.selectionSet);
      }
    }
  };
  sets.forEach(visit);
  return found;
}

/** Whether a RecordConnection field (recordList) selects `value` or `metadata` of its records, under any alias or fragment. */
export function selectsRecordData(info: Pick<GraphQLResolveInfo, 'fieldNodes' | 'fragments'>): boolean {
  const own = info.fieldNodes.flatMap((n) => (n.selectionSet ? [n.selectionSet] : []));
  const nodes = fieldsNamed(fieldsNamed(own, 'edges', info.fragments), 'node', info.fragments);
  return fieldsNamed(nodes, 'value', info.fragments).length > 0 || fieldsNamed(nodes, 'metadata', info.fragments).length > 0;
}

/** Whether a field selects the child field `name` (under any alias or fragment): a subscription's Change.record, read with its page. */
export function selectsChild(info: Pick<GraphQLResolveInfo, 'fieldNodes' | 'fragments'>, name: string): boolean {
  const own = info.fieldNodes.flatMap((n) => (n.selectionSet ? [n.selectionSet] : []));
  return fieldsNamed(own, name, info.fragments).length > 0;
}
