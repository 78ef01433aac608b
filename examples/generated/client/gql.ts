/* eslint-disable */
import * as types from './graphql';
import { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "mutation CreateItem($input: NewItem!) {\n  createItem(input: $input) {\n    id\n    title\n    description\n    owner {\n      id\n      username\n    }\n  }\n}\n\nsubscription ItemChanges($ownerId: ID) {\n  itemChanged(ownerId: $ownerId) {\n    kind\n    item {\n      id\n      title\n      owner {\n        username\n      }\n    }\n  }\n}": typeof types.CreateItemDocument,
    "query UsersPage($first: Int!, $after: String, $prefix: String) {\n  usersConnection(\n    first: $first\n    after: $after\n    filter: {usernamePrefix: $prefix}\n    orderBy: {field: USERNAME}\n  ) {\n    totalCount\n    pageInfo {\n      hasNextPage\n      endCursor\n    }\n    edges {\n      cursor\n      node {\n        id\n        databaseId\n        username\n        email\n        items(first: 5) {\n          edges {\n            node {\n              id\n              title\n            }\n          }\n        }\n      }\n    }\n  }\n}\n\nmutation CreateUser($input: NewUser!) {\n  createUser(input: $input) {\n    id\n    username\n    email\n    createdAt\n  }\n}\n\nmutation RenameUser($id: ID!, $username: String) {\n  updateUser(id: $id, input: {username: $username}) {\n    id\n    username\n    updatedAt\n  }\n}\n\nquery Refetch($id: ID!) {\n  node(id: $id) {\n    __typename\n    id\n    ... on User {\n      databaseId\n      username\n    }\n    ... on Item {\n      databaseId\n      title\n      owner {\n        id\n      }\n    }\n  }\n}\n\nquery UsersByIds($ids: [ID!]!) {\n  nodes(ids: $ids) {\n    id\n    ... on User {\n      username\n    }\n  }\n}\n\nsubscription UserDeletions {\n  userDeleted\n}": typeof types.UsersPageDocument,
};
const documents: Documents = {
    "mutation CreateItem($input: NewItem!) {\n  createItem(input: $input) {\n    id\n    title\n    description\n    owner {\n      id\n      username\n    }\n  }\n}\n\nsubscription ItemChanges($ownerId: ID) {\n  itemChanged(ownerId: $ownerId) {\n    kind\n    item {\n      id\n      title\n      owner {\n        username\n      }\n    }\n  }\n}": types.CreateItemDocument,
    "query UsersPage($first: Int!, $after: String, $prefix: String) {\n  usersConnection(\n    first: $first\n    after: $after\n    filter: {usernamePrefix: $prefix}\n    orderBy: {field: USERNAME}\n  ) {\n    totalCount\n    pageInfo {\n      hasNextPage\n      endCursor\n    }\n    edges {\n      cursor\n      node {\n        id\n        databaseId\n        username\n        email\n        items(first: 5) {\n          edges {\n            node {\n              id\n              title\n            }\n          }\n        }\n      }\n    }\n  }\n}\n\nmutation CreateUser($input: NewUser!) {\n  createUser(input: $input) {\n    id\n    username\n    email\n    createdAt\n  }\n}\n\nmutation RenameUser($id: ID!, $username: String) {\n  updateUser(id: $id, input: {username: $username}) {\n    id\n    username\n    updatedAt\n  }\n}\n\nquery Refetch($id: ID!) {\n  node(id: $id) {\n    __typename\n    id\n    ... on User {\n      databaseId\n      username\n    }\n    ... on Item {\n      databaseId\n      title\n      owner {\n        id\n      }\n    }\n  }\n}\n\nquery UsersByIds($ids: [ID!]!) {\n  nodes(ids: $ids) {\n    id\n    ... on User {\n      username\n    }\n  }\n}\n\nsubscription UserDeletions {\n  userDeleted\n}": types.UsersPageDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation CreateItem($input: NewItem!) {\n  createItem(input: $input) {\n    id\n    title\n    description\n    owner {\n      id\n      username\n    }\n  }\n}\n\nsubscription ItemChanges($ownerId: ID) {\n  itemChanged(ownerId: $ownerId) {\n    kind\n    item {\n      id\n      title\n      owner {\n        username\n      }\n    }\n  }\n}"): (typeof documents)["mutation CreateItem($input: NewItem!) {\n  createItem(input: $input) {\n    id\n    title\n    description\n    owner {\n      id\n      username\n    }\n  }\n}\n\nsubscription ItemChanges($ownerId: ID) {\n  itemChanged(ownerId: $ownerId) {\n    kind\n    item {\n      id\n      title\n      owner {\n        username\n      }\n    }\n  }\n}"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "query UsersPage($first: Int!, $after: String, $prefix: String) {\n  usersConnection(\n    first: $first\n    after: $after\n    filter: {usernamePrefix: $prefix}\n    orderBy: {field: USERNAME}\n  ) {\n    totalCount\n    pageInfo {\n      hasNextPage\n      endCursor\n    }\n    edges {\n      cursor\n      node {\n        id\n        databaseId\n        username\n        email\n        items(first: 5) {\n          edges {\n            node {\n              id\n              title\n            }\n          }\n        }\n      }\n    }\n  }\n}\n\nmutation CreateUser($input: NewUser!) {\n  createUser(input: $input) {\n    id\n    username\n    email\n    createdAt\n  }\n}\n\nmutation RenameUser($id: ID!, $username: String) {\n  updateUser(id: $id, input: {username: $username}) {\n    id\n    username\n    updatedAt\n  }\n}\n\nquery Refetch($id: ID!) {\n  node(id: $id) {\n    __typename\n    id\n    ... on User {\n      databaseId\n      username\n    }\n    ... on Item {\n      databaseId\n      title\n      owner {\n        id\n      }\n    }\n  }\n}\n\nquery UsersByIds($ids: [ID!]!) {\n  nodes(ids: $ids) {\n    id\n    ... on User {\n      username\n    }\n  }\n}\n\nsubscription UserDeletions {\n  userDeleted\n}"): (typeof documents)["query UsersPage($first: Int!, $after: String, $prefix: String) {\n  usersConnection(\n    first: $first\n    after: $after\n    filter: {usernamePrefix: $prefix}\n    orderBy: {field: USERNAME}\n  ) {\n    totalCount\n    pageInfo {\n      hasNextPage\n      endCursor\n    }\n    edges {\n      cursor\n      node {\n        id\n        databaseId\n        username\n        email\n        items(first: 5) {\n          edges {\n            node {\n              id\n              title\n            }\n          }\n        }\n      }\n    }\n  }\n}\n\nmutation CreateUser($input: NewUser!) {\n  createUser(input: $input) {\n    id\n    username\n    email\n    createdAt\n  }\n}\n\nmutation RenameUser($id: ID!, $username: String) {\n  updateUser(id: $id, input: {username: $username}) {\n    id\n    username\n    updatedAt\n  }\n}\n\nquery Refetch($id: ID!) {\n  node(id: $id) {\n    __typename\n    id\n    ... on User {\n      databaseId\n      username\n    }\n    ... on Item {\n      databaseId\n      title\n      owner {\n        id\n      }\n    }\n  }\n}\n\nquery UsersByIds($ids: [ID!]!) {\n  nodes(ids: $ids) {\n    id\n    ... on User {\n      username\n    }\n  }\n}\n\nsubscription UserDeletions {\n  userDeleted\n}"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;