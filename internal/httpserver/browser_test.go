package httpserver_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// chromium finds the browser `make test` installs (Debian's chromium), or $CHROMIUM.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("no chromium: `make test` installs Debian's chromium package (apt-get install chromium)")
	return ""
}

// The playground renders in a real browser, runs a typed query and shows its result, and the
// page makes no request that leaves 127.0.0.1. With UPDATE_SCREENSHOT=1 it saves docs/playground.png.
func TestPlaygroundInBrowser(t *testing.T) {
	exe := chromium(t)
	in := startInstance(t, dbtest.URL(t))
	name := fmt.Sprintf("browser_%d", time.Now().UnixNano()%1e9)
	in.createUser(t, name)
	base := "http://" + in.base

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.WindowSize(1400, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	var (
		mu       sync.Mutex
		requests []string
		console  []string
	)
	listenErr := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request.URL)
		case *network.EventWebSocketCreated:
			requests = append(requests, ev.URL)
		case *runtime.EventExceptionThrown:
			msg := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
			console = append(console, msg)
		}
	})
	require.NoError(t, listenErr)

	query := fmt.Sprintf(`query ByName { userByUsername(username: "%s") { username email } }`, name)
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`.graphiql-query-editor .monaco-editor`)),
		chromedp.Click(chromedp.CSS(`.graphiql-query-editor .monaco-editor .view-lines`)),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(chromedp.ModifierCtrl)),
		chromedp.KeyEvent(kb.Delete),
		chromedp.SendKeys(chromedp.CSS(`.graphiql-query-editor .monaco-editor textarea`), query),
		// GraphiQL parses the document after a short pause; run it once the editor has settled.
		chromedp.Sleep(time.Second),
		chromedp.Click(chromedp.CSS(`.graphiql-execute-button`)),
	)
	var result string
	if err == nil {
		result, err = chromedp.Run(ctx, chromedp.Poll[string](
			`(() => { const r = document.querySelector('.graphiql-response'); return r && r.innerText.includes('"email"') ? r.innerText : false })()`,
			chromedp.WithPollingTimeout(30*time.Second)))
	}
	var shot []byte // the query and its result, for docs/playground.png
	if err == nil {
		shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	}

	// A subscription from the same editor streams over websocket: a user created elsewhere appears.
	live := fmt.Sprintf("live_%d", time.Now().UnixNano()%1e9)
	var streamed string
	if err == nil {
		err = chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS(`.graphiql-query-editor .monaco-editor .view-lines`)),
			chromedp.KeyEvent("a", chromedp.KeyModifiers(chromedp.ModifierCtrl)),
			chromedp.KeyEvent(kb.Delete),
			chromedp.SendKeys(chromedp.CSS(`.graphiql-query-editor .monaco-editor textarea`), `subscription Live { userCreated { username } }`),
			chromedp.Sleep(time.Second),
			chromedp.Click(chromedp.CSS(`.graphiql-execute-button`)),
		)
	}
	if err == nil {
		require.Eventually(t, func() bool { return in.broker.Subscribers() == 1 }, 15*time.Second, 50*time.Millisecond,
			"the playground subscribed")
		in.createUser(t, live)
		streamed, err = chromedp.Run(ctx, chromedp.Poll[string](
			fmt.Sprintf(`(() => { const r = document.querySelector('.graphiql-response'); return r && r.innerText.includes('%s') ? r.innerText : false })()`, live),
			chromedp.WithPollingTimeout(15*time.Second)))
	}
	if err != nil {
		if failShot, shotErr := chromedp.Run(ctx, chromedp.FullScreenshot(100)); shotErr == nil {
			failure := filepath.Join(os.TempDir(), "wikigraph-playground-failure.png")
			_ = os.WriteFile(failure, failShot, 0o644)
			t.Logf("screenshot of the failure: %s", failure)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	require.NoError(t, err, "requests: %d, exceptions: %v", len(requests), console)
	assert.Contains(t, result, name)
	assert.Contains(t, result, name+"@example.com")
	assert.Contains(t, streamed, live)
	var sawWebsocket bool
	for _, r := range requests {
		sawWebsocket = sawWebsocket || strings.HasPrefix(r, "ws://"+in.base+"/query")
	}
	assert.True(t, sawWebsocket, "the subscription ran over websocket: %v", requests)

	require.NotEmpty(t, requests)
	for _, r := range requests {
		u, err := url.Parse(r)
		require.NoError(t, err)
		if u.Scheme == "data" || u.Scheme == "blob" {
			continue
		}
		assert.Equal(t, in.base, u.Host, "every request stays on 127.0.0.1: %s", r)
	}
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		require.NoError(t, os.WriteFile(filepath.Join("..", "..", "docs", "playground.png"), shot, 0o644))
	}
	assert.Greater(t, len(shot), 10_000, "a screenshot was taken")
	assert.False(t, strings.Contains(strings.Join(console, "\n"), "Content Security Policy"), "no CSP violation: %v", console)
}
