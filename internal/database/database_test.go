package database_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/migrations"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func openEmpty(t *testing.T) *bun.DB {
	t.Helper()
	db, err := dbtest.Open(dbtest.Empty(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func migrationCount(t *testing.T) int {
	t.Helper()
	files, err := migrations.FS.ReadDir(".")
	require.NoError(t, err)
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f.Name(), ".up.sql") {
			n++
		}
	}
	require.Positive(t, n)
	return n
}

func tableExists(t *testing.T, db *bun.DB, name string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, db.NewRaw("SELECT to_regclass(?) IS NOT NULL", name).Scan(context.Background(), &ok))
	return ok
}

func TestUpDownUp(t *testing.T) {
	ctx := context.Background()
	db := openEmpty(t)
	n := migrationCount(t)

	pending, err := database.Pending(ctx, db)
	require.NoError(t, err)
	assert.Len(t, pending, n, "an empty database has every migration pending")
	assert.Error(t, database.Ready(ctx, db), "not ready before migrating")
	assert.False(t, tableExists(t, db, "bun_migrations"), "Pending and Ready create nothing")

	applied, err := database.Up(ctx, db)
	require.NoError(t, err)
	assert.Len(t, applied, n)
	assert.True(t, tableExists(t, db, "users"))
	assert.NoError(t, database.Ready(ctx, db))

	again, err := database.Up(ctx, db)
	require.NoError(t, err)
	assert.Empty(t, again, "a second up applies nothing")

	rolled, err := database.Down(ctx, db)
	require.NoError(t, err)
	assert.Len(t, rolled, n, "down rolls back the last group")
	assert.False(t, tableExists(t, db, "users"))
	assert.Error(t, database.Ready(ctx, db))

	applied, err = database.Up(ctx, db)
	require.NoError(t, err)
	assert.Len(t, applied, n)
	assert.True(t, tableExists(t, db, "users"))
	assert.NoError(t, database.Ready(ctx, db))
}

func TestEveryMigrationHasAWorkingDown(t *testing.T) {
	ctx := context.Background()
	db := openEmpty(t)
	m, err := database.Migrator(db, "")
	require.NoError(t, err)
	require.NoError(t, m.Init(ctx))
	ms, err := m.MigrationsWithStatus(ctx)
	require.NoError(t, err)
	// The schema as the catalog describes it: relations with their columns, constraints,
	// indexes' definitions, functions, types and extensions.
	schema := func() []string {
		var objects []string
		require.NoError(t, db.NewRaw(`
			SELECT 'rel ' || c.relname || ' ' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = 'public' AND c.relname NOT LIKE 'bun_migration%'
			UNION ALL SELECT 'col ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
				FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE 'bun_migration%'
			UNION ALL SELECT 'con ' || conname || ' ' || pg_get_constraintdef(c.oid) FROM pg_constraint c
				JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public' AND conname NOT LIKE 'bun_migration%'
			UNION ALL SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE 'bun_migration%'
			UNION ALL SELECT 'fn ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
			UNION ALL SELECT 'type ' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
				WHERE n.nspname = 'public' AND t.typname NOT LIKE '%bun_migration%'
			UNION ALL SELECT 'ext ' || extname FROM pg_extension
			ORDER BY 1`).Scan(ctx, &objects))
		return objects
	}
	// Each down undoes exactly its own up: after up(i) then down(i) the schema is as before.
	for i := range ms {
		mg := &ms[i]
		require.NotNil(t, mg.Down, "%s has no down migration", mg.Name)
		before := schema()
		require.NoError(t, mg.Up(ctx, m, mg), "%s up", mg.Name)
		require.NotEqual(t, before, schema(), "%s up changes the schema", mg.Name)
		require.NoError(t, mg.Down(ctx, m, mg), "%s down", mg.Name)
		require.Equal(t, before, schema(), "%s down undoes its up", mg.Name)
		require.NoError(t, mg.Up(ctx, m, mg), "%s up again", mg.Name)
	}
}

