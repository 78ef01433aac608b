/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
export type ChangeKind =
  | 'CREATED'
  | 'DELETED'
  | 'UPDATED';

/** An item to create: title 1 to 200 characters after trimming, description at most 10,000. */
export type NewItem = {
  description: string | null | undefined;
  ownerId: string;
  title: string;
};

/**
 * A user to create. The username is trimmed and must be 3 to 32 ASCII letters,
 * digits, '_', '.' or '-'; the email must be a plain address (no display name) of at
 * most 254 characters. Both must be unused, compared case-insensitively (CONFLICT).
 */
export type NewUser = {
  email: string;
  username: string;
};

export type CreateItemMutationVariables = Exact<{
  input: NewItem;
}>;


export type CreateItemMutation = { createItem: { id: string, title: string, description: string | null, owner: { id: string, username: string } } };

export type ItemChangesSubscriptionVariables = Exact<{
  ownerId: string | null | undefined;
}>;


export type ItemChangesSubscription = { itemChanged: { kind: ChangeKind, item: { id: string, title: string, owner: { username: string } } } };

export type UsersPageQueryVariables = Exact<{
  first: number;
  after: string | null | undefined;
  prefix: string | null | undefined;
}>;


export type UsersPageQuery = { usersConnection: { totalCount: number, pageInfo: { hasNextPage: boolean, endCursor: string | null }, edges: Array<{ cursor: string, node: { id: string, databaseId: number, username: string, email: string, items: { edges: Array<{ node: { id: string, title: string } }> } } }> } };

export type CreateUserMutationVariables = Exact<{
  input: NewUser;
}>;


export type CreateUserMutation = { createUser: { id: string, username: string, email: string, createdAt: string } };

export type RenameUserMutationVariables = Exact<{
  id: string;
  username: string | null | undefined;
}>;


export type RenameUserMutation = { updateUser: { id: string, username: string, updatedAt: string } };

export type RefetchQueryVariables = Exact<{
  id: string;
}>;


export type RefetchQuery = { node:
    | { __typename: 'Item', databaseId: number, title: string, id: string, owner: { id: string } }
    | { __typename: 'User', databaseId: number, username: string, id: string }
   | null };

export type UsersByIdsQueryVariables = Exact<{
  ids: Array<string> | string;
}>;


export type UsersByIdsQuery = { nodes: Array<
    | { id: string }
    | { username: string, id: string }
   | null> };

export type UserDeletionsSubscriptionVariables = Exact<{ [key: string]: never; }>;


export type UserDeletionsSubscription = { userDeleted: string };
