package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edged/edged/internal/testutil"
)

// mosqSub is a running mosquitto_sub whose output lines arrive on a
// channel.
type mosqSub struct {
	cmd   *exec.Cmd
	lines chan string
}

// startSub starts mosquitto_sub in debug mode and waits for its SUBACK, so
// that what is published afterwards reaches it.
func startSub(t *testing.T, port string, args ...string) *mosqSub {
	t.Helper()
	bin := testutil.NeedTool(t, "mosquitto_sub")
	ctx, cancel := context.WithCancel(context.Background())
	// mosquitto_sub's debug lines are block-buffered on a pipe; stdbuf
	// (coreutils) makes them line-buffered so the SUBACK line arrives.
	args = append([]string{"-oL", bin, "-h", "127.0.0.1", "-p", port, "-d"}, args...)
	cmd := exec.CommandContext(ctx, "stdbuf", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &mosqSub{cmd: cmd, lines: make(chan string, 100)}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	subacked := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		acked := false
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "received SUBACK") && !acked {
				acked = true
				close(subacked)
				continue
			}
			if !strings.HasPrefix(line, "Client ") && !strings.HasPrefix(line, "Subscribed") {
				s.lines <- line
			}
		}
		io.Copy(io.Discard, out)
		close(s.lines)
	}()
	select {
	case <-subacked:
	case <-time.After(10 * time.Second):
		t.Fatal("mosquitto_sub got no SUBACK")
	}
	return s
}

// expectLines reads n message lines and compares them as a set (QoS 0, 1 and
// 2 flows of different publishers may interleave).
func (s *mosqSub) expectLines(t *testing.T, want ...string) {
	t.Helper()
	got := map[string]int{}
	for range want {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("mosquitto_sub exited; got %v, want %q", got, want)
			}
			got[l]++
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out; got %v, want %q", got, want)
		}
	}
	for _, w := range want {
		if got[w] == 0 {
			t.Fatalf("missing %q; got %v", w, got)
		}
		got[w]--
	}
}

