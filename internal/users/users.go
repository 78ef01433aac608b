// Package users holds user accounts: the model, its validation rules, its errors and the store
// functions that read and write the users table. Store functions take a bun.IDB, so the same
// function runs on the pool or inside a transaction.
package users

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/auth"
	"github.com/wikigraph/wikigraph/internal/coalesce"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
)

// User is an account. Username and email are unique case-insensitively.
type User struct {
	bun.BaseModel `bun:"table:users,alias:u"`

	ID        int64     `bun:"id,pk,autoincrement" json:"id"`
	Username  string    `bun:"username,notnull" json:"username"`
	Email     string    `bun:"email,notnull" json:"email"`
	CreatedAt time.Time `bun:"created_at,nullzero,notnull,default:current_timestamp" json:"created_at"`
	UpdatedAt time.Time `bun:"updated_at,nullzero,notnull,default:current_timestamp" json:"updated_at"`
	// Brief: read with its id and username only (a page whose selection asked for no more);
	// whoever needs its other fields reads it again.
	Brief bool `bun:"-" json:"-"`
}

// NewUser is the input of Create.
type NewUser struct {
	Username string `json:"username"`
	Email    string `json:"email"`
}

// UpdateUser is the input of Update: an unset field stays as it is, a field set to null is invalid.
type UpdateUser struct {
	Username graphql.Omittable[*string] `json:"username"`
	Email    graphql.Omittable[*string] `json:"email"`
}

// Limits of the users API.
const (
	MaxPageSize    = 100
	MaxEmailLength = 254
)

