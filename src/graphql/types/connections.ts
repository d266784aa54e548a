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
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage'),
    hasPreviousPage: t.boolean({ description: 'Always false: pages go forward only.', resolve: () => false }),
    startCursor: t.exposeString('startCursor', { nullable: true, description: "The first edge's cursor; null on an empty page." }),
    endCursor: t.exposeString('endCursor', { nullable: true }),
  }),
});

export function pageInfoOf<T>(p: Page<T>): PageInfoShape {
  const first = p.items[0];
  return { hasNextPage: p.hasNextPage, startCursor: first === undefined ? null : p.cursorOf(first), endCursor: p.endCursor };
}

/** A connection type over pages of shape P (a Page, possibly carrying more for extra fields added with builder.objectField). */
export function connectionType<T, P extends Page<T> = Page<T>>(name: string, node: ObjectRef<any, T>) {
  const edge = builder.objectRef<{ cursor: string; node: T }>(`${name}Edge`).implement({
    fields: (t) => ({
      cursor: t.exposeString('cursor'),
      node: t.field({ type: node, resolve: (e) => e.node as never }),
    }),
  });
  return builder.objectRef<P>(`${name}Connection`).implement({
    fields: (t) => ({
      edges: t.field({
        type: [edge],
        resolve: (p) => p.items.map((item) => ({ cursor: p.cursorOf(item), node: item })),
      }),
      pageInfo: t.field({ type: PageInfoRef, resolve: pageInfoOf }),
    }),
  });
}