func mosqPub(t *testing.T, port string, args ...string) {
	t.Helper()
	bin := testutil.NeedTool(t, "mosquitto_pub")
	out, err := exec.Command(bin, append([]string{"-h", "127.0.0.1", "-p", port}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub %v: %v\n%s", args, err, out)
	}
}

// TestMosquittoClients runs Debian's mosquitto_pub and mosquitto_sub, an
// independent MQTT implementation, against the real edged binary.
func TestMosquittoClients(t *testing.T) {
	testutil.NeedTool(t, "mosquitto_sub")
	dir := t.TempDir()
	p := startEdged(t, dir, "data_dir: "+dir+"/data\nlisteners:\n  - {name: local, address: 127.0.0.1:0}\n")
	port := p.port()

	t.Run("qos", func(t *testing.T) {
		sub := startSub(t, port, "-t", "interop/#", "-q", "2", "-v", "-F", "%t %q %p")
		mosqPub(t, port, "-t", "interop/q0", "-q", "0", "-m", "zero")
		mosqPub(t, port, "-t", "interop/q1", "-q", "1", "-m", "one")
		mosqPub(t, port, "-t", "interop/q2", "-q", "2", "-m", "two")
		sub.expectLines(t, "interop/q0 0 zero", "interop/q1 1 one", "interop/q2 2 two")
	})

	t.Run("downgrade", func(t *testing.T) {
		sub := startSub(t, port, "-t", "down/#", "-q", "1", "-F", "%t %q %p")
		mosqPub(t, port, "-t", "down/x", "-q", "2", "-m", "capped")
		sub.expectLines(t, "down/x 1 capped")
	})

	t.Run("retained", func(t *testing.T) {
		mosqPub(t, port, "-t", "keep/a", "-q", "1", "-r", "-m", "first")
		mosqPub(t, port, "-t", "keep/a", "-q", "1", "-r", "-m", "second")
		mosqPub(t, port, "-t", "keep/b", "-q", "0", "-r", "-m", "bee")
		sub := startSub(t, port, "-t", "keep/#", "-q", "1", "-F", "%r %t %p")
		sub.expectLines(t, "1 keep/a second", "1 keep/b bee")
		// A live message carries retain 0 [MQTT-3.3.1-9].
		mosqPub(t, port, "-t", "keep/a", "-q", "1", "-r", "-m", "third")
		sub.expectLines(t, "0 keep/a third")
		// An empty retained payload deletes it.
		mosqPub(t, port, "-t", "keep/b", "-r", "-n")
		sub.expectLines(t, "0 keep/b ")
		sub2 := startSub(t, port, "-t", "keep/#", "-F", "%r %t %p")
		sub2.expectLines(t, "1 keep/a third")
		select {
		case l := <-sub2.lines:
			t.Fatalf("deleted retained message delivered: %q", l)
		case <-time.After(200 * time.Millisecond):
		}
	})

	t.Run("will", func(t *testing.T) {
		watcher := startSub(t, port, "-t", "wills/#", "-q", "1", "-F", "%t %q %p")
		// A client with a will that dies without DISCONNECT.
		victim := startSub(t, port, "-t", "nothing", "-i", "victim",
			"--will-topic", "wills/victim", "--will-payload", "gone", "--will-qos", "1")
		victim.cmd.Process.Signal(syscall.SIGKILL)
		watcher.expectLines(t, "wills/victim 1 gone")
		// One that disconnects cleanly: no will [MQTT-3.14.4-3].
		polite := startSub(t, port, "-t", "nothing", "-i", "polite",
			"--will-topic", "wills/polite", "--will-payload", "gone")
		polite.cmd.Process.Signal(syscall.SIGINT)
		select {
		case l := <-watcher.lines:
			t.Fatalf("will published after DISCONNECT: %q", l)
		case <-time.After(300 * time.Millisecond):
		}
	})

	p.stop(t)
}

// pahoPython returns Debian's Python 3 with python3-paho-mqtt (1.6, MQTT
// 5.0 capable), the second independent 5.0 client of the interop tests.
// /usr/bin/python3 is Debian's: a python3 earlier in PATH may lack the
// package.
func pahoPython(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import paho.mqtt.client").CombinedOutput(); err != nil {
		testutil.Unavailable(t, "python3-paho-mqtt is not installed (apt-get install python3-paho-mqtt): %v %s", err, out)
	}
	return py
}

// pahoPeer is a running testdata/paho5.py whose output lines arrive on a
// channel; it has printed "ready" (subscribed) when startPaho returns.
type pahoPeer struct {
	cmd   *exec.Cmd
	lines chan string
	exit  chan error
}

func startPaho(t *testing.T, port string, args ...string) *pahoPeer {
	t.Helper()
	py := pahoPython(t)
	cmd := exec.Command(py, append([]string{"testdata/paho5.py", port}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pahoPeer{cmd: cmd, lines: make(chan string, 100), exit: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(ready)
				continue
			}
			p.lines <- sc.Text()
		}
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, stderr.String())
		}
		p.exit <- err
		close(p.lines)
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	if args[0] == "pub" {
		return p
	}
	select {
	case <-ready:
	case err := <-p.exit:
		t.Fatalf("paho5.py %v exited: %v", args, err)
	case <-time.After(15 * time.Second):
		t.Fatalf("paho5.py %v not subscribed", args)
	}
	return p
}

// wait waits for the peer to exit successfully.
func (p *pahoPeer) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.exit:
		if err != nil {
			t.Fatalf("paho5.py: %v", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("paho5.py did not finish")
	}
}

// pahoMsg is a message as paho5.py prints it.
type pahoMsg struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
	QoS     int    `json:"qos"`
	Retain  bool   `json:"retain"`
	Props   struct {
		ContentType            string     `json:"ContentType"`
		ResponseTopic          string     `json:"ResponseTopic"`
		MessageExpiryInterval  *int       `json:"MessageExpiryInterval"`
		PayloadFormatIndicator *int       `json:"PayloadFormatIndicator"`
		SubscriptionIdentifier []int      `json:"SubscriptionIdentifier"`
		CorrelationData        string     `json:"CorrelationData"`
		UserProperty           [][]string `json:"UserProperty"`
	} `json:"props"`
}

