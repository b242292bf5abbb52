// Package browsertest runs Debian's Chromium headless for tests, driven by
// chromedp, so that web pages are tested in a real browser. Like
// net/http/httptest it is only for tests and never ships in the binary.
package browsertest

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/edged/edged/internal/testutil"
)

// New starts a headless Chromium (skipping the test when it is not
// installed, failing it when CI is set; build/test-deps.sh installs it)
// and returns a tab's context that ends with the test, bounded by
// timeout. Each New is a fresh profile: no cookies, no cached logins.
// JavaScript dialogs (confirm) are accepted.
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	path := testutil.NeedTool(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.WindowSize(1200, 860),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	// The first Run starts the browser; it must not carry the timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancel)
	return tctx
}

// BasicAuth makes every later request of the tab carry an HTTP basic
// auth login, as a browser does once the user has typed it.
func BasicAuth(user, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		v := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": v}})
		return err
	})
}

// Until waits until the JavaScript expression is truthy, also across a
// navigation (a form's submission) that interrupts the polling.
func Until(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			_, err := chromedp.Poll[any](expr)(ctx, t)
			if err == nil || ctx.Err() != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}
