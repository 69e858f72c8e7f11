package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/logbuf"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/goccy/go-yaml"
)

// chartLimits are what the abuse tests hold the service to, read from the
// chart's values.yaml: the service container's memory limit
// (resources.limits.memory, in Mi or Gi) and the readiness probe's
// timeout, past which the kubelet counts a probe as failed (and with the
// chart's failureThreshold of 1, takes the pod out of its Service).
type chartLimits struct {
	memory           int64
	readinessTimeout time.Duration
}

func chartValues(t *testing.T) chartLimits {
	t.Helper()
	raw, err := os.ReadFile("../../deploy/helm/berth/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Resources struct {
			Limits struct {
				Memory string `yaml:"memory"`
			} `yaml:"limits"`
		} `yaml:"resources"`
		Probes struct {
			Readiness struct {
				TimeoutSeconds int `yaml:"timeoutSeconds"`
			} `yaml:"readiness"`
		} `yaml:"probes"`
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	if values.Probes.Readiness.TimeoutSeconds <= 0 {
		t.Fatalf("values.yaml probes.readiness.timeoutSeconds = %d; want a positive number", values.Probes.Readiness.TimeoutSeconds)
	}
	limits := chartLimits{readinessTimeout: time.Duration(values.Probes.Readiness.TimeoutSeconds) * time.Second}
	q := values.Resources.Limits.Memory
	for suffix, unit := range map[string]int64{"Mi": 1 << 20, "Gi": 1 << 30} {
		if n, err := strconv.ParseInt(strings.TrimSuffix(q, suffix), 10, 64); strings.HasSuffix(q, suffix) && err == nil {
			limits.memory = n * unit
			return limits
		}
	}
	t.Fatalf("values.yaml resources.limits.memory = %q; want a quantity in Mi or Gi", q)
	return limits
}

// serverProcess is the service built and run as a process of its own, so
// its memory can be read from /proc.
type serverProcess struct {
	cmd        *exec.Cmd
	api, admin string
	stderr     *logbuf.Buffer
	exited     chan error
}

