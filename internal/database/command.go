package database

import (
	"context"
	"fmt"
	"io"

	"github.com/uptrace/bun"
)

// Command runs `migrate up|down|status|create NAME`, printing what it did to out.
func Command(ctx context.Context, db *bun.DB, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("migrate: want up, down, status or create NAME")
	}
	switch args[0] {
	case "up":
		applied, err := Up(ctx, db)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			_, _ = fmt.Fprintln(out, "nothing to migrate")
		}
		for _, name := range applied {
			_, _ = fmt.Fprintln(out, "applied", name)
		}
	case "down":
		rolled, err := Down(ctx, db)
		if err != nil {
			return err
		}
		if len(rolled) == 0 {
			_, _ = fmt.Fprintln(out, "nothing to roll back")
		}
		for _, name := range rolled {
			_, _ = fmt.Fprintln(out, "rolled back", name)
		}
	case "status":
		ms, err := Status(ctx, db)
		if err != nil {
			return err
		}
		for _, m := range ms {
			state := "pending"
			if m.IsApplied() {
				state = fmt.Sprintf("applied (group %d, %s)", m.GroupID, m.MigratedAt.Format("2006-01-02 15:04:05"))
			}
			_, _ = fmt.Fprintf(out, "%s_%s\t%s\n", m.Name, m.Comment, state)
		}
	case "create":
		if len(args) != 2 {
			return fmt.Errorf("migrate create: want exactly one NAME")
		}
		m, err := Migrator(db, "migrations")
		if err != nil {
			return err
		}
		files, err := m.CreateTxSQLMigrations(ctx, args[1])
		if err != nil {
			return err
		}
		for _, f := range files {
			_, _ = fmt.Fprintln(out, "created", f.Path)
		}
	default:
		return fmt.Errorf("migrate: unknown command %q: want up, down, status or create NAME", args[0])
	}
	return nil
}
