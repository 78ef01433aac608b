package main

import (
	"strings"
	"testing"
)

// The floor runs the statement of each operation's pgbench script: every operation it names exists
// and has one statement, with :id as its parameter.
func TestFloorStatements(t *testing.T) {
	found := 0
	for _, op := range operations {
		if _, ok := floorOps[op.Name]; !ok {
			continue
		}
		found++
		stmt, err := floorStatement(op)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stmt, "SELECT "+userColumns+` FROM "users" AS "u" `) {
			t.Errorf("%s: %s", op.Name, stmt)
		}
		if want := strings.Contains(op.pgbench, ":id"); strings.Contains(stmt, "$1") != want {
			t.Errorf("%s: %s has a parameter: %v, want %v", op.Name, stmt, !want, want)
		}
	}
	if found != len(floorOps) {
		t.Errorf("%d of the floor's %d operations are in operations", found, len(floorOps))
	}
	if _, err := floorStatement(operation{Name: "two", pgbench: "SELECT 1;\nSELECT 2;\n"}); err == nil {
		t.Error("two statements accepted")
	}
}