func startProcess(t *testing.T, env ...string) *serverProcess {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p := &serverProcess{stderr: &logbuf.Buffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append([]string{"BERTH_HTTP_ADDR=127.0.0.1:0", "BERTH_ADMIN_ADDR=127.0.0.1:0", "BERTH_DRAIN_DELAY=0s",
		"BERTH_DEMO_WARMUP=0s", "BERTH_DATA_DIR=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}, env...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	deadline := time.Now().Add(30 * time.Second)
	for p.api == "" {
		sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
		for sc.Scan() {
			var line struct{ Msg, API, Admin string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "Listening" {
				p.api, p.admin = line.API, line.Admin
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not listen:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling its log for the addresses
	}
	waitUntil(t, "the server to be ready", func() bool {
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// peakRSS is the process's peak resident memory (VmHWM), in bytes.
func (p *serverProcess) peakRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// probeResult is what probeReadyz saw.
type probeResult struct {
	probes, failures int
	slowest          time.Duration
}

func (r probeResult) String() string {
	return fmt.Sprintf("%d probes, %d failed, slowest %v", r.probes, r.failures, r.slowest.Round(time.Millisecond))
}

// probeReadyz asks the service's /readyz every 10ms until the returned stop
// is called: far more often than the kubelet, so a probe that is only now
// and then slow is caught. As the kubelet does, it counts a probe that
// takes longer than timeout as failed. stop waits for the probe in flight
// and closes the prober's connections, so none is open once it returns.
func (p *serverProcess) probeReadyz(timeout time.Duration) (stop func() probeResult) {
	done := make(chan struct{})
	result := make(chan probeResult)
	go func() {
		var r probeResult
		client := &http.Client{Timeout: timeout}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				client.CloseIdleConnections()
				result <- r
				return
			case <-tick.C:
			}
			begin := time.Now()
			resp, err := client.Get("http://" + p.admin + "/readyz")
			r.probes++
			if err != nil || resp.StatusCode != 200 {
				r.failures++
			}
			if err == nil {
				resp.Body.Close()
			}
			r.slowest = max(r.slowest, time.Since(begin))
		}
	}()
	return func() probeResult {
		close(done)
		return <-result
	}
}

// Slow bodies, idle connections, oversized headers, a crowd of connections
// and large PUTs, all at once: the process stays well under the chart's
// memory limit, the probes keep answering, and every acknowledged write
// reads back.
func TestAbuseOnLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the service")
	}
	chart := chartValues(t)
	p := startProcess(t)
	stop := make(chan struct{})
	var abusers sync.WaitGroup
	var conns []net.Conn
	var connsMu sync.Mutex
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", p.api, 5*time.Second)
		if err != nil {
			return nil
		}
		connsMu.Lock()
		conns = append(conns, c)
		connsMu.Unlock()
		return c
	}
	// A crowd of idle connections, some with half a request.
	for i := range 1500 {
		if c := dial(); c != nil && i%3 == 0 {
			fmt.Fprintf(c, "GET /api/v1/info HTTP/1.1\r\nHost: x\r\n")
		}
	}
	// Bodies that trickle in, a byte at a time, each announcing the largest
	// body the service accepts: what it reserves for them before they
	// arrive must not add up.
	defaults, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 300 {
		abusers.Go(func() {
			c := dial()
			if c == nil {
				return
			}
			fmt.Fprintf(c, "PUT /api/v1/items/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", defaults.BodyLimit)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		})
	}
	// Oversized headers.
	var refused431 atomic.Int32
	for range 20 {
		abusers.Go(func() {
			c := dial()
			if c == nil {
				return
			}
			fmt.Fprintf(c, "GET /api/v1/info HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", strings.Repeat("a", 256<<10))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if line, _ := bufio.NewReader(c).ReadString('\n'); strings.Contains(line, "431") {
				refused431.Add(1)
			}
		})
	}
	// The probes, meanwhile.
	stopProbing := p.probeReadyz(chart.readinessTimeout)
	// 400 PUTs of 100 KB, eight at a time.
	value := append(append([]byte(`{"v":"`), bytes.Repeat([]byte("x"), 100<<10-8)...), `"}`...)
	var acked sync.Map
	var puts sync.WaitGroup
	next := make(chan int)
	client := &http.Client{Timeout: 30 * time.Second}
	for range 8 {
		puts.Go(func() {
			for i := range next {
				req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/api/v1/items/big-%03d", p.api, i), bytes.NewReader(value))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					acked.Store(i, true)
				}
			}
		})
	}
	for i := range 400 {
		next <- i
	}
	close(next)
	puts.Wait()
	close(stop)
	probed := stopProbing()
	abusers.Wait()

	rss, limit := p.peakRSS(t), chart.memory
	t.Logf("peak RSS %d MiB (chart limit %d MiB); %v; %d oversized headers refused with 431",
		rss>>20, limit>>20, probed, refused431.Load())
	if rss > limit*3/4 {
		t.Errorf("peak RSS %d MiB, not well under the chart's %d MiB limit", rss>>20, limit>>20)
	}
	if probed.failures > 0 || probed.probes == 0 {
		t.Errorf("%d of %d probes failed or took over the chart's readiness timeout (%v) while the API was abused", probed.failures, probed.probes, chart.readinessTimeout)
	}
	if refused431.Load() != 20 {
		t.Errorf("%d of 20 oversized headers were refused with 431", refused431.Load())
	}
	connsMu.Lock()
	for _, c := range conns {
		c.Close()
	}
	connsMu.Unlock()
	n := 0
	acked.Range(func(k, _ any) bool {
		n++
		resp, err := client.Get(fmt.Sprintf("http://%s/api/v1/items/big-%03d", p.api, k))
		if err != nil {
			t.Errorf("reading back big-%03d: %v", k, err)
			return true
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, value) {
			t.Errorf("big-%03d read back as %d, %d bytes", k, resp.StatusCode, len(got))
		}
		return true
	})
	if n != 400 {
		t.Errorf("%d of 400 large PUTs acknowledged", n)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.exited; err != nil {
		t.Errorf("the server's exit after the abuse: %v\n%s", err, p.stderr.String())
	}
	p.exited <- nil // for the cleanup
}

// openFiles is the number of file descriptors the process holds: its
// sockets, listeners and database files.
func (p *serverProcess) openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// Ten thousand clients connect to the API at once and hold their
// connections open: the service holds no more of them than its cap (the
// rest wait in the kernel, or time out dialling), its memory stays well
// under the chart's limit, the probes on the admin port answer throughout,
// and when the crowd leaves the API serves again.
func TestTenThousandConnections(t *testing.T) {
	const crowd = 10_000
	if testing.Short() {
		t.Skip("builds and runs the service")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads the service's descriptors and memory from /proc")
	}
	// Go raises the soft limit on open files to the hard one at start; the
	// test needs room for the crowd's sockets besides its own.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < crowd+500 {
		msg := fmt.Sprintf("this process may open %d files; the test needs %d (raise the hard limit: ulimit -Hn)", lim.Cur, crowd+500)
		if os.Getenv("BERTHTEST_REQUIRE_CROWD") != "" {
			t.Fatal("BERTHTEST_REQUIRE_CROWD is set, but " + msg)
		}
		t.Skip(msg)
	}
	chart := chartValues(t)
	p := startProcess(t)
	idle := p.openFiles(t)
	var (
		mu        sync.Mutex
		conns     []net.Conn
		dialers   sync.WaitGroup
		attempts  = make(chan struct{})
		connected atomic.Int32
		timedOut  atomic.Int32
		otherErr  atomic.Value // the first dial error that is not a timeout
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	for range 500 {
		dialers.Go(func() {
			for range attempts {
				c, err := net.DialTimeout("tcp", p.api, 2*time.Second)
				var ne net.Error
				switch {
				case errors.As(err, &ne) && ne.Timeout():
					timedOut.Add(1) // the kernel's queue is full: the dial waited, then gave up
					continue
				case err != nil:
					otherErr.CompareAndSwap(nil, err)
					continue
				}
				connected.Add(1)
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	// The probes, while the crowd arrives and stays.
	stopProbing := p.probeReadyz(chart.readinessTimeout)
	for range crowd {
		attempts <- struct{}{}
	}
	close(attempts)
	dialers.Wait()
	probed := stopProbing() // no probe connection is open while the descriptors are counted
	held := p.openFiles(t) - idle
	if err, _ := otherErr.Load().(error); err != nil {
		t.Fatalf("a dial failed other than by timing out (the test's own limits?): %v", err)
	}

	rss, limit := p.peakRSS(t), chart.memory
	t.Logf("%d of %d dials connected, %d timed out; the service holds %d more descriptors than idle (cap %d); peak RSS %d MiB (chart limit %d MiB); %v",
		connected.Load(), crowd, timedOut.Load(), held, serve.DefaultLimits.MaxConnections, rss>>20, limit>>20, probed)
	// A few descriptors of slack: the service's own (a database file, a
	// log) may come and go while it serves; without the cap it holds
	// thousands more.
	if held > serve.DefaultLimits.MaxConnections+8 {
		t.Errorf("the service holds %d more descriptors than idle, over its cap of %d connections", held, serve.DefaultLimits.MaxConnections)
	}
	if held < serve.DefaultLimits.MaxConnections/2 {
		t.Errorf("the service holds only %d connections: the crowd did not reach it", held)
	}
	if rss > limit*3/4 {
		t.Errorf("peak RSS %d MiB, not well under the chart's %d MiB limit", rss>>20, limit>>20)
	}
	if probed.failures > 0 || probed.probes == 0 {
		t.Errorf("%d of %d probes failed or took over the chart's readiness timeout (%v) while the crowd held the API", probed.failures, probed.probes, chart.readinessTimeout)
	}

	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	mu.Unlock()
	waitUntil(t, "the API to serve after the crowd left", func() bool {
		resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + p.api + "/api/v1/info")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
