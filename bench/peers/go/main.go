// Command hive-peer-go is the Go peer of the hive benchmark suite.
//
// The same workloads as hive-bench, written the way a Go programmer would
// write them (goroutines, channels, sync.WaitGroup, time.AfterFunc), with
// the same parameters and the same JSON line per run on stdout.
//
// Build (no dependencies, works offline):
//
//	cd bench/peers/go && GOFLAGS=-mod=mod GOCACHE=/tmp/hive-go-cache \
//	    go build -o ../../../build/peers/go/hive-peer-go .
//
// Run:
//
//	build/peers/go/hive-peer-go [--only NAME[,NAME...]] [--repeat N] [--quick] [--list]
//
// --only takes a comma-separated list of workloads. --json is accepted and ignored (the output is always JSON). GOMAXPROCS
// is left at its default.
//
// Every run verifies its result; a failed verification prints "ok":false
// with an "error" field, and its rate is not meaningful.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/big"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	ringSize         = 503
	senders          = 4
	stormCallTimeout = 5 * time.Millisecond
	stormReplyDelay  = 20 * time.Millisecond
	waitLimit        = 120 * time.Second
)

type workload struct {
	name  string
	full  int
	quick int
	run   func(n int) *result
}

var workloads = []workload{
	{"ping_pong", 1000000, 10000, pingPong},
	{"thread_ring", 10000000, 100000, threadRing},
	{"spawn", 1000000, 10000, spawnWaiters},
	{"spawn_idle_servers", 1000000, 10000, spawnIdleServers},
	{"fork_join", 1000000, 10000, forkJoin},
	{"send_throughput", 1000000, 10000, sendThroughput}, // per sender
	{"gen_server_call", 1000000, 10000, genServerCall},
	{"gen_server_call_2c", 500000, 5000, genServerCall2c}, // per client
	{"call_timeout_storm", 10000, 1000, callTimeoutStorm},
	{"supervisor_restart", 100000, 1000, supervisorRestart},
	{"task_async_await", 1000000, 10000, taskAsyncAwait},
	{"async_stream", 1000000, 10000, asyncStream},
	{"factorial_chunks", 100, 5, factorialChunks},
}

// result is one run. extra holds the optional fields, already encoded,
// in output order.
type result struct {
	n       int
	elapsed time.Duration
	unit    string
	ok      bool
	err     string
	extra   []field
}

type field struct {
	key string
	val string
}

func (r *result) add(key, val string) { r.extra = append(r.extra, field{key, val}) }

func (r *result) fail(format string, args ...interface{}) *result {
	if r.ok {
		r.ok = false
		r.err = fmt.Sprintf(format, args...)
	}
	return r
}

func newResult(n int, elapsed time.Duration, unit string) *result {
	return &result{n: n, elapsed: elapsed, unit: unit, ok: true}
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "hive-peer-go: %s\nusage: hive-peer-go [--only NAME[,NAME...]] [--repeat N] [--quick] [--list]\n", msg)
	os.Exit(2)
}

func main() {
	only, repeat, quick, list := "", 1, false, false
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--only":
			if i+1 >= len(args) {
				usage("--only needs a workload name")
			}
			i++
			only = args[i]
		case "--repeat":
			if i+1 >= len(args) {
				usage("--repeat needs a number")
			}
			i++
			r, err := strconv.Atoi(args[i])
			if err != nil || r < 1 {
				usage("bad --repeat value: " + args[i])
			}
			repeat = r
		case "--quick":
			quick = true
		case "--list":
			list = true
		case "--json":
		default:
			usage("unknown argument: " + args[i])
		}
	}
	if list {
		for _, w := range workloads {
			fmt.Println(w.name)
		}
		return
	}
	selected := workloads
	if only != "" {
		want := map[string]bool{}
		for _, name := range strings.Split(only, ",") {
			known := false
			for _, w := range workloads {
				known = known || w.name == name
			}
			if !known {
				usage("unknown workload: " + name)
			}
			want[name] = true
		}
		selected = nil
		for _, w := range workloads {
			if want[w.name] {
				selected = append(selected, w)
			}
		}
	}
	out := bufio.NewWriter(os.Stdout)
	for _, w := range selected {
		n := w.full
		if quick {
			n = w.quick
		}
		for r := 0; r < repeat; r++ {
			// Start every run from a collected heap with freed memory
			// handed back, so the RSS deltas belong to this run.
			runtime.GC()
			debug.FreeOSMemory()
			res := w.run(n)
			emit(out, w.name, res)
			out.Flush()
		}
	}
}

