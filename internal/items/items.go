// Package items holds the items users own: the model, its validation, its errors and the store
// functions, including the per-owner pages that User.items loads in one statement for many users.
package items

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/auth"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
	"github.com/wikigraph/wikigraph/internal/users"
)

// Item is something a user owns. Deleting the owner deletes its items.
type Item struct {
	bun.BaseModel `bun:"table:items,alias:i"`

	ID          int64     `bun:"id,pk,autoincrement" json:"id"`
	OwnerID     int64     `bun:"owner_id,notnull" json:"owner_id"`
	Title       string    `bun:"title,notnull" json:"title"`
	Description *string   `bun:"description" json:"description"`
	CreatedAt   time.Time `bun:"created_at,nullzero,notnull,default:current_timestamp" json:"created_at"`
	UpdatedAt   time.Time `bun:"updated_at,nullzero,notnull,default:current_timestamp" json:"updated_at"`

	// Owner is the owner as the same statement read it, when the read asked for it
	// (WithOwner); nil otherwise.
	Owner *users.User `bun:"rel:belongs-to,join:owner_id=id" json:"-"`
}

// ReadOption changes what a read loads besides the items.
type ReadOption int

// WithOwner reads each item's owner in the same statement, so the owner is the one of the same
// moment even if it is deleted (with its items) right after.
const WithOwner ReadOption = 1

func applyOptions(q *bun.SelectQuery, opts []ReadOption) *bun.SelectQuery {
	for _, o := range opts {
		if o == WithOwner {
			q = q.Relation("Owner")
		}
	}
	return q
}

// NewItem is the input of Create.
type NewItem struct {
	OwnerID     gqlscalar.UserID `json:"ownerId"` // the owner's global id or row number
	Title       string           `json:"title"`
	Description *string          `json:"description"`
}

// UpdateItem is the input of Update: an unset field stays; a null title is invalid, a null
// description clears it.
type UpdateItem struct {
	Title       graphql.Omittable[*string] `json:"title"`
	Description graphql.Omittable[*string] `json:"description"`
}

// Limits of the items API.
const (
	MaxTitleLength       = 200
	MaxDescriptionLength = 10000
)

// ErrNotFound is returned by writes that name an item that does not exist.
var ErrNotFound = apperr.Missing("item not found")

// NormalizeTitle trims title and checks it is 1 to 200 characters.
func NormalizeTitle(title string) (string, error) {
	title = strings.TrimSpace(title)
	if err := apperr.CheckText("title", title, MaxTitleLength); err != nil {
		return "", err
	}
	if title == "" {
		return "", apperr.Invalid("title", "must not be empty")
	}
	return title, nil
}

// CheckDescription checks a description: at most 10,000 characters of text.
func CheckDescription(d *string) error {
	if d == nil {
		return nil
	}
	return apperr.CheckText("description", *d, MaxDescriptionLength)
}

// Find returns the item with this id, or nil when there is none.
func Find(ctx context.Context, db bun.IDB, id int64, opts ...ReadOption) (*Item, error) {
	it := new(Item)
	err := applyOptions(db.NewSelect().Model(it), opts).Where("i.id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find item %d: %w", id, err)
	}
	return it, nil
}

// List returns a page of items ordered by id, only ownerID's when it is given.
func List(ctx context.Context, db bun.IDB, offset, limit int, ownerID *int64, opts ...ReadOption) ([]*Item, error) {
	if err := users.CheckPage(offset, limit); err != nil {
		return nil, err
	}
	list := make([]*Item, 0, limit)
	q := applyOptions(db.NewSelect().Model(&list), opts).OrderExpr("i.id ASC").Offset(offset).Limit(limit)
	if ownerID != nil {
		q = q.Where("i.owner_id = ?", *ownerID)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list items: %w", err)
	}
	return list, nil
}

