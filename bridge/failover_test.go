package bridge_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/internal/testutil"
)

// TestFailover runs a bridge with two real mosquitto upstreams (failover:
// priority): the primary is stopped mid-stream of 10,000 QoS 1 messages
// and started again. Every message arrives (the union of both upstreams),
// in order per topic on each upstream, the bridge moves to the second
// address and back to the first, and the switch times are logged.
func TestFailover(t *testing.T) {
	// The primary keeps its subscriber's session across its restart, so
	// what it acknowledged before it went away still reaches the test's
	// subscriber; it is stopped with SIGTERM so that its own delivery to
	// that subscriber is not what is tested.
	a := testutil.StartMosquitto(t, testutil.MosquittoOptions{Persistence: true, SaveOnStop: true})
	b := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	subA := subscribe(t, a.Addr, "cloud-sub-a", false, "site1/s/#", 1)
	subB := subscribe(t, b.Addr, "cloud-sub-b", false, "site1/s/#", 1)
	cfg := bcfg("cloud", "", bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"})
	cfg.Address = ""
	cfg.Addresses = []string{"tcp://" + a.Addr, "tcp://" + b.Addr}
	cfg.PrimaryRetry = 200 * time.Millisecond
	l := startLocal(t, t.TempDir(), cfg)
	br := l.bridges[0]

	// Log every change of the address in use.
	start := time.Now()
	var (
		mu       sync.Mutex
		switches []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		last := "?"
		for {
			if cur := br.Address(); cur != last {
				mu.Lock()
				switches = append(switches, cur)
				mu.Unlock()
				t.Logf("%8.3fs address in use: %q", time.Since(start).Seconds(), cur)
				last = cur
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})

	const n, topics = 10_000, 8
	var pubs sync.WaitGroup
	publishBatch := func(from, to int) {
		pubs.Add(to - from)
		for i := from; i < to; i++ {
			l.srv.Publish(fmt.Sprintf("s/%d", i%topics), []byte(strconv.Itoa(i)), 1, false, func(err error) {
				if err != nil {
					t.Errorf("publishing %d: %v", i, err)
				}
				pubs.Done()
			})
		}
		pubs.Wait()
	}
	const batch = 500
	for i := 0; i < n; i += batch {
		switch i {
		case 3 * batch:
			a.Stop(t)
			t.Logf("%8.3fs primary stopped", time.Since(start).Seconds())
		case 12 * batch:
			a.Restart(t)
			t.Logf("%8.3fs primary restarted", time.Since(start).Seconds())
		}
		publishBatch(i, i+batch)
		time.Sleep(50 * time.Millisecond)
	}
	testutil.WaitFor(t, 60*time.Second, func() error {
		seen := map[string]bool{}
		for _, s := range []*sub{subA, subB} {
			for _, m := range s.snapshot() {
				seen[m.payload] = true
			}
		}
		if len(seen) < n {
			return fmt.Errorf("%d of %d messages arrived upstream", len(seen), n)
		}
		return nil
	})
	t.Logf("%8.3fs all %d messages arrived", time.Since(start).Seconds(), n)
	for name, s := range map[string]*sub{"primary": subA, "secondary": subB} {
		msgs := s.snapshot()
		dups, err := checkOrder(msgs)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		t.Logf("%s received %d messages (%d duplicates)", name, len(msgs), dups)
		if len(msgs) == 0 {
			t.Errorf("%s received nothing", name)
		}
	}
	mu.Lock()
	got := strings.Join(switches, " ")
	mu.Unlock()
	// The address in use went from the primary to the secondary and back.
	ia := strings.Index(got, "tcp://"+a.Addr)
	ib := strings.Index(got, "tcp://"+b.Addr)
	if ia < 0 || ib < ia || !strings.Contains(got[ib:], "tcp://"+a.Addr) {
		t.Errorf("address in use over time: %s; want primary, secondary, primary", got)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if st := l.stats("cloud"); st.Len != 0 {
			return fmt.Errorf("queue holds %d", st.Len)
		}
		return nil
	})
}

// With the first address dead (connections refused) the bridge works from
// the second, under both policies, and priority's checks of the first do
// not take it away from the second.
func TestFailoverFirstDead(t *testing.T) {
	for _, policy := range []string{bridge.FailoverPriority, bridge.FailoverRoundRobin} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			dead := testutil.StartProxy(t, "127.0.0.1:1")
			dead.SetDown(true)
			up := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
			s := subscribe(t, up.Addr, "cloud-sub", true, "site1/#", 1)
			cfg := bcfg("cloud", "", bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"})
			cfg.Address = ""
			cfg.Addresses = []string{"tcp://" + dead.Addr(), "tcp://" + up.Addr}
			cfg.Failover = policy
			cfg.PrimaryRetry = 50 * time.Millisecond
			l := startLocal(t, t.TempDir(), cfg)
			for i := range 200 {
				l.publish(t, "s/x", []byte(strconv.Itoa(i)), 1, false)
			}
			s.waitDistinct(t, 200+1, 10*time.Second) // and the state message
			if _, err := checkOrder(s.snapshot()); err != nil {
				t.Error(err)
			}
			if got := l.bridges[0].Address(); got != "tcp://"+up.Addr {
				t.Errorf("address in use %q, want the second", got)
			}
		})
	}
}
