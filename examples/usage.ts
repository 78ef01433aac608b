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