// ErrNotFound is returned by writes that name a user that does not exist.
var ErrNotFound = apperr.Missing("user not found")

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,32}$`)

// NormalizeUsername trims username and checks it: 3 to 32 ASCII letters, digits, '_', '.', '-'.
func NormalizeUsername(username string) (string, error) {
	username = strings.TrimSpace(username)
	if !usernameRE.MatchString(username) {
		return "", apperr.Invalid("username", "must be 3 to 32 characters: letters, digits, '_', '.' or '-'")
	}
	return username, nil
}

// NormalizeEmail trims email and checks it is one plain address of at most 254 characters.
func NormalizeEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	invalid := apperr.Invalid("email", "must be a valid email address of at most 254 characters")
	if email == "" || len(email) > MaxEmailLength || !utf8.ValidString(email) ||
		strings.ContainsFunc(email, unicode.IsControl) {
		return "", invalid
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Name != "" || addr.Address != email {
		return "", invalid
	}
	return email, nil
}

// Validate normalizes and checks a NewUser in place.
func (in *NewUser) Validate() error {
	var err error
	if in.Username, err = NormalizeUsername(in.Username); err != nil {
		return err
	}
	in.Email, err = NormalizeEmail(in.Email)
	return err
}

// CheckPage validates offset/limit paging arguments.
func CheckPage(offset, limit int) error {
	if offset < 0 {
		return apperr.Invalid("offset", "must not be negative")
	}
	if limit < 1 || limit > MaxPageSize {
		return apperr.Invalid("limit", fmt.Sprintf("must be between 1 and %d", MaxPageSize))
	}
	return nil
}

// Find returns the user with this id, or nil when there is none.
func Find(ctx context.Context, db bun.IDB, id int64) (*User, error) {
	u := new(User)
	err := db.NewSelect().Model(u).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find user %d: %w", id, err)
	}
	return u, nil
}

// Me returns the caller's own user: nil when anonymous, UNAUTHENTICATED for a refused token.
func Me(ctx context.Context, db bun.IDB) (*User, error) {
	id, ok, err := auth.Me(ctx)
	if err != nil || !ok {
		return nil, err
	}
	return Find(ctx, db, id)
}

// FindByUsername returns the user with this username, compared case-insensitively, or nil.
func FindByUsername(ctx context.Context, db bun.IDB, username string) (*User, error) {
	username, err := NormalizeUsername(username)
	if err != nil {
		return nil, nil // no user can have a name that breaks the rules
	}
	u := new(User)
	err = db.NewSelect().Model(u).Where("lower(username) = lower(?)", username).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find user by username: %w", err)
	}
	return u, nil
}

// List returns a page of users ordered by id.
func List(ctx context.Context, db bun.IDB, offset, limit int) ([]*User, error) {
	if err := CheckPage(offset, limit); err != nil {
		return nil, err
	}
	list := make([]*User, 0, limit)
	err := db.NewSelect().Model(&list).OrderExpr("id ASC").Offset(offset).Limit(limit).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return list, nil
}

// Create validates in and inserts the user. A taken username or email is a CONFLICT.
func Create(ctx context.Context, db bun.IDB, in NewUser) (*User, error) {
	if err := auth.CanCreateUser(ctx); err != nil {
		return nil, err
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	u := &User{Username: in.Username, Email: in.Email}
	err := database.Write(ctx, db, func(ctx context.Context, db bun.IDB) error {
		_, err := db.NewInsert().Model(u).Returning("*").Exec(ctx)
		return err
	})
	if err != nil {
		return nil, translate("create user", err)
	}
	return u, nil
}

// Update changes the fields set in in. updatedAt moves forward on every successful call.
func Update(ctx context.Context, db bun.IDB, id int64, in UpdateUser) (*User, error) {
	if err := auth.CanActAs(ctx, id); err != nil {
		return nil, err
	}
	q := db.NewUpdate().Model((*User)(nil)).Where("id = ?", id).Returning("*").
		// Strictly later than before even if the clock has not ticked.
		Set("updated_at = greatest(clock_timestamp(), updated_at + interval '1 microsecond')")
	if v, set := in.Username.ValueOK(); set {
		if v == nil {
			return nil, apperr.Invalid("username", "must not be null")
		}
		username, err := NormalizeUsername(*v)
		if err != nil {
			return nil, err
		}
		q = q.Set("username = ?", username)
	}
	if v, set := in.Email.ValueOK(); set {
		if v == nil {
			return nil, apperr.Invalid("email", "must not be null")
		}
		email, err := NormalizeEmail(*v)
		if err != nil {
			return nil, err
		}
		q = q.Set("email = ?", email)
	}
	u := new(User)
	err := database.Write(ctx, db, func(ctx context.Context, db bun.IDB) error { return q.Conn(db).Scan(ctx, u) })
	if err != nil {
		return nil, translate("update user", err)
	}
	return u, nil
}

// Delete removes the user and returns it as it was.
func Delete(ctx context.Context, db bun.IDB, id int64) (*User, error) {
	if err := auth.CanActAs(ctx, id); err != nil {
		return nil, err
	}
	u := new(User)
	err := database.Write(ctx, db, func(ctx context.Context, db bun.IDB) error {
		return db.NewDelete().Model(u).Where("id = ?", id).Returning("*").Scan(ctx)
	})
	if err != nil {
		return nil, translate("delete user", err)
	}
	return u, nil
}

// uniqueFields maps the unique indexes of the users table to the input field each protects.
var uniqueFields = map[string]string{
	"users_username_lower_key": "username",
	"users_email_lower_key":    "email",
}

func translate(op string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if constraint, ok := database.UniqueViolation(err); ok {
		if field, ok := uniqueFields[constraint]; ok {
			return apperr.Taken(field, field+" is already taken")
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// FindMany returns the users with these ids, by id; ids with no user are absent.
func FindMany(ctx context.Context, db bun.IDB, ids []int64) (map[int64]*User, error) {
	list := make([]*User, 0, len(ids))
	if err := db.NewSelect().Model(&list).Where("id = ANY(?::bigint[])", pgdialect.Array(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find users: %w", err)
	}
	byID := make(map[int64]*User, len(list))
	for _, u := range list {
		byID[u.ID] = u
	}
	return byID, nil
}

// Lookups finds users by id for every request of the process, coalescing the lookups that
// arrive together into one statement (see package coalesce).
type Lookups struct {
	group *coalesce.Group[int64, *User]
	pages *coalesce.Group[page, []*User]

	db *bun.DB
	// Prepared pages, their sizes in the text (see database.Statements): users(offset, limit)
	// and usersConnection, each with a budget of its own.
	listStmts, pageStmts *database.Statements
}

// maxStatements bounds the texts Lookups prepares with their sizes written in; past it, a new
// size runs the statement with the sizes as parameters, which PostgreSQL plans on every run.
const maxStatements = 64

// The columns of a user, as User scans them; and those of a brief page.
const (
	userColumns  = "u.id, u.username, u.email, u.created_at, u.updated_at"
	briefColumns = "u.id, u.username"
)

type page struct{ offset, limit int }

// NewLookups returns the process's user lookups on db. Their statements are prepared.
func NewLookups(db *bun.DB, opts coalesce.Options) *Lookups {
	const columns = "id, username, email, created_at, updated_at"
	byIDs := database.Prepare(db, "SELECT "+columns+" FROM users WHERE id = ANY($1::bigint[])")
	listStmts := database.NewStatements(db, maxStatements)
	byID, byPage := opts, opts
	byID.Name, byPage.Name = "user_by_id", "user_page"
	byPage.SameKey = true
	return &Lookups{
		db: db, listStmts: listStmts, pageStmts: database.NewStatements(db, maxStatements),
		group: coalesce.New(func(ctx context.Context, ids []int64) (map[int64]*User, error) {
			list := make([]*User, 0, len(ids))
			if err := byIDs.Scan(ctx, &list, database.Int64Array(ids)); err != nil {
				return nil, fmt.Errorf("find users: %w", err)
			}
			found := make(map[int64]*User, len(list))
			for _, u := range list {
				found[u.ID] = u
			}
			return found, nil
		}, byID),
		// Requests for the same page at the same moment (the first page, mostly) share one
		// statement; each distinct page has its own.
		pages: coalesce.New(func(ctx context.Context, pages []page) (map[page][]*User, error) {
			out := make(map[page][]*User, len(pages))
			for _, p := range pages {
				list := make([]*User, 0, p.limit)
				text := "SELECT " + columns + " FROM users ORDER BY id ASC LIMIT "
				// The limit in the text; the offset only when 0 (the first page, by far the most
				// asked): deeper pages are one statement per limit, planned on each run.
				limit := strconv.Itoa(p.limit)
				var s *database.Prepared
				var args []any
				if p.offset == 0 {
					s = listStmts.Get(text+limit+" OFFSET 0", false)
				}
				if s == nil {
					if s = listStmts.Get(text+limit+" OFFSET $1", false); s != nil {
						args = []any{p.offset}
					}
				}
				if s == nil {
					s, args = listStmts.Get(text+"$1 OFFSET $2", true), []any{p.limit, p.offset}
				}
				err := s.Scan(ctx, &list, args...)
				if err != nil {
					return nil, fmt.Errorf("list users: %w", err)
				}
				out[p] = list
			}
			return out, nil
		}, byPage),
	}
}

// List returns a page of users ordered by id, as the function List does. The slice is shared
// with the other requests that asked for the same page at the same time: do not modify it.
func (l *Lookups) List(ctx context.Context, offset, limit int) ([]*User, error) {
	if err := CheckPage(offset, limit); err != nil {
		return nil, err
	}
	list, _, err := l.pages.Get(ctx, page{offset, limit})
	return list, err
}

// Find returns the user with this id, or nil when there is none.
func (l *Lookups) Find(ctx context.Context, id int64) (*User, error) {
	u, _, err := l.group.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("find user %d: %w", id, err)
	}
	return u, nil
}

// FindMany returns the users with these ids, by id; ids with no user are absent.
func (l *Lookups) FindMany(ctx context.Context, ids []int64) (map[int64]*User, error) {
	return l.group.GetMany(ctx, ids)
}

// GlobalID is the user's global id (gqlscalar.Node).
func (u *User) GlobalID() gqlscalar.ID { return gqlscalar.ID{Type: gqlscalar.TypeUser, Row: u.ID} }

// NodeID is User.id: the user's global id, written from its row number where it is.
func (u *User) NodeID() *gqlscalar.UserID { return (*gqlscalar.UserID)(&u.ID) }