func TestInstancesMigratingAtOnce(t *testing.T) {
	ctx := context.Background()
	u := dbtest.Empty(t)
	n := migrationCount(t)
	const instances = 4
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied []string
		errs    []error
	)
	start := make(chan struct{})
	for range instances {
		db, err := dbtest.Open(u)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		wg.Go(func() {
			<-start
			names, err := database.Up(ctx, db)
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, names...)
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	close(start)
	wg.Wait()
	require.Empty(t, errs)
	assert.Len(t, applied, n, "each migration applied by exactly one instance")

	db, err := dbtest.Open(u)
	require.NoError(t, err)
	defer db.Close()
	count, err := db.NewSelect().Table("bun_migrations").Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, n, count, "each migration recorded once")
}

func TestMigrationLockIsHeldAndReleasedWithItsConnection(t *testing.T) {
	ctx := context.Background()
	u := dbtest.Empty(t)
	holder, err := dbtest.Open(u)
	require.NoError(t, err)
	defer holder.Close()
	db, err := dbtest.Open(u)
	require.NoError(t, err)
	defer db.Close()

	// Another instance holds the migration lock: Up waits for it.
	conn, err := holder.Conn(ctx)
	require.NoError(t, err)
	var pid int
	require.NoError(t, conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	_, err = conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", database.MigrationLockKey)
	require.NoError(t, err)

	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = database.Up(short, db)
	cancel()
	require.Error(t, err, "Up must wait while another instance holds the lock")
	assert.False(t, tableExists(t, db, "users"))

	// That instance crashes: its connection goes, and its lock with it.
	_, err = db.ExecContext(ctx, "SELECT pg_terminate_backend(?)", pid)
	require.NoError(t, err)
	_ = conn.Close()

	limited, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	applied, err := database.Up(limited, db)
	require.NoError(t, err)
	assert.Len(t, applied, migrationCount(t))

	var held int
	require.NoError(t, db.NewRaw(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(ctx, &held))
	assert.Zero(t, held, "Up releases its lock")
}

func TestReadyWhenUnreachable(t *testing.T) {
	db, err := dbtest.Open("postgres://postgres@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	assert.Error(t, database.Ready(ctx, db))
}

func TestUniqueViolation(t *testing.T) {
	ctx := context.Background()
	db := dbtest.DB(t)
	_, err := db.ExecContext(ctx, "INSERT INTO users (username, email) VALUES ('uv_one', 'uv@example.com')")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "INSERT INTO users (username, email) VALUES ('UV_ONE', 'uv2@example.com')")
	constraint, ok := database.UniqueViolation(err)
	assert.True(t, ok)
	assert.Equal(t, "users_username_lower_key", constraint)

	_, ok = database.UniqueViolation(context.Canceled)
	assert.False(t, ok)
}

func TestStatementTimeoutIsSet(t *testing.T) {
	db, err := database.Open(database.Options{URL: dbtest.URL(t), AppName: "timeout-test", MaxConns: 2, StatementTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	defer db.Close()
	ctx := context.Background()
	var setting, app string
	require.NoError(t, db.NewRaw("SELECT current_setting('statement_timeout'), current_setting('application_name')").Scan(ctx, &setting, &app))
	assert.Equal(t, "200ms", setting)
	assert.Equal(t, "timeout-test", app)
	_, err = db.ExecContext(ctx, "SELECT pg_sleep(2)")
	require.Error(t, err, "the server cancels a statement over the timeout")
	assert.Contains(t, err.Error(), "57014")
}

// A cancelled context (a client that went away) stops its statement on the server too, and a
// write it was making is rolled back.
func TestCancelledContextStopsTheStatement(t *testing.T) {
	app := fmt.Sprintf("cancel-test-%d", time.Now().UnixNano())
	db, err := database.Open(database.Options{URL: dbtest.URL(t), AppName: app, MaxConns: 4, StatementTimeout: time.Minute})
	require.NoError(t, err)
	defer db.Close()
	observer := dbtest.DB(t)
	bg := context.Background()
	running := func() int {
		var n int
		require.NoError(t, observer.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE application_name = ? AND state = 'active'", app).Scan(bg, &n))
		return n
	}

	for name, query := range map[string]string{
		"exec":  "INSERT INTO users (username, email) SELECT 'cancelled_write', 'cw@example.com' FROM pg_sleep(30)",
		"query": "SELECT pg_sleep(30)",
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(bg)
			time.AfterFunc(300*time.Millisecond, cancel)
			start := time.Now()
			var err error
			if name == "exec" {
				_, err = db.ExecContext(ctx, query)
			} else {
				var rows *sql.Rows
				rows, err = db.QueryContext(ctx, query)
				if err == nil {
					for rows.Next() {
					}
					err = errors.Join(rows.Err(), rows.Close())
				}
			}
			require.ErrorIs(t, err, context.Canceled)
			assert.Less(t, time.Since(start), 5*time.Second, "the caller is released at once")
			assert.Eventually(t, func() bool { return running() == 0 }, 10*time.Second, 50*time.Millisecond,
				"the server stops the statement")
		})
	}
	n, err := observer.NewSelect().Table("users").Where("username = 'cancelled_write'").Count(bg)
	require.NoError(t, err)
	assert.Zero(t, n, "the cancelled write is rolled back")

	// The pool still works: the killed connection was dropped, not reused.
	for range 8 {
		var one int
		require.NoError(t, db.NewRaw("SELECT 1").Scan(bg, &one))
	}
}

// Migrations wait for a long-held lock and run long statements whatever the server's statement
// timeout: they use their own pool.
func TestMigrationsIgnoreTheStatementTimeout(t *testing.T) {
	ctx := context.Background()
	u := dbtest.Empty(t)
	holder, err := database.Open(database.Options{URL: u, AppName: "holder", MaxConns: 2, StatementTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	defer holder.Close()
	conn, err := holder.Conn(ctx)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", database.MigrationLockKey)
	require.NoError(t, err)
	time.AfterFunc(time.Second, func() {
		_, _ = conn.ExecContext(ctx, "SELECT pg_advisory_unlock(?)", database.MigrationLockKey)
		_ = conn.Close()
	})

	db, err := database.OpenForMigrations(u, "wait-test")
	require.NoError(t, err)
	defer db.Close()
	start := time.Now()
	applied, err := database.Up(ctx, db)
	require.NoError(t, err, "waiting longer than any statement timeout is fine")
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "it did wait for the lock")
	assert.Len(t, applied, migrationCount(t))
}

func TestTimesAreUTC(t *testing.T) {
	db, err := database.Open(database.Options{URL: dbtest.URL(t) + "&TimeZone=Asia/Tokyo", AppName: "tz", MaxConns: 2, StatementTimeout: time.Second})
	require.NoError(t, err)
	defer db.Close()
	var zone string
	var now time.Time
	require.NoError(t, db.NewRaw("SELECT current_setting('TimeZone'), now()").Scan(context.Background(), &zone, &now))
	assert.Equal(t, "Asia/Tokyo", zone, "a TimeZone in the URL wins")

	db2, err := database.Open(database.Options{URL: dbtest.URL(t), AppName: "tz", MaxConns: 2, StatementTimeout: time.Second})
	require.NoError(t, err)
	defer db2.Close()
	require.NoError(t, db2.NewRaw("SELECT current_setting('TimeZone'), now()").Scan(context.Background(), &zone, &now))
	assert.Equal(t, "UTC", zone)
	_, offset := now.Zone()
	assert.Zero(t, offset)
}

func TestCommand(t *testing.T) {
	ctx := context.Background()
	db := openEmpty(t)
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		require.NoError(t, database.Command(ctx, db, args, &out))
		return out.String()
	}
	assert.Contains(t, run("status"), "pending")
	assert.Contains(t, run("up"), "applied 20261126000000_create_users")
	assert.Contains(t, run("up"), "nothing to migrate")
	assert.Contains(t, run("status"), "applied (group 1")
	assert.Contains(t, run("down"), "rolled back 20261126000000_create_users")
	assert.Contains(t, run("down"), "nothing to roll back")

	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "migrations"), 0o755))
	t.Chdir(dir)
	out := run("create", "add_things")
	files, err := filepath.Glob(filepath.Join(dir, "migrations", "*_add_things.tx.*.sql"))
	require.NoError(t, err)
	assert.Len(t, files, 2, out)

	for _, bad := range [][]string{nil, {"sideways"}, {"create"}, {"create", "Bad Name"}} {
		assert.Error(t, database.Command(ctx, db, bad, &bytes.Buffer{}), "%v", bad)
	}
}

