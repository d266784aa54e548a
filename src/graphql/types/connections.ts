/** Relay-style connections (edges, node, cursor, pageInfo) built from a core Page. */
import type { ObjectRef } from '@pothos/core';
import type { Page } from '../../storage/storage.js';
import { builder } from '../builder.js';

interface PageInfoShape {
  hasNextPage: boolean;
  startCursor: string | null;
  endCursor: string | null;
}

export const PageInfoRef = builder.objectRef<PageInfoShape>('PageInfo').implement({
  description: 'Where a page ends and whether another follows. Pages go forward only: pass endCursor as `after` to get the next one.',
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage', { description: 'Whether more items follow this page.' }),
    hasPreviousPage: t.boolean({ description: 'Always false: pages go forward only.', resolve: () => false }),
    startCursor: t.exposeString('startCursor', { nullable: true, description: "The first edge's cursor; null on an empty page." }),
    endCursor: t.exposeString('endCursor', {
      nullable: true,
      description: "The last edge's cursor, to pass as `after` for the next page; null when the page is empty.",
    }),
  }),
});

export function pageInfoOf<T>(p: Page<T>): PageInfoShape {
  const first = p.items[0];
  return { hasNextPage: p.hasNextPage, startCursor: first === undefined ? null : p.cursorOf(first), endCursor: p.endCursor };
}

/** A connection type over pages of shape P (a Page, possibly carrying more for extra fields added with builder.objectField). */
export function connectionType<T, P extends Page<T> = Page<T>>(name: string, node: ObjectRef<any, T>) {
  const edge = builder.objectRef<{ cursor: string; node: T }>(`${name}Edge`).implement({
    description: `One ${name} of a page, with its cursor.`,
    fields: (t) => ({
      cursor: t.exposeString('cursor', {
        description: 'Opaque: pass it as `after` to the same field to continue after this item; a cursor from another list is BAD_USER_INPUT.',
      }),
      node: t.field({ type: node, description: `The ${name}.`, resolve: (e) => e.node as never }),
    }),
  });
  return builder.objectRef<P>(`${name}Connection`).implement({
    description: `One page of ${name} items (Relay connection).`,
    fields: (t) => ({
      edges: t.field({
        type: [edge],
        description: 'The items of this page, in order; empty when nothing (more) matches.',
        resolve: (p) => p.items.map((item) => ({ cursor: p.cursorOf(item), node: item })),
      }),
      pageInfo: t.field({ type: PageInfoRef, description: 'Whether another page follows, and the cursor to ask for it.', resolve: pageInfoOf }),
    }),
  });
}
