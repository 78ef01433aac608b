// Package migrations embeds the SQL migrations, discovered by bun/migrate from their file names:
// <timestamp>_<name>.tx.up.sql and .tx.down.sql run each in a transaction. Create new ones with
// `go run . migrate create NAME`.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
