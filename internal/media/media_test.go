package media

import "testing"

func TestNegotiate(t *testing.T) {
	for _, c := range []struct {
		accept, want string
	}{
		{"", JSON},
		{"application/json", JSON},
		{"*/*", JSON},
		{"application/*", JSON},
		{"application/graphql-response+json", GraphQLResponse},
		{"Application/GraphQL-Response+JSON", GraphQLResponse},
		{"application/graphql-response+json; charset=utf-8, application/json; charset=utf-8", GraphQLResponse}, // the spec's advice
		{"application/graphql-response+json,application/json;q=0.9", GraphQLResponse},                          // Apollo Client
		{"application/json, application/graphql-response+json", JSON},
		{"application/json;q=0.5, application/graphql-response+json", GraphQLResponse},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON}, // a browser
		{"*/*, application/graphql-response+json", JSON},
		{"application/graphql-response+json;q=0.2, */*;q=0.1", GraphQLResponse},
		{"text/plain, application/json;q=0", ""},
		{"application/json;q=0, */*", GraphQLResponse}, // JSON refused by name; the wildcard leaves the other
		{"application/json; charset=iso-8859-1", ""},
		{"text/html", ""},
		{"application/graphql+json", ""},
	} {
		got, ok := Negotiate(c.accept)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("Negotiate(%q) = %q, %v; want %q", c.accept, got, ok, c.want)
		}
	}
}

func BenchmarkNegotiate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Negotiate("application/graphql-response+json,application/json;q=0.9")
	}
}