// Create validates in and inserts the item. An unknown owner is BAD_USER_INPUT on ownerId.
func Create(ctx context.Context, db bun.IDB, in NewItem) (*Item, error) {
	if err := auth.CanActAs(ctx, int64(in.OwnerID)); err != nil {
		return nil, err
	}
	title, err := NormalizeTitle(in.Title)
	if err != nil {
		return nil, err
	}
	if err := CheckDescription(in.Description); err != nil {
		return nil, err
	}
	it := &Item{OwnerID: int64(in.OwnerID), Title: title, Description: in.Description}
	err = database.Write(ctx, db, func(ctx context.Context, db bun.IDB) error {
		_, err := db.NewInsert().Model(it).Returning("*").Exec(ctx)
		return err
	})
	if err != nil {
		return nil, translate("create item", err)
	}
	return it, nil
}

// Update changes the fields set in in. updatedAt moves forward on every successful call.
func Update(ctx context.Context, db bun.IDB, id int64, in UpdateItem) (*Item, error) {
	owner, restricted, err := auth.OwnerScope(ctx)
	if err != nil {
		return nil, err
	}
	q := db.NewUpdate().Model((*Item)(nil)).Where("id = ?", id).Returning("*").
		Set("updated_at = greatest(clock_timestamp(), updated_at + interval '1 microsecond')")
	if restricted {
		q = q.Where("owner_id = ?", owner) // the check and the write are one statement
	}
	if v, set := in.Title.ValueOK(); set {
		if v == nil {
			return nil, apperr.Invalid("title", "must not be null")
		}
		title, err := NormalizeTitle(*v)
		if err != nil {
			return nil, err
		}
		q = q.Set("title = ?", title)
	}
	if v, set := in.Description.ValueOK(); set {
		if err := CheckDescription(v); err != nil {
			return nil, err
		}
		q = q.Set("description = ?", v)
	}
	it := new(Item)
	err = database.Write(ctx, db, func(ctx context.Context, db bun.IDB) error { return q.Conn(db).Scan(ctx, it) })
	if err != nil {
		return nil, refused(ctx, db, id, restricted, translate("update item", err))
	}
	return it, nil
}

// Delete removes the item and returns it as it was.
func Delete(ctx context.Context, db bun.IDB, id int64) (*Item, error) {
	owner, restricted, err := auth.OwnerScope(ctx)
	if err != nil {
		return nil, err
	}
	it := new(Item)
	q := db.NewDelete().Model(it).Where("id = ?", id).Returning("*")
	if restricted {
		q = q.Where("owner_id = ?", owner)
	}
	err = database.Write(ctx, db, func(ctx context.Context, db bun.IDB) error { return q.Conn(db).Scan(ctx) })
	if err != nil {
		return nil, refused(ctx, db, id, restricted, translate("delete item", err))
	}
	return it, nil
}

// refused tells a missing item from someone else's, after a write restricted to the caller's
// own items changed nothing.
func refused(ctx context.Context, db bun.IDB, id int64, restricted bool, err error) error {
	if !restricted || !errors.Is(err, ErrNotFound) {
		return err
	}
	exists, existsErr := db.NewSelect().Model((*Item)(nil)).Where("i.id = ?", id).Exists(ctx)
	if existsErr != nil {
		return fmt.Errorf("look for item %d: %w", id, existsErr)
	}
	if exists {
		return auth.Forbidden()
	}
	return err
}

func translate(op string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if constraint, ok := database.ForeignKeyViolation(err); ok && constraint == "items_owner_id_fkey" {
		return apperr.Invalid("ownerId", "is not the id of a user")
	}
	return fmt.Errorf("%s: %w", op, err)
}

// FindMany returns the items with these ids, by id, in one statement; ids with no item are
// absent.
func FindMany(ctx context.Context, db bun.IDB, ids []int64, opts ...ReadOption) (map[int64]*Item, error) {
	list := make([]*Item, 0, len(ids))
	if err := applyOptions(db.NewSelect().Model(&list), opts).Where("i.id = ANY(?::bigint[])", pgdialect.Array(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find items: %w", err)
	}
	byID := make(map[int64]*Item, len(list))
	for _, it := range list {
		byID[it.ID] = it
	}
	return byID, nil
}

// GlobalID is the item's global id (gqlscalar.Node).
func (it *Item) GlobalID() gqlscalar.ID { return gqlscalar.ID{Type: gqlscalar.TypeItem, Row: it.ID} }

// NodeID is Item.id: the item's global id, written from its row number where it is.
func (it *Item) NodeID() *gqlscalar.ItemID { return (*gqlscalar.ItemID)(&it.ID) }
