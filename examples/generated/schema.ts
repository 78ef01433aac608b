export type Maybe<T> = T | null;
export type InputMaybe<T> = Maybe<T>;
/** All built-in and custom scalars, mapped to their actual values */
export type Scalars = {
  ID: { input: string; output: string; }
  String: { input: string; output: string; }
  Boolean: { input: boolean; output: boolean; }
  Int: { input: number; output: number; }
  Float: { input: number; output: number; }
  /**
   * An instant in time, as an RFC 3339 string with nanoseconds in UTC, for example
   * "2026-11-26T01:35:17.123456Z".
   */
  Time: { input: string; output: string; }
};

export type ChangeKind =
  | 'CREATED'
  | 'DELETED'
  | 'UPDATED';

/** Something a user owns. Deleting the owner deletes its items. */
export type Item = Node & {
  __typename?: 'Item';
  createdAt: Scalars['Time']['output'];
  /** The item's row number (the REST service's id). Arguments naming an item take it too. */
  databaseId: Scalars['Int']['output'];
  /** At most 10,000 characters. */
  description: Maybe<Scalars['String']['output']>;
  /**
   * Global id, unique across every type (stable: the base64 of "Item:" and databaseId); pass it back
   * unchanged. Arguments naming an item take it, or databaseId.
   */
  id: Scalars['ID']['output'];
  owner: User;
  /** 1 to 200 characters after trimming. */
  title: Scalars['String']['output'];
  /** Moves forward on every successful updateItem. */
  updatedAt: Scalars['Time']['output'];
};

export type ItemConnection = {
  __typename?: 'ItemConnection';
  edges: Array<ItemEdge>;
  pageInfo: PageInfo;
  /** How many items match the filter, over all pages (computed only when asked for). */
  totalCount: Scalars['Int']['output'];
};

export type ItemEdge = {
  __typename?: 'ItemEdge';
  cursor: Scalars['String']['output'];
  node: Item;
};

export type ItemEvent = {
  __typename?: 'ItemEvent';
  item: Item;
  kind: ChangeKind;
};

/** All given conditions must hold. */
export type ItemFilter = {
  /** created at or after this instant */
  createdAfter: InputMaybe<Scalars['Time']['input']>;
  /** created strictly before this instant */
  createdBefore: InputMaybe<Scalars['Time']['input']>;
  ownerId: InputMaybe<Scalars['ID']['input']>;
  /** titles containing this, case-insensitively */
  titleContains: InputMaybe<Scalars['String']['input']>;
};

/** Sort order; ties are always broken by databaseId in the same direction. */
export type ItemOrder = {
  direction: OrderDirection;
  field: ItemOrderField;
};

export type ItemOrderField =
  | 'CREATED_AT'
  | 'ID'
  | 'TITLE';

/**
 * Who may write (AUTH_MODE=jwt): an admin token anything; a user token only itself and the items
 * it owns (FORBIDDEN otherwise); no token nothing (UNAUTHENTICATED). createUser needs an admin
 * unless open sign-up is enabled. A refused write writes nothing.
 */
export type Mutation = {
  __typename?: 'Mutation';
  /** Creates an item. BAD_USER_INPUT (field ownerId) when the owner does not exist. */
  createItem: Item;
  /** Creates a user. BAD_USER_INPUT for invalid fields, CONFLICT for a taken username or email. */
  createUser: User;
  /** returns the item as it was; NOT_FOUND when there is none */
  deleteItem: Item;
  /** returns the user as it was; NOT_FOUND when there is none. Deletes the user's items too. */
  deleteUser: User;
  /** Changes the given fields. NOT_FOUND when there is no such item. */
  updateItem: Item;
  /** Changes the given fields. NOT_FOUND when there is no such user. */
  updateUser: User;
};


/**
 * Who may write (AUTH_MODE=jwt): an admin token anything; a user token only itself and the items
 * it owns (FORBIDDEN otherwise); no token nothing (UNAUTHENTICATED). createUser needs an admin
 * unless open sign-up is enabled. A refused write writes nothing.
 */
export type MutationCreateItemArgs = {
  input: NewItem;
};


/**
 * Who may write (AUTH_MODE=jwt): an admin token anything; a user token only itself and the items
 * it owns (FORBIDDEN otherwise); no token nothing (UNAUTHENTICATED). createUser needs an admin
 * unless open sign-up is enabled. A refused write writes nothing.
 */
export type MutationCreateUserArgs = {
  input: NewUser;
};


/**
 * Who may write (AUTH_MODE=jwt): an admin token anything; a user token only itself and the items
 * it owns (FORBIDDEN otherwise); no token nothing (UNAUTHENTICATED). createUser needs an admin
 * unless open sign-up is enabled. A refused write writes nothing.
 */