// A prepared statement stopped by its deadline must not leave its reply on the connection for
// the next statement to read as its own (pgdriver drops the connection only for ordinary queries).
func TestPreparedStatementAfterATimeoutAnswersItself(t *testing.T) {
	db, err := database.Open(database.Options{URL: dbtest.URL(t), AppName: "prepared-timeout", MaxConns: 2})
	require.NoError(t, err)
	defer db.Close()
	p := database.Prepare(db, "SELECT $1::int FROM pg_sleep($2::float8)")
	bg := context.Background()
	for i := range 4 {
		ctx, cancel := context.WithTimeout(bg, 30*time.Millisecond)
		var n int
		err := p.Scan(ctx, &n, 1000+i, 0.3)
		cancel()
		require.Error(t, err, "the statement outlives its deadline")
		for j := range 10 {
			var got int
			require.NoError(t, p.Scan(bg, &got, j, 0))
			require.Equal(t, j, got, "after timeout %d, statement %d read another's reply", i, j)
		}
	}
}

// commitFault calls fault once, around the nth COMMIT on its pool: before it is sent, or just
// after it succeeded.
type commitFault struct {
	n       int32
	before  bool
	fault   func()
	commits atomic.Int32
}

func (h *commitFault) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if h.before && e.Query == "COMMIT" && h.commits.Add(1) == h.n {
		h.fault()
	}
	return ctx
}

