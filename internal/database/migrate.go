package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/wikigraph/wikigraph/migrations"
)

// MigrationLockKey is the pg_advisory_lock key that serialises migrations across instances.
const MigrationLockKey int64 = 0x77696b6967726170 // "wikigrap"

// migrationsTable is where bun/migrate records what ran.
const migrationsTable = "bun_migrations"

// Migrator returns a bun/migrate Migrator over the embedded migrations. dir is where `create`
// writes new files. A transactional migration (.tx.up.sql, .tx.down.sql) adds or deletes its
// record in bun_migrations in its own transaction (recordInTx).
func Migrator(db *bun.DB, dir string) (*migrate.Migrator, error) {
	ms, err := discover(dir)
	if err != nil {
		return nil, err
	}
	return migrate.NewMigrator(db, ms,
		migrate.WithTableName(migrationsTable),
		migrate.WithMarkAppliedOnSuccess(true),
		// bun's Migrate marks a migration applied after it ran: once recordInTx has recorded
		// it, the upsert updates that record instead of failing or adding a second. Init adds
		// the unique index on name the upsert needs, to tables made before it too.
		migrate.WithUpsert(true),
		migrate.AfterMigration(recordInTx),
	), nil
}

// recordInTx records a migration going up, or deletes the record of one going down, in the
// migration's transaction before bun commits it: the schema change and its record commit
// together or not at all, so a connection lost (or a process killed) between them cannot leave
// a schema that the next Up tries to make again. bun calls it with the transaction (a bun.Tx)
// for .tx.*.sql files, and with a connection or the pool otherwise: those migrations are not
// atomic anyway and are recorded after they succeed. A migration without a record (ID 0) is
// going up, one with a record is going down; the ID follows the record, so the same Migration
// value can go up and down again.
func recordInTx(ctx context.Context, db bun.IConn, mg *migrate.Migration) error {
	tx, ok := db.(bun.Tx)
	if !ok {
		return nil
	}
	if mg.ID == 0 {
		_, err := tx.NewInsert().Model(mg).ModelTableExpr(migrationsTable).Returning("id").Exec(ctx)
		return err
	}
	if _, err := tx.NewDelete().TableExpr(migrationsTable).Where("id = ?", mg.ID).Exec(ctx); err != nil {
		return err
	}
	mg.ID = 0
	return nil
}

func discover(dir string) (*migrate.Migrations, error) {
	ms := migrate.NewMigrations(migrate.WithMigrationsDirectory(dir))
	if err := ms.Discover(migrations.FS); err != nil {
		return nil, fmt.Errorf("discover migrations: %w", err)
	}
	return ms, nil
}

// Up applies every pending migration and returns the names it applied. Instances starting at once
// wait for each other on a PostgreSQL advisory lock held by a dedicated connection, so each
// migration runs exactly once; a crashed instance's lock goes with its connection. Use a pool
// without a statement timeout (OpenForMigrations). Once the lock is taken, cancelling ctx no
// longer interrupts: a migration and its record in bun_migrations are not torn apart.
//
// Up and Down do what bun's Migrate and Rollback do, but check that each transactional
// migration committed: bun v1.2.18 drops the error of its COMMIT, after which Migrate would mark
// a migration that was rolled back applied.
func Up(ctx context.Context, db *bun.DB) ([]string, error) {
	var applied []string
	err := withMigrationLock(ctx, db, func(m *migrate.Migrator) error {
		ctx := context.WithoutCancel(ctx)
		ms, err := m.MigrationsWithStatus(ctx)
		if err != nil {
			return err
		}
		group := ms.LastGroupID() + 1
		for _, mg := range ms.Unapplied() {
			mg.GroupID = group
			if mg.Up != nil {
				if err := mg.Up(ctx, m, &mg); err != nil {
					return fmt.Errorf("%s: up: %w", mg.Name, err)
				}
			}
			if mg.ID == 0 { // not transactional: recorded once it succeeded, as bun does
				err = m.MarkApplied(ctx, &mg)
			} else {
				err = checkCommitted(ctx, db, mg.ID, true)
			}
			if err != nil {
				return fmt.Errorf("%s: up: %w", mg.Name, err)
			}
			applied = append(applied, mg.String())
		}
		return nil
	})
	return applied, err
}

