// GraphiQL for wikigraph: everything it loads is bundled here, nothing comes from a CDN.
import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';
import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { createClient } from 'graphql-ws';

// The server serves this page next to its GraphQL endpoint.
const url = new URL('query', window.location.href).href;
const wsUrl = url.replace(/^http/, 'ws');

const fetcher = createGraphiQLFetcher({
  url,
  // Subscriptions over websocket (graphql-transport-ws). A bearer token set in the Headers tab
  // goes into connection_init, as the server expects.
  wsClient: undefined,
  wsConnectionParams: undefined,
  legacyWsClient: undefined,
  subscriptionUrl: wsUrl,
});

const fetcherWithWsAuth = (params, opts) => {
  const headers = opts?.headers ?? {};
  const auth = headers.Authorization ?? headers.authorization;
  if (auth && isSubscription(params, opts)) {
    return createGraphiQLFetcher({
      url,
      wsClient: createClient({ url: wsUrl, connectionParams: { Authorization: auth }, lazy: true }),
    })(params, opts);
  }
  return fetcher(params, opts);
};

function isSubscription(params, opts) {
  const doc = params.query ?? '';
  const name = params.operationName ?? opts?.documentAST?.definitions?.[0]?.name?.value;
  const defs = opts?.documentAST?.definitions ?? [];
  const op = defs.find((d) => d.kind === 'OperationDefinition' && (!name || d.name?.value === name));
  return op ? op.operation === 'subscription' : /^\s*subscription\b/.test(doc);
}

const defaultQuery = `# Welcome to wikigraph. Run this with the ▶ button (Ctrl-Enter).
# The Docs pane (top left) lists every type; the Headers tab takes
# {"Authorization": "Bearer <token>"} when the server runs with AUTH_MODE=jwt.

query FirstUsers {
  usersConnection(first: 5) {
    totalCount
    edges {
      node {
        id          # a global id, unique across types: node(id:) fetches it again
        databaseId  # the row number; arguments take it too: user(id: 1)
        username
        email
        items(first: 3) { edges { node { id title } } }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}

# Any object again by its id (here user 1's):
# query { node(id: "VXNlcjox") { __typename id ... on User { username } } }
# Try a live subscription in another tab:
# subscription { userCreated { id username } }
`;

createRoot(document.getElementById('graphiql')).render(
  createElement(GraphiQL, {
    fetcher: fetcherWithWsAuth,
    defaultQuery,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
  }),
);
