// Command wikigraph serves the GraphQL API over PostgreSQL.
//
//	wikigraph                      serve (migrating first unless MIGRATE_ON_START=false)
//	wikigraph migrate up|down|status
//	wikigraph migrate create NAME  write a new pair of SQL files into ./migrations
//	wikigraph healthcheck          exit 0 when the local server's /readyz answers 200
//	wikigraph token SUB [ROLE]     print a development token (HS256, AUTH_JWT_SECRET; ROLE user or admin)
package main

//go:generate go run ./cmd/gqlgen

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/wikigraph/wikigraph/internal/app"
	"github.com/wikigraph/wikigraph/internal/config"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/httpserver"
	"github.com/wikigraph/wikigraph/internal/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		slog.Error("wikigraph stopped", "error", err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	level, _ := cfg.Level()
	var logOut io.Writer = os.Stderr
	if cfg.LogFlushInterval > 0 {
		buffered := logging.NewBuffered(os.Stderr, cfg.LogFlushInterval)
		defer buffered.Close()
		logOut = buffered
	}
	logger := logging.New(logOut, cfg.LogFormat, level)
	slog.SetDefault(logger)
	switch {
	case len(args) == 0 || args[0] == "serve":
		app.TuneGC(logger)
		return app.Serve(ctx, cfg, logger)
	case args[0] == "healthcheck":
		return httpserver.Check(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", cfg.Port))
	case args[0] == "token":
		return app.Token(cfg, args[1:], out)
	case args[0] == "migrate":
		migrationDB, err := database.OpenForMigrations(cfg.DatabaseDirectURL, cfg.DBAppName)
		if err != nil {
			return err
		}
		defer migrationDB.Close()
		return database.Command(ctx, migrationDB, args[1:], out)
	default:
		return fmt.Errorf("unknown command %q: want serve, migrate, healthcheck or token", args[0])
	}
}
