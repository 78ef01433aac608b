// Command gqlgen is `go generate`'s code generator: gqlgen with gqlgen.yml, as `go tool gqlgen
// generate` runs it, then internal/gqlfast's rewrites of the generated executor.
package main

import (
	"fmt"
	"os"

	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen/config"

	"github.com/wikigraph/wikigraph/internal/gqlfast"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.LoadConfigFromDefaultLocations()
	if err != nil {
		return fmt.Errorf("load gqlgen config: %w", err)
	}
	if err := api.Generate(cfg); err != nil {
		return err
	}
	path := cfg.Exec.Filename
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, _, err := gqlfast.Rewrite(src)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}