export type MutationDeleteItemArgs = {
  id: Scalars['ID']['input'];
};


/**
 * Who may write (AUTH_MODE=jwt): an admin token anything; a user token only itself and the items
 * it owns (FORBIDDEN otherwise); no token nothing (UNAUTHENTICATED). createUser needs an admin
 * unless open sign-up is enabled. A refused write writes nothing.
 */
export type MutationDeleteUserArgs = {
  id: Scalars['ID']['input'];
};


/**
 * Who may write (AUTH_MODE=jwt): an admin token anything; a user token only itself and the items
 * it owns (FORBIDDEN otherwise); no token nothing (UNAUTHENTICATED). createUser needs an admin
 * unless open sign-up is enabled. A refused write writes nothing.
 */
export type MutationUpdateItemArgs = {
  id: Scalars['ID']['input'];
  input: UpdateItem;
};


/**
 * Who may write (AUTH_MODE=jwt): an admin token anything; a user token only itself and the items
 * it owns (FORBIDDEN otherwise); no token nothing (UNAUTHENTICATED). createUser needs an admin
 * unless open sign-up is enabled. A refused write writes nothing.
 */
export type MutationUpdateUserArgs = {
  id: Scalars['ID']['input'];
  input: UpdateUser;
};

/** An item to create: title 1 to 200 characters after trimming, description at most 10,000. */
export type NewItem = {
  description: InputMaybe<Scalars['String']['input']>;
  ownerId: Scalars['ID']['input'];
  title: Scalars['String']['input'];
};

/**
 * A user to create. The username is trimmed and must be 3 to 32 ASCII letters,
 * digits, '_', '.' or '-'; the email must be a plain address (no display name) of at
 * most 254 characters. Both must be unused, compared case-insensitively (CONFLICT).
 */
export type NewUser = {
  email: Scalars['String']['input'];
  username: Scalars['String']['input'];
};

/**
 * An object with a global id (Relay's global object identification): ids are unique across every
 * type, and Query.node fetches any object again by its id.
 */
export type Node = {
  /** Global id, unique across every type; pass it back unchanged. */
  id: Scalars['ID']['output'];
};

export type OrderDirection =
  | 'ASC'
  | 'DESC';

/** Where a page sits in the whole list. */
export type PageInfo = {
  __typename?: 'PageInfo';
  endCursor: Maybe<Scalars['String']['output']>;
  hasNextPage: Scalars['Boolean']['output'];
  hasPreviousPage: Scalars['Boolean']['output'];
  startCursor: Maybe<Scalars['String']['output']>;
};

/**
 * Arguments and input fields of type ID that name a user (user, updateUser, deleteUser, ownerId,
 * userUpdated) or an item (item, updateItem, deleteItem) take the object's global id or its row
 * number (databaseId, as a string or an integer); another type's global id, or anything else, is
 * BAD_USER_INPUT.
 */
export type Query = {
  __typename?: 'Query';
  /** null when no item has this id (global id or row number) */
  item: Maybe<Item>;
  /** ordered by databaseId ascending; limit 1..100; only one owner's items when ownerId is given */
  items: Array<Item>;
  /** Items a page at a time; paging as in usersConnection. */
  itemsConnection: ItemConnection;
  /** The user the bearer token names; null when anonymous. UNAUTHENTICATED for a refused token. */
  me: Maybe<User>;
  /**
   * The object with this global id, of either type; null when there is none. A bare row number is
   * BAD_USER_INPUT here: it does not say its type.
   */
  node: Maybe<Node>;
  /**
   * The objects with these global ids, in their order, null where there is none; at most 100 ids
   * (BAD_USER_INPUT beyond). One statement per type, however many ids.
   */
  nodes: Array<Maybe<Node>>;
  /** null when no user has this id (global id or row number) */
  user: Maybe<User>;
  /** null when no user has this username (matched case-insensitively) */
  userByUsername: Maybe<User>;
  /** ordered by databaseId ascending; limit 1..100 */
  users: Array<User>;
  /**
   * Users a page at a time, following the Relay connection spec: first/after pages forward,
   * last/before backward (at most 100 a page; default first: 10; first and last together are
   * BAD_USER_INPUT). Cursors are opaque and only valid for the same orderBy field.
   */
  usersConnection: UserConnection;
};


/**
 * Arguments and input fields of type ID that name a user (user, updateUser, deleteUser, ownerId,
 * userUpdated) or an item (item, updateItem, deleteItem) take the object's global id or its row
 * number (databaseId, as a string or an integer); another type's global id, or anything else, is
 * BAD_USER_INPUT.
 */
export type QueryItemArgs = {
  id: Scalars['ID']['input'];
};