func (h *commitFault) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if !h.before && e.Query == "COMMIT" && e.Err == nil && h.commits.Add(1) == h.n {
		h.fault()
	}
}

// openFaulty opens a pool on u that is closed just after its nth COMMIT, as if the instance
// lost its connection (or crashed) there: every later statement fails.
func openFaulty(t *testing.T, u string, n int) *bun.DB {
	t.Helper()
	db, err := dbtest.Open(u)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	db.AddQueryHook(&commitFault{n: int32(n), fault: func() { _ = db.DB.Close() }})
	return db
}

// records counts the rows of bun_migrations, and the names recorded more than once.
func records(t *testing.T, db *bun.DB) (rows, duplicated int) {
	t.Helper()
	require.NoError(t, db.NewRaw(`SELECT count(*), count(*) - count(DISTINCT name) FROM bun_migrations`).
		Scan(context.Background(), &rows, &duplicated))
	return rows, duplicated
}

// A migration and its record in bun_migrations commit together: an instance that loses its
// connection just after a migration's commit leaves it recorded, and the next Up or Down goes on
// from there instead of failing on a schema it does not expect (relation already exists).
func TestAMigrationAndItsRecordCommitTogether(t *testing.T) {
	ctx := context.Background()
	n := migrationCount(t)
	for _, after := range []int{1, n - 1, n} {
		t.Run(fmt.Sprintf("up, fault after migration %d", after), func(t *testing.T) {
			u := dbtest.Empty(t)
			_, err := database.Up(ctx, openFaulty(t, u, after))
			require.Error(t, err, "the fault stops Up")

			db, err := dbtest.Open(u)
			require.NoError(t, err)
			defer db.Close()
			applied, err := database.Up(ctx, db)
			require.NoError(t, err, "the next Up goes on")
			assert.Len(t, applied, n-after, "it applies what the first did not")
			rows, duplicated := records(t, db)
			assert.Equal(t, n, rows)
			assert.Zero(t, duplicated, "each migration recorded once")
			assert.NoError(t, database.Ready(ctx, db))
		})
	}
	t.Run("up, connection lost at the commit of migration 1", func(t *testing.T) {
		u := dbtest.Empty(t)
		db, err := dbtest.Open(u)
		require.NoError(t, err)
		defer db.Close()
		faulty, err := dbtest.Open(u)
		require.NoError(t, err)
		defer faulty.Close()
		faulty.AddQueryHook(&commitFault{n: 1, before: true, fault: func() {
			// The migration's transaction waits for its COMMIT: its backend goes first.
			var ended bool
			require.NoError(t, db.NewRaw(`SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
				WHERE datname = current_database() AND state = 'idle in transaction'`).Scan(ctx, &ended))
			require.True(t, ended)
		}})
		_, err = database.Up(ctx, faulty)
		require.ErrorContains(t, err, "did not commit", "Up notices that the migration did not commit")

		applied, err := database.Up(ctx, db)
		require.NoError(t, err, "the next Up applies it")
		assert.Len(t, applied, n)
		rows, duplicated := records(t, db)
		assert.Equal(t, n, rows)
		assert.Zero(t, duplicated)
	})
	t.Run("down, fault after migration 1", func(t *testing.T) {
		u := dbtest.Empty(t)
		db, err := dbtest.Open(u)
		require.NoError(t, err)
		defer db.Close()
		_, err = database.Up(ctx, db)
		require.NoError(t, err)
		_, err = database.Down(ctx, openFaulty(t, u, 1))
		require.Error(t, err, "the fault stops Down")

		rolled, err := database.Down(ctx, db)
		require.NoError(t, err, "the next Down goes on")
		assert.Len(t, rolled, n-1, "it rolls back what the first did not")
		rows, _ := records(t, db)
		assert.Zero(t, rows)
		applied, err := database.Up(ctx, db)
		require.NoError(t, err)
		assert.Len(t, applied, n)
	})
}