func (p *pahoPeer) next(t *testing.T) pahoMsg {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatal("paho5.py exited")
		}
		var m pahoMsg
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("paho5.py printed %q: %v", l, err)
		}
		return m
	case <-time.After(15 * time.Second):
		t.Fatal("paho5.py received nothing")
	}
	return pahoMsg{}
}

// TestMQTT5Clients runs two independent MQTT 5.0 clients, Debian's
// mosquitto_pub/mosquitto_sub/mosquitto_rr with -V 5 and Python's paho (as
// Debian ships it), with 3.1.1 and 3.1 clients in the same run, against the
// real edged binary: 5.0 properties (user properties in order, content
// type, payload format, response topic, correlation data, the remaining
// message expiry, subscription identifiers) cross from one 5.0
// implementation to the other; 3.1.1 and 3.1 subscribers get the plain
// messages; a 5.0 subscriber of a 3.1 publisher gets no properties;
// request/response works between mosquitto_rr and paho; topic aliases
// from mosquitto_pub resolve.
func TestMQTT5Clients(t *testing.T) {
	testutil.NeedTool(t, "mosquitto_sub")
	pahoPython(t)
	dir := t.TempDir()
	p := startEdged(t, dir, "data_dir: "+dir+"/data\nlisteners:\n  - {name: local, address: 127.0.0.1:0}\n")
	port := p.port()

	t.Run("mosquitto to paho", func(t *testing.T) {
		py := startPaho(t, port, "sub", "m2p/#", "17", "2")
		sub311 := startSub(t, port, "-V", "311", "-t", "m2p/#", "-q", "1", "-F", "%t %p")
		sub31 := startSub(t, port, "-V", "31", "-t", "m2p/#", "-q", "1", "-F", "%t %p")
		mosqPub(t, port, "-V", "5", "-t", "m2p/props", "-q", "1", "-m", "hello",
			"-D", "publish", "user-property", "k", "v1",
			"-D", "publish", "user-property", "a", "z",
			"-D", "publish", "user-property", "k", "v2",
			"-D", "publish", "message-expiry-interval", "10",
			"-D", "publish", "content-type", "text/plain",
			"-D", "publish", "payload-format-indicator", "1",
			"-D", "publish", "response-topic", "m2p/reply",
			"-D", "publish", "correlation-data", "c0rr")
		mosqPub(t, port, "-V", "31", "-t", "m2p/plain", "-q", "1", "-m", "from 3.1")
		m := py.next(t)
		if m.Topic != "m2p/props" || m.Payload != "hello" || m.QoS != 1 {
			t.Fatalf("paho got %+v", m)
		}
		pr := m.Props
		if want := [][]string{{"k", "v1"}, {"a", "z"}, {"k", "v2"}}; !reflect.DeepEqual(pr.UserProperty, want) {
			t.Fatalf("user properties %v, want %v in order", pr.UserProperty, want)
		}
		if pr.ContentType != "text/plain" || pr.ResponseTopic != "m2p/reply" || pr.CorrelationData != hex.EncodeToString([]byte("c0rr")) ||
			pr.PayloadFormatIndicator == nil || *pr.PayloadFormatIndicator != 1 ||
			pr.MessageExpiryInterval == nil || *pr.MessageExpiryInterval > 10 || *pr.MessageExpiryInterval < 8 ||
			!reflect.DeepEqual(pr.SubscriptionIdentifier, []int{17}) {
			t.Fatalf("paho got properties %+v", pr)
		}
		m = py.next(t)
		if m.Topic != "m2p/plain" || m.Payload != "from 3.1" || m.Props.ContentType != "" || m.Props.UserProperty != nil ||
			m.Props.MessageExpiryInterval != nil || !reflect.DeepEqual(m.Props.SubscriptionIdentifier, []int{17}) {
			t.Fatalf("paho got %+v from a 3.1 publisher, want only its subscription identifier", m)
		}
		py.wait(t)
		sub311.expectLines(t, "m2p/props hello", "m2p/plain from 3.1")
		sub31.expectLines(t, "m2p/props hello", "m2p/plain from 3.1")
	})

	t.Run("paho to mosquitto", func(t *testing.T) {
		sub5 := startSub(t, port, "-V", "5", "-t", "p2m/#", "-q", "1", "-F", "%j")
		sub311 := startSub(t, port, "-V", "311", "-t", "p2m/#", "-q", "1", "-F", "%j")
		startPaho(t, port, "pub", "p2m/x", "from paho").wait(t)
		select {
		case l := <-sub5.lines:
			for _, want := range []string{`"topic":"p2m/x"`, `"payload":"from paho"`,
				`"user-properties":{"from":"paho","seq":"1"}`, `"response-topic":"paho/reply"`,
				`"content-type":"text/plain"`, `"message-expiry-interval":1`} {
				if !strings.Contains(l, want) {
					t.Fatalf("mosquitto_sub -V 5 printed %s, want %s in it", l, want)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatal("mosquitto_sub -V 5 got nothing")
		}
		select {
		case l := <-sub311.lines:
			if !strings.Contains(l, `"payload":"from paho"`) || strings.Contains(l, "properties") {
				t.Fatalf("mosquitto_sub -V 311 printed %s, want the message without properties", l)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("mosquitto_sub -V 311 got nothing")
		}
	})

	t.Run("request response", func(t *testing.T) {
		responder := startPaho(t, port, "respond", "rr/request")
		rr := testutil.NeedTool(t, "mosquitto_rr")
		out, err := exec.Command(rr, "-V", "5", "-h", "127.0.0.1", "-p", port, "-t", "rr/request",
			"-e", "rr/response", "-m", "question", "-q", "1", "-W", "10",
			"-D", "publish", "correlation-data", "req-1", "-F", "%j").CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_rr: %v\n%s", err, out)
		}
		got := string(out)
		for _, want := range []string{`"payload":"answer to question"`, `"correlation-data":"req-1"`, `"topic":"rr/response"`} {
			if !strings.Contains(got, want) {
				t.Fatalf("mosquitto_rr got %s, want %s in it", got, want)
			}
		}
		responder.wait(t)
	})

	t.Run("topic alias", func(t *testing.T) {
		// mosquitto_pub -l sends the first line with topic and alias, the
		// next ones with the alias alone.
		sub := startSub(t, port, "-V", "5", "-t", "alias/#", "-q", "1", "-F", "%t %p")
		bin := testutil.NeedTool(t, "mosquitto_pub")
		cmd := exec.Command(bin, "-V", "5", "-h", "127.0.0.1", "-p", port, "-l", "-q", "1",
			"-t", "alias/some/long/topic", "-D", "publish", "topic-alias", "3")
		cmd.Stdin = strings.NewReader("one\ntwo\nthree\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v\n%s", err, out)
		}
		sub.expectLines(t, "alias/some/long/topic one", "alias/some/long/topic two", "alias/some/long/topic three")
	})

	t.Run("retained expiry", func(t *testing.T) {
		mosqPub(t, port, "-V", "5", "-t", "rx/short", "-r", "-q", "1", "-m", "soon gone",
			"-D", "publish", "message-expiry-interval", "1")
		mosqPub(t, port, "-V", "5", "-t", "rx/long", "-r", "-q", "1", "-m", "stays",
			"-D", "publish", "message-expiry-interval", "100")
		time.Sleep(1100 * time.Millisecond)
		sub := startSub(t, port, "-V", "5", "-t", "rx/#", "-q", "1", "-F", "%t %p %E")
		select {
		case l := <-sub.lines:
			if !strings.HasPrefix(l, "rx/long stays ") {
				t.Fatalf("got %q, want rx/long (rx/short expired)", l)
			}
			if e := strings.TrimPrefix(l, "rx/long stays "); e != "100" && e != "99" && e != "98" {
				t.Fatalf("remaining expiry %q, want about 99", e)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("nothing retained")
		}
		select {
		case l := <-sub.lines:
			t.Fatalf("expired retained message delivered: %q", l)
		case <-time.After(300 * time.Millisecond):
		}
	})

	p.stop(t)
}