/**
 * Arguments and input fields of type ID that name a user (user, updateUser, deleteUser, ownerId,
 * userUpdated) or an item (item, updateItem, deleteItem) take the object's global id or its row
 * number (databaseId, as a string or an integer); another type's global id, or anything else, is
 * BAD_USER_INPUT.
 */
export type QueryItemsArgs = {
  limit?: Scalars['Int']['input'];
  offset?: Scalars['Int']['input'];
  ownerId: InputMaybe<Scalars['ID']['input']>;
};


/**
 * Arguments and input fields of type ID that name a user (user, updateUser, deleteUser, ownerId,
 * userUpdated) or an item (item, updateItem, deleteItem) take the object's global id or its row
 * number (databaseId, as a string or an integer); another type's global id, or anything else, is
 * BAD_USER_INPUT.
 */
export type QueryItemsConnectionArgs = {
  after: InputMaybe<Scalars['String']['input']>;
  before: InputMaybe<Scalars['String']['input']>;
  filter: InputMaybe<ItemFilter>;
  first: InputMaybe<Scalars['Int']['input']>;
  last: InputMaybe<Scalars['Int']['input']>;
  orderBy?: InputMaybe<ItemOrder>;
};


/**
 * Arguments and input fields of type ID that name a user (user, updateUser, deleteUser, ownerId,
 * userUpdated) or an item (item, updateItem, deleteItem) take the object's global id or its row
 * number (databaseId, as a string or an integer); another type's global id, or anything else, is
 * BAD_USER_INPUT.
 */
export type QueryNodeArgs = {
  id: Scalars['ID']['input'];
};


/**
 * Arguments and input fields of type ID that name a user (user, updateUser, deleteUser, ownerId,
 * userUpdated) or an item (item, updateItem, deleteItem) take the object's global id or its row
 * number (databaseId, as a string or an integer); another type's global id, or anything else, is
 * BAD_USER_INPUT.
 */
export type QueryNodesArgs = {
  ids: Array<Scalars['ID']['input']>;
};


/**
 * Arguments and input fields of type ID that name a user (user, updateUser, deleteUser, ownerId,
 * userUpdated) or an item (item, updateItem, deleteItem) take the object's global id or its row
 * number (databaseId, as a string or an integer); another type's global id, or anything else, is
 * BAD_USER_INPUT.
 */
export type QueryUserArgs = {
  id: Scalars['ID']['input'];
};


/**
 * Arguments and input fields of type ID that name a user (user, updateUser, deleteUser, ownerId,
 * userUpdated) or an item (item, updateItem, deleteItem) take the object's global id or its row
 * number (databaseId, as a string or an integer); another type's global id, or anything else, is
 * BAD_USER_INPUT.
 */
export type QueryUserByUsernameArgs = {
  username: Scalars['String']['input'];
};


/**
 * Arguments and input fields of type ID that name a user (user, updateUser, deleteUser, ownerId,
 * userUpdated) or an item (item, updateItem, deleteItem) take the object's global id or its row
 * number (databaseId, as a string or an integer); another type's global id, or anything else, is
 * BAD_USER_INPUT.
 */
export type QueryUsersArgs = {
  limit?: Scalars['Int']['input'];
  offset?: Scalars['Int']['input'];
};


/**
 * Arguments and input fields of type ID that name a user (user, updateUser, deleteUser, ownerId,
 * userUpdated) or an item (item, updateItem, deleteItem) take the object's global id or its row
 * number (databaseId, as a string or an integer); another type's global id, or anything else, is
 * BAD_USER_INPUT.
 */
export type QueryUsersConnectionArgs = {
  after: InputMaybe<Scalars['String']['input']>;
  before: InputMaybe<Scalars['String']['input']>;
  filter: InputMaybe<UserFilter>;
  first: InputMaybe<Scalars['Int']['input']>;
  last: InputMaybe<Scalars['Int']['input']>;
  orderBy?: InputMaybe<UserOrder>;
};

/**
 * Live changes, over websocket (graphql-transport-ws or the legacy graphql-ws) or server-sent
 * events on /query. Every instance delivers every committed change, whichever instance made it;
 * a rolled-back write is never announced. A subscription gets every change committed after it
 * starts, in commit order, or it ends with an error whose extensions.code is EVENTS_DROPPED (an
 * error message for the operation over websocket; an event carrying the error, then complete,
 * over server-sent events): events were lost because the subscriber fell behind by its whole
 * buffer, changed rows could not be loaded, or the server lost its connection to the database.
 * Then subscribe again and refetch what you show. Events are never missed silently.
 */
