// Package playground serves GraphiQL from files embedded in the binary: its JavaScript, CSS and
// workers come from npm packages at pinned versions (web/playground, built by `make playground`)
// and the page loads nothing from any other origin.
package playground

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed all:dist
var files embed.FS

// csp allows the page to load only its own files and to talk only to its own server.
const csp = "default-src 'self'; script-src 'self'; worker-src 'self' blob:; connect-src 'self' ws: wss:; " +
	"style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"

// Handler serves the playground: index.html at /, its hashed assets under /assets/.
func Handler() http.Handler {
	dist, err := fs.Sub(files, "dist")
	if err != nil {
		panic(err) // the embed pattern guarantees dist exists
	}
	static := http.FileServerFS(dist)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if strings.HasPrefix(r.URL.Path, "/assets/") {
			// File names carry a content hash: they never change.
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		static.ServeHTTP(w, r)
	})
}
