package deadline

import (
	"crypto/tls"
	"io"
	"net"
	"net/http/httptest"
	"testing"
	"time"
)

// A *tls.Conn beneath turns a write timeout into a permanent error: after
// the early armed deadline (20ms) fires, every write beneath fails at once
// with a deadline exceeded, and Write re-arms and retries in a busy loop
// until the deadline asked for (500ms; without end if none is asked for).
// The peer starts reading at 100ms, within the deadline asked for, so
// without the wrapper the Write succeeds.
func TestWriteOverAStickyDeadlineErrorDoesNotSpin(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	cfg := ts.TLS.Clone()
	ts.Close()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv, cli := tls.Server(a, cfg), tls.Client(b, &tls.Config{InsecureSkipVerify: true})
	hs := make(chan error, 1)
	go func() { hs <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-hs; err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Conn: srv}
	c := Wrap(rec, time.Hour, time.Hour)
	if err := c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond)); err != nil { // later: noted
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, err := io.ReadFull(cli, make([]byte, 256<<10))
		read <- err
	}()
	_, err := c.Write(make([]byte, 256<<10))
	sets := rec.all.Load()
	t.Logf("Write: %v (the peer read from 100ms; the deadline asked for was 500ms)", err)
	if sets > 10 {
		t.Errorf("Write set %d deadlines beneath, a busy loop; want a few", sets)
	}
	a.Close()
	b.Close()
	<-read
}
