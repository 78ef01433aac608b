// Typed use of the generated operations: if the schema or an operation changes in a way this code
// does not expect, `tsc --noEmit` fails.
import type {
  ChangeKind,
  CreateUserMutationVariables,
  ItemChangesSubscription,
  RefetchQuery,
  RenameUserMutationVariables,
  UsersPageQuery,
  UsersPageQueryVariables,
} from './generated/operations';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { UsersPageDocument } from './generated/client/graphql';

export const firstPage: UsersPageQueryVariables = { first: 20, after: null, prefix: 'a' };

export const newUser: CreateUserMutationVariables = {
  input: { username: 'alice', email: 'alice@example.com' },
};

export function usernames(page: UsersPageQuery): string[] {
  return page.usersConnection.edges.map((edge) => edge.node.username);
}

export function nextCursor(page: UsersPageQuery): string | null {
  const { hasNextPage, endCursor } = page.usersConnection.pageInfo;
  return hasNextPage ? endCursor : null;
}

export function itemTitles(page: UsersPageQuery): string[] {
  return page.usersConnection.edges.flatMap((edge) => edge.node.items.edges.map((e) => e.node.title));
}

export function describe(event: ItemChangesSubscription): string {
  const kind: ChangeKind = event.itemChanged.kind;
  return `${kind} ${event.itemChanged.item.title} (${event.itemChanged.item.owner.username})`;
}

// A server started with TRUSTED_DOCUMENTS=generated/client/persisted-documents.json runs only
// the documents of the manifest, named by their id: the client preset puts each document's id in
// its __meta__.hash, so a request sends that id and the variables, never the text.

type Persisted<R, V> = TypedDocumentNode<R, V> & { __meta__?: { hash?: string } };

export async function runTrusted<R, V>(endpoint: string, doc: Persisted<R, V>, variables: V): Promise<R> {
  const documentId = doc.__meta__?.hash;
  if (!documentId) throw new Error('not a persisted document: generate it with persistedDocuments on');
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json' },
    body: JSON.stringify({ documentId, variables }),
  });
  const body = (await res.json()) as { data?: R; errors?: { message: string; extensions?: { code?: string } }[] };
  if (body.errors?.length) throw new Error(`${body.errors[0].extensions?.code}: ${body.errors[0].message}`);
  return body.data as R;
}

export const trustedFirstPage = (endpoint: string) => runTrusted(endpoint, UsersPageDocument, firstPage);

// A row number from the REST days still addresses the user: ids take either form.
export const renameByNumber: RenameUserMutationVariables = { id: '42', username: 'alice2' };

export function rowNumbers(page: UsersPageQuery): number[] {
  return page.usersConnection.edges.map((edge) => edge.node.databaseId);
}

export function label(result: RefetchQuery): string {
  const node = result.node;
  switch (node?.__typename) {
    case 'User':
      return `user ${node.databaseId}: ${node.username}`;
    case 'Item':
      return `item ${node.databaseId}: ${node.title}`;
    default:
      return 'gone';
  }
}
