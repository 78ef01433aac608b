// The operations relay-compiler compiles into src/__generated__ (make relay-check): what a React
// app would write next to its components, with usePaginationFragment and useRefetchableFragment.
// relay.mjs runs the compiled artifacts with relay-runtime alone. This file is only read by the
// compiler (the graphql tag needs babel-plugin-relay at runtime).
import { graphql } from 'relay-runtime';

// The first page of users, each with the first page of its items.
graphql`
  query AppUsersQuery($first: Int!, $items: Int!) {
    ...UsersList_query @arguments(first: $first, items: $items)
  }
`;

// The users list: paged forward through usersConnection (@connection merges the pages in the
// store; @refetchable makes the query that fetches the next page).
graphql`
  fragment UsersList_query on Query
  @refetchable(queryName: "UsersListPaginationQuery")
  @argumentDefinitions(
    first: { type: "Int!" }
    after: { type: "String" }
    items: { type: "Int!" }
  ) {
    usersConnection(first: $first, after: $after) @connection(key: "UsersList_usersConnection") {
      edges {
        node {
          id
          databaseId
          username
          ...UserItems_user @arguments(first: $items)
        }
      }
    }
  }
`;

// A user with its items: refetchable on its own (Relay's generated query asks node(id:)), the
// items a connection of their own.
graphql`
  fragment UserItems_user on User
  @refetchable(queryName: "UserItemsRefetchQuery")
  @argumentDefinitions(first: { type: "Int!" }, after: { type: "String" }) {
    id
    databaseId
    username
    items(first: $first, after: $after) @connection(key: "UserItems_items") {
      edges {
        node {
          id
          databaseId
          title
        }
      }
    }
  }
`;

// An item addressed by its row number, as clients of the REST service do.
graphql`
  query ItemByNumberQuery($id: ID!) {
    item(id: $id) {
      id
      databaseId
      title
      owner {
        id
      }
    }
  }
`;
