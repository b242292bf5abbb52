package status

import (
	"flag"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/browsertest"
)

var screenshot = flag.Bool("screenshot", false, "rewrite doc/status.png, the README's screenshot of the overview")

// The pages in a real browser, against an in-process broker with traffic:
// the overview draws its charts from the history, and the topic browser
// shows live messages for the filter typed into it. With -screenshot the
// overview is saved as doc/status.png.
func TestBrowserOverviewAndTopics(t *testing.T) {
	e := startEnv(t, Config{Users: []string{"alice"}})
	ctx := browsertest.New(t, 30*time.Second)
	for i := range 4 {
		mqttClient(t, e.mqtt, fmt.Sprintf("sensor-%d", i))
	}
	// A dashboard subscribed to one sensor, and an offline persistent
	// session whose QoS 1 queue the store writes.
	dash := mqttClient(t, e.mqtt, "dashboard")
	dash.Write(packet.Encode(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "sensors/0/#"}}}, packet.V311))
	away := mqttClientSession(t, e.mqtt, "logger", false)
	away.Write(packet.Encode(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "sensors/1/#", QoS: 1}}}, packet.V311))
	time.Sleep(100 * time.Millisecond)
	away.Close()
	pub := mqttClient(t, e.mqtt, "gateway")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			n := 5 + int(5*math.Sin(float64(i)/6))
			for j := range n {
				pub.Write(packet.Encode(&packet.Publish{Topic: fmt.Sprintf("sensors/%d/temp", j%4), Payload: []byte("21.5"),
					QoS: 1, PacketID: uint16(i*16 + j + 1)}, packet.V311))
			}
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-done }()
	time.Sleep(1500 * time.Millisecond) // history samples every 100ms

	var points, connected string
	err := chromedp.Do(ctx,
		browsertest.BasicAuth("alice", "alice-pw"),
		chromedp.Navigate(e.url+"/"),
		chromedp.WaitVisible(chromedp.ID("clients-connected")),
		browsertest.Until(`document.querySelector('[data-chart="messages_received"]').dataset.points > 5`),
	)
	if err != nil {
		t.Fatal(err)
	}
	if connected, err = chromedp.Run(ctx, chromedp.Text(chromedp.ID("clients-connected"))); err != nil || connected != "6" {
		t.Errorf("clients connected on the page: %q %v, want 6", connected, err)
	}
	points, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-chart="messages_received"]').dataset.points`))
	t.Logf("chart points: %s", points)
	if *screenshot {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("doc/status.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The topic browser: type a filter, watch live messages arrive.
	err = chromedp.Do(ctx,
		chromedp.Navigate(e.url+"/topics"),
		chromedp.WaitVisible(chromedp.ID("filter")),
		chromedp.SendKeys(chromedp.ID("filter"), "sensors/2/#"),
		chromedp.Click(chromedp.ID("watch")),
		browsertest.Until(`document.querySelectorAll('#messages tbody tr').length >= 3`),
	)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#messages tbody tr td:nth-child(2)')].map(td => td.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r != "sensors/2/temp" {
			t.Fatalf("topic browser for sensors/2/# shows %q", r)
		}
	}
	// A filter alice's ACL does not grant: the page says so.
	err = chromedp.Do(ctx,
		chromedp.Navigate(e.url+"/topics?filter=secret/%23"),
		browsertest.Until(`document.getElementById('watch-state').textContent.includes('refused')`),
	)
	if err != nil {
		t.Fatalf("denied filter: %v", err)
	}
}
