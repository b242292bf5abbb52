package broker_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/internal/testutil"
)

// Interop with Mosquitto's own clients: two mosquitto_sub -V 5 members of
// one shared subscription and a 3.1.1 mosquitto_sub on the plain filter;
// mosquitto_pub (3.1.1 and 5.0 in turn) publishes 4 messages: round-robin
// gives each member one of the first two (each exits after one, -C 1), and
// the plain subscriber gets all 4.
func TestMosquittoClientsSharedAndV5(t *testing.T) {
	subTool := testutil.NeedTool(t, "mosquitto_sub")
	pubTool := testutil.NeedTool(t, "mosquitto_pub")
	s, addr := startBroker(t, broker.Config{})
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type sub struct {
		cmd *exec.Cmd
		out strings.Builder
	}
	start := func(args ...string) *sub {
		sb := &sub{}
		sb.cmd = exec.CommandContext(ctx, subTool, append([]string{"-h", host, "-p", port, "-q", "1", "-W", "10"}, args...)...)
		sb.cmd.Stdout = &sb.out
		if err := sb.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return sb
	}
	m1 := start("-V", "5", "-i", "m1", "-t", "$share/g/mq/#", "-C", "1")
	m2 := start("-V", "5", "-i", "m2", "-t", "$share/g/mq/#", "-C", "1")
	plain := start("-V", "311", "-i", "plain", "-t", "mq/#", "-C", "4")
	waitFor(t, 5*time.Second, func() error {
		if n := s.Stats().Subscriptions; n != 3 {
			return fmt.Errorf("%d subscriptions, want 3", n)
		}
		return nil
	})
	for i, v := range []string{"311", "5", "311", "5"} {
		out, err := exec.CommandContext(ctx, pubTool, "-h", host, "-p", port, "-V", v, "-q", "1",
			"-t", fmt.Sprint("mq/", i), "-m", fmt.Sprint("m", i)).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub -V %s: %v: %s", v, err, out)
		}
	}
	for name, sb := range map[string]*sub{"m1": m1, "m2": m2, "plain": plain} {
		if err := sb.cmd.Wait(); err != nil {
			t.Fatalf("mosquitto_sub %s: %v (got %q)", name, err, sb.out.String())
		}
	}
	got := strings.Fields(m1.out.String() + " " + m2.out.String())
	if len(got) != 2 {
		t.Fatalf("shared members got %q, want one message each (-C 1)", got)
	}
	if p := strings.Fields(plain.out.String()); len(p) != 4 {
		t.Fatalf("plain subscriber got %q, want 4 messages", p)
	}
}
