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
// writes new files.
func Migrator(db *bun.DB, dir string) (*migrate.Migrator, error) {
	ms, err := discover(dir)
	if err != nil {
		return nil, err
	}
	return migrate.NewMigrator(db, ms,
		migrate.WithTableName(migrationsTable),
		migrate.WithMarkAppliedOnSuccess(true),
	), nil
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
func Up(ctx context.Context, db *bun.DB) ([]string, error) {
	var applied []string
	err := withMigrationLock(ctx, db, func(m *migrate.Migrator) error {
		group, err := m.Migrate(context.WithoutCancel(ctx))
		if group != nil {
			for _, mg := range group.Migrations {
				applied = append(applied, mg.Name+"_"+mg.Comment)
			}
		}
		return err
	})
	return applied, err
}

// Down rolls back the last group of migrations and returns the names it rolled back.
func Down(ctx context.Context, db *bun.DB) ([]string, error) {
	var rolled []string
	err := withMigrationLock(ctx, db, func(m *migrate.Migrator) error {
		group, err := m.Rollback(context.WithoutCancel(ctx))
		if group != nil {
			for _, mg := range group.Migrations {
				rolled = append(rolled, mg.Name+"_"+mg.Comment)
			}
		}
		return err
	})
	return rolled, err
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