// Down rolls back the last group of migrations and returns the names it rolled back, in that
// order.
func Down(ctx context.Context, db *bun.DB) ([]string, error) {
	var rolled []string
	err := withMigrationLock(ctx, db, func(m *migrate.Migrator) error {
		ctx := context.WithoutCancel(ctx)
		ms, err := m.MigrationsWithStatus(ctx)
		if err != nil {
			return err
		}
		group := ms.LastGroup().Migrations
		for i := len(group) - 1; i >= 0; i-- {
			mg := &group[i]
			id := mg.ID
			if mg.Down != nil {
				if err := mg.Down(ctx, m, mg); err != nil {
					return fmt.Errorf("%s: down: %w", mg.Name, err)
				}
			}
			if mg.ID == id { // not transactional: its record goes once it succeeded
				err = m.MarkUnapplied(ctx, mg)
			} else {
				err = checkCommitted(ctx, db, id, false)
			}
			if err != nil {
				return fmt.Errorf("%s: down: %w", mg.Name, err)
			}
			rolled = append(rolled, mg.String())
		}
		return nil
	})
	return rolled, err
}

// checkCommitted checks that the transaction of a migration that ran without an error committed:
// that its record, id, is in bun_migrations if recorded, and is gone otherwise.
func checkCommitted(ctx context.Context, db *bun.DB, id int64, recorded bool) error {
	var found bool
	if err := db.NewRaw("SELECT EXISTS (SELECT 1 FROM ? WHERE id = ?)", bun.Ident(migrationsTable), id).
		Scan(ctx, &found); err != nil {
		return fmt.Errorf("check that its transaction committed: %w", err)
	}
	if found != recorded {
		return errors.New("its transaction did not commit")
	}
	return nil
}

// Status lists every known migration with whether and when it was applied. It creates nothing.
func Status(ctx context.Context, db *bun.DB) (migrate.MigrationSlice, error) {
	exists, err := migrationsTableExists(ctx, db)
	if err != nil {
		return nil, err
	}
	if !exists {
		ms, err := discover("")
		if err != nil {
			return nil, err
		}
		return ms.Sorted(), nil
	}
	m, err := Migrator(db, "")
	if err != nil {
		return nil, err
	}
	return m.MigrationsWithStatus(ctx)
}

func migrationsTableExists(ctx context.Context, db *bun.DB) (bool, error) {
	var exists bool
	if err := db.NewRaw("SELECT to_regclass(?) IS NOT NULL", migrationsTable).Scan(ctx, &exists); err != nil {
		return false, fmt.Errorf("look for migrations table: %w", err)
	}
	return exists, nil
}

// Pending lists the migrations not yet applied, without creating anything.
func Pending(ctx context.Context, db *bun.DB) ([]string, error) {
	ms, err := Status(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	var names []string
	for _, mg := range ms.Unapplied() {
		names = append(names, mg.Name)
	}
	return names, nil
}

func withMigrationLock(ctx context.Context, db *bun.DB, fn func(*migrate.Migrator) error) (err error) {
	m, err := Migrator(db, "")
	if err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migration lock connection: %w", err)
	}
	defer func() {
		// Unlock on a fresh context: the caller's may be cancelled. If unlocking fails the
		// connection must not go back to the pool still holding the lock, so it is discarded.
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.ExecContext(unlockCtx, "SELECT pg_advisory_unlock(?)", MigrationLockKey); uerr != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			err = errors.Join(err, fmt.Errorf("release migration lock: %w", uerr))
		}
		_ = conn.Close()
	}()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", MigrationLockKey); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	if err := m.Init(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("init migrations table: %w", err)
	}
	return fn(m)
}
