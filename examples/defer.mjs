// @defer through Apollo Client's own multipart handling: HttpLink sends
// `Accept: multipart/mixed;deferSpec=20220824` and the Defer20220824Handler merges the parts.
//
//   node defer.mjs http://localhost:8080/query ITEM_ID ITEM_ID ITEM_ID
//
// Asks for three items now and each item's owner later, watches the query (default fetch policy,
// so the parts go through the cache as in an app) and prints one JSON line: every emission that
// carried data, in order, with its dataState, loading, networkStatus and the owner's username per
// item alias (null while it has not arrived). Exits 1 on an error, or when no complete result came
// within DEFER_TIMEOUT_MS (20000). internal/httpserver's TestDeferWithApolloClient runs it.
import { ApolloClient, HttpLink, InMemoryCache, NetworkStatus, gql } from '@apollo/client';
import { Defer20220824Handler } from '@apollo/client/incremental';

const [url, a, b, c] = process.argv.slice(2);
if (!url || !a || !b || !c) {
  console.error('usage: node defer.mjs URL ITEM_ID ITEM_ID ITEM_ID');
  process.exit(2);
}

const query = gql`
  query DeferredOwners($a: ID!, $b: ID!, $c: ID!) {
    a: item(id: $a) { ...Later }
    b: item(id: $b) { ...Later }
    c: item(id: $c) { ...Later }
  }
  fragment Later on Item { id title ... @defer(label: "owner") { owner { id username } } }
`;

const client = new ApolloClient({
  link: new HttpLink({ uri: url }),
  cache: new InMemoryCache(),
  incrementalHandler: new Defer20220824Handler(),
});

function fail(message) {
  console.error(`defer.mjs: ${message}`);
  process.exit(1);
}

const emissions = [];
const timeout = Number(process.env.DEFER_TIMEOUT_MS || 20000);
setTimeout(() => fail(`no complete result within ${timeout} ms: ${JSON.stringify({ emissions })}`), timeout);
const subscription = client.watchQuery({ query, variables: { a, b, c } }).subscribe({
  next(result) {
    if (result.error) fail(`error: ${result.error.message}`);
    if (!result.data) return; // the loading state before anything arrived
    const owners = {};
    for (const alias of ['a', 'b', 'c']) {
      const item = result.data[alias];
      if (!item) fail(`item ${alias} missing from ${JSON.stringify(result.data)}`);
      owners[alias] = item.owner?.username ?? null;
    }
    emissions.push({
      dataState: result.dataState,
      loading: result.loading,
      networkStatus: NetworkStatus[result.networkStatus],
      owners,
    });
    if (result.dataState === 'complete' && !result.loading) {
      subscription.unsubscribe();
      client.stop();
      console.log(JSON.stringify({ emissions }));
      process.exit(0);
    }
  },
  error(err) {
    fail(`error: ${err?.message ?? err}`);
  },
  complete() {
    fail(`the query ended before its complete result: ${JSON.stringify({ emissions })}`);
  },
});
