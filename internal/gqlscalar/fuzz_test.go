package gqlscalar_test

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
)

// go test -fuzz=FuzzID ./internal/gqlscalar
func FuzzID(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "+1", "9223372036854775807", "9223372036854775808", "1e3", " 1", "abc", "",
		"VXNlcjox", "SXRlbTox", "VXNlcjox=", "VXNlcjoxMg==", "VXNlcjoxMg", "VXNlcjowMQ==", "UG9zdDox", "VXNlcjo="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := gqlscalar.ParseID(s)
		if err != nil {
			if !apperr.ErrInvalid.Is(err) {
				t.Fatalf("%q: want BAD_USER_INPUT, got %v", s, err)
			}
			return
		}
		if id.Row <= 0 {
			t.Fatalf("%q -> row %d", s, id.Row)
		}
		switch id.Type {
		case gqlscalar.Untyped: // a bare number, as strconv reads it
			if n, err := strconv.ParseInt(s, 10, 64); err != nil || n != id.Row {
				t.Fatalf("%q -> bare %d", s, id.Row)
			}
			return
		case gqlscalar.TypeUser, gqlscalar.TypeItem:
		default:
			t.Fatalf("%q -> type %d", s, id.Type)
		}
		// A global id is accepted only in the one form the API writes.
		if id.String() != s {
			t.Fatalf("%q reads as %+v, which is written %q", s, id, id.String())
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || string(raw) != id.Type.String()+":"+strconv.FormatInt(id.Row, 10) {
			t.Fatalf("%q decodes as %q, %v", s, raw, err)
		}
		var b bytes.Buffer
		b.WriteString("x") // the id follows what the buffer holds
		id.MarshalGQL(&b)
		if b.String() != "x"+strconv.Quote(s) {
			t.Fatalf("%+v marshals as %s", id, b.String())
		}
		var other strings.Builder // another writer than the executor's buffer
		id.MarshalGQL(&other)
		if other.String() != strconv.Quote(s) {
			t.Fatalf("%+v marshals as %s", id, other.String())
		}
	})
}

// go test -fuzz=FuzzTime ./internal/gqlscalar
func FuzzTime(f *testing.F) {
	for _, s := range []string{"2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123456789+02:00", "0000-01-01T00:00:00Z", "yesterday", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := gqlscalar.UnmarshalTime(s)
		if err != nil {
			if !apperr.ErrInvalid.Is(err) {
				t.Fatalf("%q: want BAD_USER_INPUT, got %v", s, err)
			}
			return
		}
		if ts.Year() < 1 || ts.Year() > 9999 {
			t.Fatalf("%q -> year %d", s, ts.Year())
		}
		var b bytes.Buffer
		gqlscalar.MarshalTime(ts).MarshalGQL(&b)
		back, err := strconv.Unquote(b.String())
		if err != nil {
			t.Fatal(err)
		}
		if again, err := time.Parse(time.RFC3339Nano, back); err != nil || !again.Equal(ts) {
			t.Fatalf("%q does not round-trip: %s, %v", s, back, err)
		}
	})
}