// A database migrated before migrations recorded themselves (bun_migrations without a unique
// index on name) migrates on.
func TestUpOnARecordTableWithoutTheUniqueIndex(t *testing.T) {
	ctx := context.Background()
	db := openEmpty(t)
	n := migrationCount(t)
	// The first two migrations, applied the way Up used to.
	old := fstest.MapFS{}
	files, err := migrations.FS.ReadDir(".")
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f.Name(), ".sql") && len(old) < 4 {
			b, err := migrations.FS.ReadFile(f.Name())
			require.NoError(t, err)
			old[f.Name()] = &fstest.MapFile{Data: b}
		}
	}
	ms := migrate.NewMigrations()
	require.NoError(t, ms.Discover(old))
	m := migrate.NewMigrator(db, ms, migrate.WithTableName("bun_migrations"), migrate.WithMarkAppliedOnSuccess(true))
	require.NoError(t, m.Init(ctx))
	group, err := m.Migrate(ctx)
	require.NoError(t, err)
	require.Len(t, group.Migrations, 2)

	applied, err := database.Up(ctx, db)
	require.NoError(t, err)
	assert.Len(t, applied, n-2)
	rows, duplicated := records(t, db)
	assert.Equal(t, n, rows)
	assert.Zero(t, duplicated)
	var unique bool
	require.NoError(t, db.NewRaw(`SELECT EXISTS (SELECT 1 FROM pg_indexes
		WHERE tablename = 'bun_migrations' AND indexdef LIKE 'CREATE UNIQUE INDEX % (name)')`).Scan(ctx, &unique))
	assert.True(t, unique, "Up adds the unique index")
	rolled, err := database.Down(ctx, db)
	require.NoError(t, err)
	assert.Len(t, rolled, n-2, "down rolls back the last group")
}
