package users_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/users"
)

// go test -fuzz=FuzzNormalizeUsername ./internal/users (the seeds run in make test).
func FuzzNormalizeUsername(f *testing.F) {
	for _, s := range []string{"alice", "  Bob.B-c_9 ", "ab", strings.Repeat("x", 33), "zoë", "a\x00b", "'; DROP TABLE users;--", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := users.NormalizeUsername(in)
		if err != nil {
			var appErr *apperr.Error
			if !errors.As(err, &appErr) || appErr.Code != apperr.BadUserInput || appErr.Field != "username" {
				t.Fatalf("%q: want BAD_USER_INPUT on username, got %v", in, err)
			}
			return
		}
		if n := len(out); n < 3 || n > 32 || out != strings.TrimSpace(out) {
			t.Fatalf("%q -> %q breaks the rules", in, out)
		}
		for _, r := range out {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
				t.Fatalf("%q -> %q has %q", in, out, r)
			}
		}
		if again, err := users.NormalizeUsername(out); err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
	})
}

// go test -fuzz=FuzzNormalizeEmail ./internal/users
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"a@example.com", " A.B+c@Ex.org ", "Bob <b@x.y>", "a@b@c", "\"q@x\"@example.com", "a\x00@x.y", strings.Repeat("a", 250) + "@x.yz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := users.NormalizeEmail(in)
		if err != nil {
			if !errors.Is(err, apperr.Invalid("email", "")) {
				t.Fatalf("%q: want BAD_USER_INPUT on email, got %v", in, err)
			}
			return
		}
		if len(out) > users.MaxEmailLength || !utf8.ValidString(out) || strings.ContainsRune(out, 0) || !strings.Contains(out, "@") {
			t.Fatalf("%q -> %q breaks the rules", in, out)
		}
		if again, err := users.NormalizeEmail(out); err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
	})
}
