package queue_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aramaki/aramaki/agent/queue"
	"github.com/aramaki/aramaki/wire"
)

func result(i int) wire.Result {
	return wire.Result{System: "webshop", Check: "http", Status: wire.Status(i % 4), Output: fmt.Sprintf("run %d", i),
		Started: time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second), Duration: 12,
		Metrics: []wire.Metric{{Name: "time", Value: float64(i), Unit: "s"}}}
}

func MustOpen(t *testing.T, dir string, opt queue.Options) *queue.Queue {
	t.Helper()
	q, err := queue.Open(dir, opt)
	if err != nil {
		t.Fatalf("open queue: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func MustAppend(t *testing.T, q *queue.Queue, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		seq, err := q.Append(result(i))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if seq != uint64(i) {
			t.Fatalf("append %d got sequence %d", i, seq)
		}
	}
}

// MustReadSeqs reads everything after `after` and returns the sequences,
// checking each result is the one appended with that number.
func MustReadSeqs(t *testing.T, q *queue.Queue, after uint64) []uint64 {
	t.Helper()
	var seqs []uint64
	for {
		rs, err := q.Read(after, 7, 1<<20)
		if err != nil {
			t.Fatalf("read after %d: %v", after, err)
		}
		if len(rs) == 0 {
			return seqs
		}
		for _, r := range rs {
			want := result(int(r.Seq))
			want.Seq = r.Seq
			if !reflect.DeepEqual(r, want) {
				t.Fatalf("read %+v, appended %+v", r, want)
			}
			if r.Seq <= after {
				t.Fatalf("read %d after %d", r.Seq, after)
			}
			seqs = append(seqs, r.Seq)
			after = r.Seq
		}
	}
}