func emit(out *bufio.Writer, name string, r *result) {
	secs := r.elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(r.n) / secs
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"runtime":"go","bench":%s,"n":%d,"seconds":%s,"rate_per_s":%s,"unit":%s,"ok":%t,"schedulers":%d`,
		strconv.Quote(name), r.n, ffmt(secs, 6), ffmt(rate, 1), strconv.Quote(r.unit), r.ok, runtime.GOMAXPROCS(0))
	for _, f := range r.extra {
		fmt.Fprintf(&b, `,"%s":%s`, f.key, f.val)
	}
	if !r.ok {
		fmt.Fprintf(&b, `,"error":%s`, jsonString(r.err))
	}
	b.WriteString("}\n")
	out.Write(b.Bytes())
}

// ffmt prints a float rounded to d decimals without a trailing zero tail
// and never in exponent form.
func ffmt(x float64, d int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "0"
	}
	s := strconv.FormatFloat(x, 'f', d, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(s, "0")
		if strings.HasSuffix(s, ".") {
			s += "0"
		}
	}
	return s
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

func perProc(delta int64, n int) string {
	return strconv.FormatInt(int64(math.Round(float64(delta)/float64(n))), 10)
}

func percentiles(r *result, lats []time.Duration) {
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	p := func(q float64) string {
		i := int(math.Ceil(q*float64(len(lats)))) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(lats) {
			i = len(lats) - 1
		}
		return ffmt(float64(lats[i].Nanoseconds())/1000, 3)
	}
	r.add("p50_us", p(0.50))
	r.add("p99_us", p(0.99))
	r.add("p999_us", p(0.999))
}

// waitOrTimeout reports whether wg finished within waitLimit.
func waitOrTimeout(wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(waitLimit):
		return false
	}
}

// 1. Two goroutines bounce a message n times.
func pingPong(n int) *result {
	ping, pong := make(chan int), make(chan int)
	seen := make(chan int)
	go func() {
		c := 0
		for v := range ping {
			c++
			pong <- v
		}
		seen <- c
	}()
	bad := 0
	t0 := time.Now()
	for i := 0; i < n; i++ {
		ping <- i
		if <-pong != i {
			bad++
		}
	}
	el := time.Since(t0)
	close(ping)
	c := <-seen
	r := newResult(n, el, "round_trips")
	if c != n || bad != 0 {
		r.fail("ponger saw %d round trips, expected %d; %d wrong replies", c, n, bad)
	}
	return r
}

// 2. A token with a countdown travels n hops around a ring of 503.
func threadRing(n int) *result {
	chans := make([]chan int, ringSize)
	for i := range chans {
		chans[i] = make(chan int)
	}
	holder := make(chan int)
	for i := 0; i < ringSize; i++ {
		go func(id int, in, next chan int) {
			for t := range in {
				if t == 0 {
					holder <- id
				} else {
					next <- t - 1
				}
			}
		}(i+1, chans[i], chans[(i+1)%ringSize])
	}
	t0 := time.Now()
	chans[0] <- n
	var id int
	select {
	case id = <-holder:
	case <-time.After(waitLimit):
		return newResult(n, time.Since(t0), "hops").fail("token lost")
	}
	el := time.Since(t0)
	for _, c := range chans {
		close(c)
	}
	r := newResult(n, el, "hops")
	if want := n%ringSize + 1; id != want {
		r.fail("token ran out at goroutine %d, expected %d", id, want)
	}
	return r
}

// 3. Start n goroutines that each block on their own channel.
func spawnWaiters(n int) *result {
	done := make(chan int)
	chans := make([]chan int, n)
	r0 := rssBytes()
	t0 := time.Now()
	for i := range chans {
		c := make(chan int)
		chans[i] = c
		go func() { done <- <-c }()
	}
	el := time.Since(t0)
	r1 := rssBytes()
	go func() {
		for i, c := range chans {
			c <- i
		}
	}()
	count, sum := 0, int64(0)
	timeout := time.After(waitLimit)
loop:
	for count < n {
		select {
		case v := <-done:
			count++
			sum += int64(v)
		case <-timeout:
			break loop
		}
	}
	r := newResult(n, el, "processes")
	r.add("bytes_per_proc", perProc(r1-r0, n))
	if want := int64(n) * int64(n-1) / 2; count != n || sum != want {
		r.fail("%d of %d goroutines finished, sum %d, expected %d", count, n, sum, want)
	}
	return r
}

type idleReq struct{ reply chan int }

func idleServer(id int, reqs chan idleReq, wg *sync.WaitGroup) {
	defer wg.Done()
	for req := range reqs {
		req.reply <- id
	}
}

// 4. Start n idle servers, each a goroutine looping on its request channel.
func spawnIdleServers(n int) *result {
	servers := make([]chan idleReq, n)
	var wg sync.WaitGroup
	r0 := rssBytes()
	t0 := time.Now()
	for i := range servers {
		c := make(chan idleReq)
		servers[i] = c
		wg.Add(1)
		go idleServer(i, c, &wg)
	}
	el := time.Since(t0)
	r1 := rssBytes()
	bad := 0
	reply := make(chan int, 1)
	for i := 0; i < n; i += 1000 {
		servers[i] <- idleReq{reply}
		if <-reply != i {
			bad++
		}
	}
	for _, c := range servers {
		close(c)
	}
	stopped := waitOrTimeout(&wg)
	r := newResult(n, el, "servers")
	r.add("bytes_per_proc", perProc(r1-r0, n))
	if bad != 0 {
		r.fail("%d servers answered wrongly", bad)
	}
	if !stopped {
		r.fail("servers did not stop")
	}
	return r
}

// 5. Start n short goroutines, each adds i*2+1; join them all.
func forkJoin(n int) *result {
	var sum int64
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func(i int64) {
			atomic.AddInt64(&sum, i*2+1)
			wg.Done()
		}(int64(i))
	}
	wg.Wait()
	el := time.Since(t0)
	r := newResult(n, el, "tasks")
	if want := int64(n) * int64(n); sum != want {
		r.fail("sum %d, expected %d", sum, want)
	}
	return r
}

// 6. Four senders flood one receiver with small integers over a
// buffered channel.
func sendThroughput(perSender int) *result {
	total := senders * perSender
	ch := make(chan int64, 1024)
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(senders)
	for s := 0; s < senders; s++ {
		go func() {
			for k := perSender; k >= 1; k-- {
				ch <- int64(k)
			}
			wg.Done()
		}()
	}
	go func() { wg.Wait(); close(ch) }()
	count, sum := 0, int64(0)
	for v := range ch {
		count++
		sum += v
	}
	el := time.Since(t0)
	r := newResult(total, el, "messages")
	want := int64(senders) * int64(perSender) * int64(perSender+1) / 2
	if count != total || sum != want {
		r.fail("received %d messages summing to %d, expected %d and %d", count, sum, total, want)
	}
	return r
}

const (
	opIncr = iota
	opGet
)

type callReq struct {
	op    int
	reply chan int64
}

// counterServer is the gen_server of the call workloads: it increments
// its counter and replies with it.
func counterServer(reqs chan callReq) {
	var c int64
	for req := range reqs {
		if req.op == opIncr {
			c++
		}
		req.reply <- c
	}
}

func call(srv chan callReq, op int, reply chan int64) int64 {
	srv <- callReq{op, reply}
	return <-reply
}

// One clock read per call, as in hive-bench: a call's latency runs from the
// end of the previous call to its own end.
func callLoop(srv chan callReq, lats []time.Duration) {
	reply := make(chan int64, 1)
	t := time.Now()
	for i := range lats {
		call(srv, opIncr, reply)
		now := time.Now()
		lats[i] = now.Sub(t)
		t = now
	}
}

// 7. One client, n sequential request/reply calls to a counter.
func genServerCall(n int) *result {
	srv := make(chan callReq)
	go counterServer(srv)
	lats := make([]time.Duration, n)
	t0 := time.Now()
	callLoop(srv, lats)
	el := time.Since(t0)
	final := call(srv, opGet, make(chan int64, 1))
	close(srv)
	r := newResult(n, el, "calls")
	percentiles(r, lats)
	if final != int64(n) {
		r.fail("counter is %d, expected %d", final, n)
	}
	return r
}

// 8. Two clients calling the same counter concurrently.
func genServerCall2c(perClient int) *result {
	n := 2 * perClient
	srv := make(chan callReq)
	go counterServer(srv)
	lats := make([]time.Duration, n)
	ends := make([]time.Time, 2)
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(2)
	for c := 0; c < 2; c++ {
		go func(c int) {
			callLoop(srv, lats[c*perClient:(c+1)*perClient])
			ends[c] = time.Now()
			wg.Done()
		}(c)
	}
	wg.Wait()
	end := ends[0]
	if ends[1].After(end) {
		end = ends[1]
	}
	el := end.Sub(t0)
	final := call(srv, opGet, make(chan int64, 1))
	close(srv)
	r := newResult(n, el, "calls")
	percentiles(r, lats)
	if final != int64(n) {
		r.fail("counter is %d, expected %d", final, n)
	}
	return r
}

type stormReq struct{ reply chan int }

// 9. n clients each call once with a 5 ms timeout; the server answers
// every request 20 ms later from a timer, so every call times out and
// every reply is late. The request channel is buffered for every client
// (a mailbox: sending a request never blocks, as in the other runtimes,
// so every request reaches the server). The reply channels are buffered
// (1), so a late reply is kept; the clients stay alive until all replies
// are sent and then report what is left in their channels.
func callTimeoutStorm(n int) *result {
	srv := make(chan stormReq, n)
	var sent int64
	allSent := make(chan struct{})
	go func() {
		for req := range srv {
			req := req
			time.AfterFunc(stormReplyDelay, func() {
				req.reply <- 1
				if atomic.AddInt64(&sent, 1) == int64(n) {
					close(allSent)
				}
			})
		}
	}()
	outcomes := make(chan bool, n) // true: timed out
	release := make(chan struct{})
	leftovers := make(chan int, n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			reply := make(chan int, 1)
			timeout := time.After(stormCallTimeout)
			timedOut := false
			srv <- stormReq{reply}
			select {
			case <-reply:
			case <-timeout:
				timedOut = true
			}
			outcomes <- timedOut
			<-release
			leftovers <- len(reply)
		}()
	}
	timeouts, got := 0, 0
	limit := time.After(waitLimit)
	replied := false
wait:
	for got < n || !replied {
		select {
		case t := <-outcomes:
			got++
			if t {
				timeouts++
			}
		case <-allSent:
			replied = true
			allSent = nil
		case <-limit:
			break wait
		}
	}
	el := time.Since(t0)
	close(release)
	leftover := 0
	for i := 0; i < got; i++ {
		leftover += <-leftovers
	}
	close(srv)
	r := newResult(n, el, "calls")
	r.add("timeouts", strconv.Itoa(timeouts))
	r.add("late_dropped", strconv.Itoa(n-leftover))
	r.add("leftover", strconv.Itoa(leftover))
	r.add("elapsed_ms", ffmt(float64(el.Nanoseconds())/1e6, 3))
	if !replied {
		r.fail("server sent %d of %d replies", atomic.LoadInt64(&sent), n)
	}
	if timeouts != n {
		r.fail("%d of %d calls timed out", timeouts, n)
	}
	return r
}

// ---------------- supervisors and tasks ----------------

func peakRssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// supervisor_restart: Go has no supervisor; the closest a Go programmer
// writes is a goroutine that restarts a worker goroutine whenever the
// worker panics (recovered in the worker's wrapper and reported on a
// channel). The worker says hello when it starts, the client tells it to
// crash and waits for the next hello, n times.
type srWorker struct {
	id    int
	crash chan struct{}
}

func supervisorRestart(n int) *result {
	started := make(chan srWorker)
	exits := make(chan int)
	done := make(chan struct{})
	nextID := 0
	startWorker := func() {
		nextID++
		w := srWorker{id: nextID, crash: make(chan struct{})}
		go func() {
			defer func() {
				if recover() != nil {
					exits <- w.id
				}
			}()
			started <- w
			<-w.crash
			panic("crash")
		}()
	}
	restarts := 0
	go func() { // the supervisor
		startWorker()
		for {
			select {
			case <-exits:
				restarts++
				startWorker()
			case <-done:
				return
			}
		}
	}()
	w := <-started
	t0 := time.Now()
	ok := true
	for i := 0; i < n; i++ {
		close(w.crash)
		nw := <-started
		if nw.id == w.id {
			ok = false
			break
		}
		w = nw
	}
	el := time.Since(t0)
	close(done)
	r := newResult(n, el, "restarts")
	if !ok {
		r.fail("a restart gave the same worker")
	}
	return r
}

// task_async_await: a goroutine per task with its own result channel;
// awaited in order, 1,000 at a time.
func taskAsyncAwait(n int) *result {
	const batch = 1000
	chans := make([]chan int64, batch)
	var sum int64
	t0 := time.Now()
	for base := 0; base < n; base += batch {
		k := batch
		if n-base < k {
			k = n - base
		}
		for i := 0; i < k; i++ {
			ch := make(chan int64, 1)
			chans[i] = ch
			go func(x int64, ch chan int64) { ch <- x*2 + 1 }(int64(base+i), ch)
		}
		for i := 0; i < k; i++ {
			sum += <-chans[i]
		}
	}
	el := time.Since(t0)
	r := newResult(n, el, "tasks")
	if want := int64(n) * int64(n); sum != want {
		r.fail("sum %d, expected %d", sum, want)
	}
	return r
}

// async_stream: ordered, at most GOMAXPROCS running; the next item starts
// when the consumer has taken the oldest result.
func asyncStream(n int) *result {
	maxc := runtime.GOMAXPROCS(0)
	window := make([]chan int64, 0, maxc)
	next := 0
	start := func() {
		ch := make(chan int64, 1)
		go func(x int64) { ch <- x*2 + 1 }(int64(next))
		window = append(window, ch)
		next++
	}
	var sum int64
	got := 0
	var rss10 int64
	t0 := time.Now()
	for next < n && len(window) < maxc {
		start()
	}
	for len(window) > 0 {
		v := <-window[0]
		window = window[1:]
		if v != int64(got)*2+1 {
			break
		}
		sum += v
		got++
		if got == n/10 {
			rss10 = rssBytes()
		}
		if next < n {
			start()
		}
	}
	el := time.Since(t0)
	r := newResult(got, el, "items")
	r.add("peak_rss_mb", ffmt(float64(peakRssBytes())/1048576.0, 1))
	r.add("rss_at_10pct_mb", ffmt(float64(rss10)/1048576.0, 1))
	r.add("rss_at_end_mb", ffmt(float64(rssBytes())/1048576.0, 1))
	if want := int64(n) * int64(n); got != n || sum != want {
		r.fail("%d items, sum %d, expected %d", got, sum, want)
	}
	return r
}

// factorial_chunks: 10000! as 1,000 chunks of 10 factors, each chunk's
// product in its own goroutine (math/big), multiplied together in order.
func factorialChunks(rounds int) *result {
	const factN, chunk = 10000, 10
	digits := 0
	t0 := time.Now()
	for round := 0; round < rounds; round++ {
		chans := make([]chan *big.Int, factN/chunk)
		for c := range chans {
			ch := make(chan *big.Int, 1)
			chans[c] = ch
			go func(first int64) {
				p := big.NewInt(first)
				for k := first + 1; k < first+chunk; k++ {
					p.Mul(p, big.NewInt(k))
				}
				ch <- p
			}(int64(c*chunk + 1))
		}
		acc := big.NewInt(1)
		for _, ch := range chans {
			acc.Mul(acc, <-ch)
		}
		digits = len(acc.String())
		if digits != 35660 {
			break
		}
	}
	el := time.Since(t0)
	r := newResult(rounds, el, "rounds")
	r.add("digits", strconv.Itoa(digits))
	if digits != 35660 {
		r.fail("10000! has %d digits, not 35660", digits)
	}
	return r
}
