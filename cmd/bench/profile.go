package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// profiler fetches the server's CPU profile of one measured window, and its heap profile after.
type profiler struct{ done chan struct{} }

func (p *profiler) wait() { <-p.done }

func (s *serverProc) profile(ctx context.Context, dir, op string, c int, warmup, window time.Duration) *profiler {
	p := &profiler{done: make(chan struct{})}
	name := strings.NewReplacer(" ", "_", "(", "", ")", "", ":", "", ",", "", "×", "x").Replace(op)
	base := filepath.Join(dir, fmt.Sprintf("%s-c%d", name, c))
	go func() {
		defer close(p.done)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Print(err)
			return
		}
		time.Sleep(warmup)
		secs := int(window.Seconds())
		fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.pprof, secs), base+".cpu.pprof")
		fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/allocs", s.pprof), base+".allocs.pprof")
	}()
	return p
}

func fetch(ctx context.Context, url, file string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Printf("profile: %v", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		log.Printf("profile: %v", err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}