func span(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestResultsComeOutInOrderUntilAcked(t *testing.T) {
	dir := t.TempDir()
	q := MustOpen(t, dir, queue.Options{SegmentRecords: 4})
	MustAppend(t, q, 1, 10)
	if got := MustReadSeqs(t, q, 0); !reflect.DeepEqual(got, span(1, 10)) {
		t.Fatalf("read %v", got)
	}
	if got := MustReadSeqs(t, q, 6); !reflect.DeepEqual(got, span(7, 10)) {
		t.Fatalf("read after 6: %v", got)
	}
	if err := q.Ack(5); err != nil {
		t.Fatal(err)
	}
	if got := MustReadSeqs(t, q, 0); !reflect.DeepEqual(got, span(6, 10)) {
		t.Fatalf("after ack 5 read %v", got)
	}
	if q.Pending() != 5 || q.Acked() != 5 || q.Last() != 10 {
		t.Fatalf("pending %d acked %d last %d", q.Pending(), q.Acked(), q.Last())
	}
	rs, _ := q.Read(0, 2, 1<<20)
	if len(rs) != 2 {
		t.Fatalf("read of at most 2 returned %d", len(rs))
	}
	rs, _ = q.Read(0, 100, 1)
	if len(rs) != 1 {
		t.Fatalf("read of at most 1 byte returned %d results, want 1", len(rs))
	}
	// Segments wholly acknowledged are gone from disk.
	if n := segments(t, dir); n != 2 {
		t.Fatalf("%d segments for 6..10 in segments of 4", n)
	}

	q.Close()
	q = MustOpen(t, dir, queue.Options{SegmentRecords: 4})
	if got := MustReadSeqs(t, q, 0); !reflect.DeepEqual(got, span(6, 10)) {
		t.Fatalf("after reopening read %v", got)
	}
	MustAppend(t, q, 11, 12)
	if err := q.Ack(12); err != nil {
		t.Fatal(err)
	}
	if q.Pending() != 0 || segments(t, dir) != 0 {
		t.Fatalf("pending %d, %d segments after acking everything", q.Pending(), segments(t, dir))
	}
	q.Close()
	q = MustOpen(t, dir, queue.Options{SegmentRecords: 4})
	MustAppend(t, q, 13, 13) // numbering survives an empty queue
}

func TestNumberingContinuesAfterAnAckBeyondTheQueue(t *testing.T) {
	dir := t.TempDir()
	q := MustOpen(t, dir, queue.Options{})
	MustAppend(t, q, 1, 3)
	if err := q.Ack(500); err != nil {
		t.Fatal(err)
	}
	if got := MustReadSeqs(t, q, 0); len(got) != 0 {
		t.Fatalf("read %v", got)
	}
	seq, _ := q.Append(result(501))
	q.Close()
	q = MustOpen(t, dir, queue.Options{})
	if seq != 501 || q.Last() != 501 {
		t.Fatalf("appended %d, last %d after reopening", seq, q.Last())
	}
}

func segments(t *testing.T, dir string) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	return len(m)
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	sort.Strings(m)
	if len(m) == 0 {
		t.Fatal("no segments")
	}
	return m[len(m)-1]
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, _ := os.ReadDir(from)
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// A crash can cut the last segment anywhere: at every byte offset, reopening
// must give exactly the records that were whole, and go on numbering after them.
func TestATornLastRecordIsDroppedNeverMisread(t *testing.T) {
	orig := t.TempDir()
	q := MustOpen(t, orig, queue.Options{SegmentRecords: 3})
	MustAppend(t, q, 1, 5) // segments 1-3 and 4-5
	q.Close()
	last := lastSegment(t, orig)
	raw, _ := os.ReadFile(last)
	// Record boundaries within the last segment, from its records' lengths.
	var ends []int
	for off := 0; off < len(raw); {
		off += 16 + int(uint32(raw[off])<<24|uint32(raw[off+1])<<16|uint32(raw[off+2])<<8|uint32(raw[off+3]))
		ends = append(ends, off)
	}
	if len(ends) != 2 || ends[1] != len(raw) {
		t.Fatalf("record ends %v in %d bytes", ends, len(raw))
	}
	for cut := 0; cut <= len(raw); cut++ {
		dir := t.TempDir()
		copyDir(t, orig, dir)
		if err := os.Truncate(filepath.Join(dir, filepath.Base(last)), int64(cut)); err != nil {
			t.Fatal(err)
		}
		whole := 3
		for _, e := range ends {
			if cut >= e {
				whole++
			}
		}
		q := MustOpen(t, dir, queue.Options{SegmentRecords: 3})
		if got := MustReadSeqs(t, q, 0); !reflect.DeepEqual(got, span(1, uint64(whole))) {
			t.Fatalf("cut at %d: read %v, want 1..%d", cut, got, whole)
		}
		MustAppend(t, q, whole+1, whole+1)
		q.Close()
		q = MustOpen(t, dir, queue.Options{SegmentRecords: 3})
		if got := MustReadSeqs(t, q, 0); !reflect.DeepEqual(got, span(1, uint64(whole+1))) {
			t.Fatalf("cut at %d, appended, reopened: read %v", cut, got)
		}
		if len(q.Gaps()) != 0 {
			t.Fatalf("cut at %d: gaps %v", cut, q.Gaps())
		}
		q.Close()
	}
}

func TestADamagedRecordIsDetectedByItsChecksum(t *testing.T) {
	orig := t.TempDir()
	q := MustOpen(t, orig, queue.Options{})
	MustAppend(t, q, 1, 3)
	q.Close()
	last := lastSegment(t, orig)
	raw, _ := os.ReadFile(last)
	for i := 8; i < len(raw); i += 7 { // seq and payload bytes, everywhere
		dir := t.TempDir()
		copyDir(t, orig, dir)
		damaged := append([]byte(nil), raw...)
		damaged[i] ^= 0x20
		os.WriteFile(filepath.Join(dir, filepath.Base(last)), damaged, 0o600)
		q := MustOpen(t, dir, queue.Options{})
		got := MustReadSeqs(t, q, 0)
		if len(got) >= 3 || !reflect.DeepEqual(got, span(1, uint64(len(got)))) {
			t.Fatalf("flipped byte %d: read %v", i, got)
		}
		q.Close()
	}
}

func TestRecordsLostInTheMiddleBecomeAGap(t *testing.T) {
	dir := t.TempDir()
	q := MustOpen(t, dir, queue.Options{SegmentRecords: 3})
	MustAppend(t, q, 1, 9)
	q.Close()
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	sort.Strings(m)
	os.Truncate(m[1], 5) // segment 4-6 loses everything
	q = MustOpen(t, dir, queue.Options{SegmentRecords: 3})
	if got := MustReadSeqs(t, q, 0); !reflect.DeepEqual(got, []uint64{1, 2, 3, 7, 8, 9}) {
		t.Fatalf("read %v", got)
	}
	if g := q.Gaps(); !reflect.DeepEqual(g, []wire.Gap{{From: 4, To: 6, Dropped: 3}}) {
		t.Fatalf("gaps %v", g)
	}
}

func TestAFullQueueDropsTheOldestAndRemembersTheGap(t *testing.T) {
	dir := t.TempDir()
	opt := queue.Options{MaxRecords: 10, SegmentRecords: 3}
	q := MustOpen(t, dir, opt)
	MustAppend(t, q, 1, 25)
	if p := q.Pending(); p > 10 || p < 7 {
		t.Fatalf("%d pending in a queue bounded to 10", p)
	}
	got := MustReadSeqs(t, q, 0)
	first := got[0]
	if !reflect.DeepEqual(got, span(first, 25)) {
		t.Fatalf("read %v", got)
	}
	want := []wire.Gap{{From: 1, To: first - 1, Dropped: first - 1}}
	if g := q.Gaps(); !reflect.DeepEqual(g, want) {
		t.Fatalf("gaps %v, want %v", g, want)
	}
	q.Close()
	q = MustOpen(t, dir, opt)
	if g := q.Gaps(); !reflect.DeepEqual(g, want) {
		t.Fatalf("after reopening gaps %v, want %v", g, want)
	}
	if got := MustReadSeqs(t, q, 0); !reflect.DeepEqual(got, span(first, 25)) {
		t.Fatalf("after reopening read %v", got)
	}
	// Dropping continues the same gap while nothing was acknowledged.
	MustAppend(t, q, 26, 30)
	if g := q.Gaps(); len(g) != 1 || g[0].From != 1 || g[0].To < first {
		t.Fatalf("gaps %v", g)
	}
	// An ack past the gap means the server has seen it.
	if err := q.Ack(27); err != nil {
		t.Fatal(err)
	}
	if g := q.Gaps(); len(g) != 0 {
		t.Fatalf("gaps %v after an ack past them", g)
	}
}

func TestTheQueueIsBoundedInBytes(t *testing.T) {
	dir := t.TempDir()
	q := MustOpen(t, dir, queue.Options{MaxBytes: 20 << 10, SegmentBytes: 4 << 10})
	big := result(0)
	big.Output = strings.Repeat("x", 2000)
	for range 100 {
		if _, err := q.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	var size int64
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, p := range m {
		fi, _ := os.Stat(p)
		size += fi.Size()
	}
	if size > 20<<10 || size < 10<<10 {
		t.Fatalf("%d bytes on disk for a queue bounded to 20 KiB", size)
	}
	if g := q.Gaps(); len(g) != 1 || g[0].From != 1 || g[0].To+uint64(q.Pending()) != 100 {
		t.Fatalf("gaps %v with %d pending", g, q.Pending())
	}
}

// TestKill9 kills a process appending as fast as it can, many times, at
// random moments: every result it was told is stored is there, in order,
// and numbering goes on without a hole.
func TestKill9(t *testing.T) {
	if os.Getenv("QUEUE_CRASH_DIR") != "" {
		appendForever(os.Getenv("QUEUE_CRASH_DIR"))
		return
	}
	if testing.Short() {
		t.Skip("kills processes")
	}
	dir := t.TempDir()
	var confirmed uint64
	for round := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
		cmd.Env = append(os.Environ(), "QUEUE_CRASH_DIR="+dir)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		go func() {
			time.Sleep(time.Duration(50+round*37) * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
		}()
		for lines.Scan() {
			if seq, err := strconv.ParseUint(lines.Text(), 10, 64); err == nil {
				confirmed = seq
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()

		q := MustOpen(t, dir, queue.Options{SegmentRecords: 50})
		got := MustReadSeqs(t, q, 0)
		if len(got) == 0 || !reflect.DeepEqual(got, span(1, got[len(got)-1])) {
			t.Fatalf("round %d: read %d results, not 1..n", round, len(got))
		}
		if got[len(got)-1] < confirmed {
			t.Fatalf("round %d: %d confirmed, only %d on disk", round, confirmed, got[len(got)-1])
		}
		q.Close()
	}
	t.Logf("%d results confirmed over 8 kills", confirmed)
	if confirmed < 10 {
		t.Fatalf("only %d appends in 8 rounds", confirmed)
	}
}

func appendForever(dir string) {
	q, err := queue.Open(dir, queue.Options{SegmentRecords: 50})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	for {
		seq, err := q.Append(result(int(q.Last() + 1)))
		if err != nil {
			fmt.Println("append:", err)
			os.Exit(1)
		}
		fmt.Println(seq)
	}
}
