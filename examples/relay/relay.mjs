// Relay against a running server, with relay-runtime alone (no React): the artifacts
// relay-compiler made from src/operations.js, an Environment with a Network posting to the server,
// a RecordSource and a Store. What react-relay's hooks would do, step by step:
//
//   1. the first page of users, each with the first page of its items (AppUsersQuery);
//   2. the next page through the connection (UsersListPaginationQuery, what usePaginationFragment
//      sends): the store's connection grows to both pages;
//   3. a user refetched through node(id:) (UserItemsRefetchQuery, what useRefetchableFragment
//      sends) after it was renamed behind Relay's back (a plain POST, by row number): the store's
//      record of that user is the renamed one;
//   4. an item with the same row number as a user (addressed by that number, as a client of the
//      REST service would): two records in the store, each its own.
//
// Usage: node relay.mjs http://127.0.0.1:8080/query  (npm ci and relay-compiler first: make
// relay-check). Prints what it saw as JSON; exits 1 when anything is not as Relay needs it.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import relay from 'relay-runtime';

const { Environment, Network, RecordSource, Store, fetchQuery, createOperationDescriptor, getRequest, getSelector } = relay;
const require = createRequire(import.meta.url);
const artifact = (name) => require(`./src/__generated__/${name}.graphql.js`);
const AppUsersQuery = artifact('AppUsersQuery');
const UsersListPaginationQuery = artifact('UsersListPaginationQuery');
const UsersList_query = artifact('UsersList_query');
const UserItems_user = artifact('UserItems_user');
const UserItemsRefetchQuery = artifact('UserItemsRefetchQuery');
const ItemByNumberQuery = artifact('ItemByNumberQuery');

const url = process.argv[2];
if (!url) {
  console.error('usage: node relay.mjs <GraphQL URL>');
  process.exit(2);
}

async function post(body) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (res.status !== 200 || json.errors) {
    throw new Error(`${body.operationName ?? 'request'}: HTTP ${res.status} ${JSON.stringify(json.errors ?? json)}`);
  }
  return json;
}

const sent = []; // the operations Relay sent, by name
const environment = new Environment({
  network: Network.create(async (params, variables) => {
    sent.push(params.name);
    return post({ query: params.text, variables, operationName: params.name });
  }),
  store: new Store(new RecordSource()),
});

// read is a fragment's data as a component would get it from the store.
function read(fragment, ref) {
  const snapshot = environment.lookup(getSelector(fragment, ref));
  assert.equal(snapshot.isMissingData, false, `${fragment.name} has all its data in the store`);
  return snapshot.data;
}

function record(id) {
  const r = environment.getStore().getSource().get(id);
  assert.ok(r, `the store has a record for ${id}`);
  return r;
}

const usersPage = (list) => list.usersConnection.edges.map((e) => e.node);

// 1. The first page.
const first = { first: 2, items: 2 };
await fetchQuery(environment, AppUsersQuery, first).toPromise();
const root = environment.lookup(createOperationDescriptor(getRequest(AppUsersQuery), first).fragment).data;
let list = read(UsersList_query, root);
const page1 = usersPage(list);
assert.equal(page1.length, 2, 'a first page of 2 users');
assert.equal(list.usersConnection.pageInfo.hasNextPage, true, 'more users follow');
for (const u of page1) {
  const items = read(UserItems_user, u).items.edges.map((e) => e.node);
  assert.equal(items.length, 2, `${u.username} has its first 2 items`);
}

// 2. The next page, merged into the same connection by Relay's connection handler.
await fetchQuery(environment, UsersListPaginationQuery, {
  first: 2, after: list.usersConnection.pageInfo.endCursor, items: 2,
}).toPromise();
list = read(UsersList_query, root);
const both = usersPage(list);
assert.equal(both.length, 4, 'the connection holds both pages');
assert.deepEqual(both.slice(0, 2).map((u) => u.id), page1.map((u) => u.id), 'the first page stays first');
assert.equal(new Set(both.map((u) => u.id)).size, 4, 'no user twice');

// 3. Refetch a user of the second page through node(id:), after renaming it by its row number.
const user = both[2];
const renamed = `${user.username}_renamed`.slice(0, 32);
await post({
  query: 'mutation($id: ID!, $name: String!) { updateUser(id: $id, input: {username: $name}) { id } }',
  variables: { id: user.databaseId, name: renamed },
});
assert.equal(record(user.id).username, user.username, 'the store does not know yet');
await fetchQuery(environment, UserItemsRefetchQuery, { id: user.id, first: 2 }).toPromise();
assert.ok(UserItemsRefetchQuery.params.text.includes('node(id: $id)'), 'the refetch goes through node');
const refetched = read(UserItems_user, user);
assert.equal(refetched.username, renamed, 'the refetched user is the renamed one');
assert.equal(read(UsersList_query, root).usersConnection.edges[2].node.username, renamed,
  'and the list shows it: one record per user');

// 4. The item with the same row number as the first user, addressed by that number.
const twin = page1[0];
const { item } = await fetchQuery(environment, ItemByNumberQuery, { id: String(twin.databaseId) }).toPromise();
assert.ok(item, `an item numbered ${twin.databaseId} exists`);
assert.equal(item.databaseId, twin.databaseId, 'the same row number');
assert.notEqual(item.id, twin.id, 'different ids');
const userRecord = record(twin.id);
const itemRecord = record(item.id);
assert.notEqual(userRecord, itemRecord, 'two records');
assert.equal(userRecord.__typename, 'User');
assert.equal(itemRecord.__typename, 'Item');
assert.equal(userRecord.username, twin.username, 'the user kept its fields');
assert.equal(itemRecord.title, item.title, 'the item has its own');
assert.equal(userRecord.title, undefined, 'no item field on the user');
assert.equal(read(UsersList_query, root).usersConnection.edges[0].node.username, twin.username,
  'the list still shows the user');

console.log(JSON.stringify({
  sent,
  page1: page1.map((u) => u.username),
  page2: both.slice(2).map((u) => u.username),
  refetched: { id: user.id, username: refetched.username },
  twin: { databaseId: twin.databaseId, user: twin.id, item: item.id, title: item.title },
}));