export type Subscription = {
  __typename?: 'Subscription';
  /** changes to every item, or only to the items of this owner (deleted items as they were) */
  itemChanged: ItemEvent;
  userCreated: User;
  /** the global ids of deleted users (as User.id gave them) */
  userDeleted: Scalars['ID']['output'];
  /** every user's updates, or only those of the user with this id */
  userUpdated: User;
};


/**
 * Live changes, over websocket (graphql-transport-ws or the legacy graphql-ws) or server-sent
 * events on /query. Every instance delivers every committed change, whichever instance made it;
 * a rolled-back write is never announced. A subscription gets every change committed after it
 * starts, in commit order, or it ends with an error whose extensions.code is EVENTS_DROPPED (an
 * error message for the operation over websocket; an event carrying the error, then complete,
 * over server-sent events): events were lost because the subscriber fell behind by its whole
 * buffer, changed rows could not be loaded, or the server lost its connection to the database.
 * Then subscribe again and refetch what you show. Events are never missed silently.
 */
export type SubscriptionItemChangedArgs = {
  ownerId: InputMaybe<Scalars['ID']['input']>;
};


/**
 * Live changes, over websocket (graphql-transport-ws or the legacy graphql-ws) or server-sent
 * events on /query. Every instance delivers every committed change, whichever instance made it;
 * a rolled-back write is never announced. A subscription gets every change committed after it
 * starts, in commit order, or it ends with an error whose extensions.code is EVENTS_DROPPED (an
 * error message for the operation over websocket; an event carrying the error, then complete,
 * over server-sent events): events were lost because the subscriber fell behind by its whole
 * buffer, changed rows could not be loaded, or the server lost its connection to the database.
 * Then subscribe again and refetch what you show. Events are never missed silently.
 */
export type SubscriptionUserUpdatedArgs = {
  id: InputMaybe<Scalars['ID']['input']>;
};

/**
 * omitted fields stay as they are; null for title is a BAD_USER_INPUT error, null for description
 * clears it
 */
export type UpdateItem = {
  description: InputMaybe<Scalars['String']['input']>;
  title: InputMaybe<Scalars['String']['input']>;
};

/** omitted fields stay as they are; null for a field is a BAD_USER_INPUT error */
export type UpdateUser = {
  email: InputMaybe<Scalars['String']['input']>;
  username: InputMaybe<Scalars['String']['input']>;
};

/** An account. Usernames and emails are unique regardless of case. */
export type User = Node & {
  __typename?: 'User';
  createdAt: Scalars['Time']['output'];
  /** The user's row number (the REST service's id). Arguments naming a user take it too. */
  databaseId: Scalars['Int']['output'];
  email: Scalars['String']['output'];
  /**
   * Global id, unique across every type (stable: the base64 of "User:" and databaseId); pass it back
   * unchanged. Arguments naming a user take it, or databaseId.
   */
  id: Scalars['ID']['output'];
  /** The items this user owns, a page at a time (default: the first 10 by id). */
  items: ItemConnection;
  /** Moves forward on every successful updateUser. */
  updatedAt: Scalars['Time']['output'];
  /** 3 to 32 characters: ASCII letters, digits, '_', '.' and '-'. */
  username: Scalars['String']['output'];
};


/** An account. Usernames and emails are unique regardless of case. */
export type UserItemsArgs = {
  after: InputMaybe<Scalars['String']['input']>;
  before: InputMaybe<Scalars['String']['input']>;
  filter: InputMaybe<ItemFilter>;
  first: InputMaybe<Scalars['Int']['input']>;
  last: InputMaybe<Scalars['Int']['input']>;
  orderBy?: InputMaybe<ItemOrder>;
};

export type UserConnection = {
  __typename?: 'UserConnection';
  edges: Array<UserEdge>;
  pageInfo: PageInfo;
  /** How many users match the filter, over all pages (computed only when asked for). */
  totalCount: Scalars['Int']['output'];
};

export type UserEdge = {
  __typename?: 'UserEdge';
  cursor: Scalars['String']['output'];
  node: User;
};

/** All given conditions must hold. */
export type UserFilter = {
  /** created at or after this instant */
  createdAfter: InputMaybe<Scalars['Time']['input']>;
  /** created strictly before this instant */
  createdBefore: InputMaybe<Scalars['Time']['input']>;
  /** emails at this domain (the part after '@'), case-insensitively */
  emailDomain: InputMaybe<Scalars['String']['input']>;
  /** usernames starting with this, case-insensitively */
  usernamePrefix: InputMaybe<Scalars['String']['input']>;
};

/** Sort order; ties are always broken by databaseId in the same direction. */
export type UserOrder = {
  direction: OrderDirection;
  field: UserOrderField;
};

export type UserOrderField =
  | 'CREATED_AT'
  | 'ID'
  | 'USERNAME';
