// Package queue is the agent's durable outbox. Every check result gets the
// next sequence number and is on disk (fsynced) before anyone may send it,
// and it stays there until the server acknowledges it, so that a result
// survives kill -9 of the agent and of the server at any moment.
//
// # On disk
//
// A queue is a directory of append-only segment files named after the
// sequence number of their first record (00000000000000000042.seg), and a
// state file (state.json, replaced atomically) holding the acknowledged
// sequence, the floor below which nothing is live any more, and the
// dropped ranges not yet reported. A record is
//
//	length  uint32, big-endian: bytes of the payload
//	crc     uint32, big-endian: CRC-32C of seq and payload
//	seq     uint64, big-endian
//	payload the wire.Result as JSON
//
// A crash can leave a torn record at the end of the last segment; Open
// finds it by its length or checksum, truncates it away, and never reads it
// as a result (it was never acknowledged to the scheduler, so never sent).
//
// # Bounds
//
// The queue holds at most MaxRecords results and MaxBytes bytes. When full,
// it drops its oldest segment, unacknowledged results and all, and records
// the dropped range as a gap that the agent reports to the server.
package queue

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/aramaki/aramaki/wire"
)

// Default bounds.
const (
	DefaultMaxRecords = 100_000
	DefaultMaxBytes   = 256 << 20
)

const (
	headerSize    = 16
	maxRecordSize = 4 << 20 // far above any valid result, far below a torn length's garbage
	segmentSuffix = ".seg"
	stateFile     = "state.json"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options bound a queue. Zero values mean the defaults.
type Options struct {
	MaxRecords int
	MaxBytes   int64
	// A segment is closed and a new one started when it reaches either of
	// these; by default a sixteenth of the bounds, so that dropping the
	// oldest segment when full drops a sixteenth of the queue.
	SegmentRecords int
	SegmentBytes   int64
}

func (o Options) withDefaults() Options {
	if o.MaxRecords <= 0 {
		o.MaxRecords = DefaultMaxRecords
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SegmentRecords <= 0 {
		o.SegmentRecords = max(1, o.MaxRecords/16)
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = max(1, o.MaxBytes/16)
	}
	return o
}

// Queue is a durable, bounded, ordered queue of results. It is safe for
// concurrent use.
type Queue struct {
	dir    string
	opt    Options
	notify chan struct{}

	mu      sync.Mutex
	segs    []*segment // ascending
	active  *os.File   // the last segment, open for appending; nil until the next append
	next    uint64     // sequence of the next result
	state   state
	records int   // records on disk
	bytes   int64 // bytes on disk
	cursor  cursor
}

type segment struct {
	first, last uint64 // sequences of the first and last record
	count       int
	size        int64
	path        string
}

// state is what state.json keeps.
type state struct {
	// Acked is the highest sequence the server acknowledged.
	Acked uint64 `json:"acked"`
	// Floor is the highest sequence that is acknowledged or dropped: nothing
	// at or below it is sent again, and numbering continues above it.
	Floor uint64 `json:"floor"`
	// Gaps are dropped ranges the server may not know of yet.
	Gaps []wire.Gap `json:"gaps,omitempty"`
}

// cursor remembers where the last Read stopped, so that the next one
// continues without scanning the segment from its start.
type cursor struct {
	path   string
	seq    uint64 // the last record read
	offset int64  // where the record after it starts
}

// Open opens the queue in dir, creating it if needed, and recovers from
// whatever a crash left: a torn last record is truncated away; records
// lost to corruption in the middle become a gap.
func Open(dir string, opt Options) (*Queue, error) {
	q := &Queue{dir: dir, opt: opt.withDefaults(), notify: make(chan struct{}, 1)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &q.state); err != nil {
			return nil, fmt.Errorf("open queue: %s is damaged (%v); move the queue directory %s aside to start afresh", stateFile, err, dir)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("open queue: %w", err)
	}
	q.state.Floor = max(q.state.Floor, q.state.Acked)

	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if !strings.HasSuffix(name, segmentSuffix) || err != nil || first == 0 {
			continue
		}
		q.segs = append(q.segs, &segment{first: first, path: filepath.Join(dir, name)})
	}
	sort.Slice(q.segs, func(i, j int) bool { return q.segs[i].first < q.segs[j].first })

	stateChanged := false
	var prev uint64 // last sequence of the previous segment
	kept := q.segs[:0]
	for _, s := range q.segs {
		if err := s.recover(prev); err != nil {
			return nil, err
		}
		if s.count == 0 {
			os.Remove(s.path)
			continue
		}
		// Records missing between segments were lost to damage: say so.
		if prev != 0 && s.first > prev+1 && s.first-1 > q.state.Floor {
			q.addGap(max(prev+1, q.state.Floor+1), s.first-1)
			stateChanged = true
		}
		prev = s.last
		kept = append(kept, s)
	}
	q.segs = kept
	q.next = q.state.Floor + 1
	if n := len(q.segs); n > 0 {
		q.next = max(q.next, q.segs[n-1].last+1)
	}
	for _, s := range q.segs {
		q.records += s.count
		q.bytes += s.size
	}
	if stateChanged {
		if err := q.saveState(); err != nil {
			return nil, err
		}
	}
	// Finish a removal a crash interrupted.
	if err := q.removeBelowFloor(); err != nil {
		return nil, err
	}
	if last := q.lastSegment(); last != nil {
		if q.active, err = os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
			return nil, fmt.Errorf("open queue: %w", err)
		}
	}
	return q, nil
}

// recover reads a segment's records, checking each, and truncates the file
// after the last good one. prev is the last sequence before the segment.
func (s *segment) recover(prev uint64) error {
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open queue segment: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 32<<10)
	var off int64
	expect := max(s.first, prev+1)
	for {
		seq, n, err := readRecord(r, nil)
		if err != nil || seq < expect {
			break // a torn or damaged record: everything from here is lost
		}
		if s.count == 0 {
			s.first = seq
		}
		s.last, expect = seq, seq+1
		s.count++
		off += n
	}
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open queue segment: %w", err)
	}
	if info.Size() != off {
		if err := f.Truncate(off); err != nil {
			return fmt.Errorf("truncate torn queue segment: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("truncate torn queue segment: %w", err)
		}
	}
	s.size = off
	return nil
}

// readRecord reads one record; with into non-nil it decodes the payload
// into it. It returns the sequence and the record's size on disk.
func readRecord(r *bufio.Reader, into *wire.Result) (uint64, int64, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, err
	}
	length := binary.BigEndian.Uint32(h[0:4])
	sum := binary.BigEndian.Uint32(h[4:8])
	seq := binary.BigEndian.Uint64(h[8:16])
	if length == 0 || length > maxRecordSize || seq == 0 {
		return 0, 0, errDamaged
	}
	payload := make([]byte, length)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, 0, err
	}
	crc := crc32.Update(crc32.Checksum(h[8:16], castagnoli), castagnoli, payload)
	if crc != sum {
		return 0, 0, errDamaged
	}
	if into != nil {
		*into = wire.Result{}
		if err := json.Unmarshal(payload, into); err != nil {
			return 0, 0, fmt.Errorf("queue record %d: %w", seq, err)
		}
		into.Seq = seq
	}
	return seq, headerSize + int64(length), nil
}

var errDamaged = errors.New("damaged queue record")

func encodeRecord(seq uint64, payload []byte) []byte {
	rec := make([]byte, headerSize+len(payload))
	binary.BigEndian.PutUint32(rec[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint64(rec[8:16], seq)
	copy(rec[headerSize:], payload)
	binary.BigEndian.PutUint32(rec[4:8], crc32.Checksum(rec[8:], castagnoli))
	return rec
}

// Append gives r the next sequence number and writes it to disk; when
// Append returns, the result survives a crash. It returns the sequence.
// When the queue is full, its oldest segment is dropped first (see Gaps).
func (q *Queue) Append(r wire.Result) (uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	r.Seq = q.next
	payload, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("queue result: %w", err)
	}
	if len(payload) > maxRecordSize {
		return 0, fmt.Errorf("queue result: %d bytes is too large", len(payload))
	}
	rec := encodeRecord(r.Seq, payload)
	if err := q.makeRoom(int64(len(rec))); err != nil {
		return 0, err
	}
	last := q.lastSegment()
	if q.active == nil || last == nil || last.count >= q.opt.SegmentRecords || last.size+int64(len(rec)) > q.opt.SegmentBytes && last.count > 0 {
		if err := q.startSegment(r.Seq); err != nil {
			return 0, err
		}
		last = q.lastSegment()
	}
	if _, err := q.active.Write(rec); err != nil {
		q.active.Truncate(last.size) // leave no torn record behind
		return 0, fmt.Errorf("queue result: %w", err)
	}
	if err := q.active.Sync(); err != nil {
		q.active.Truncate(last.size)
		return 0, fmt.Errorf("queue result: %w", err)
	}
	if last.count == 0 {
		last.first = r.Seq
	}
	last.last = r.Seq
	last.count++
	last.size += int64(len(rec))
	q.records++
	q.bytes += int64(len(rec))
	q.next++
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return r.Seq, nil
}

func (q *Queue) lastSegment() *segment {
	if len(q.segs) == 0 {
		return nil
	}
	return q.segs[len(q.segs)-1]
}

// startSegment closes the active segment and starts a new one whose first
// record will be seq. An empty last segment (left by a crash, or made
// before a failed write) is reused.
func (q *Queue) startSegment(seq uint64) error {
	if q.active != nil {
		q.active.Close()
		q.active = nil
	}
	if last := q.lastSegment(); last != nil && last.count == 0 {
		os.Remove(last.path)
		q.segs = q.segs[:len(q.segs)-1]
	}
	path := filepath.Join(q.dir, fmt.Sprintf("%020d%s", seq, segmentSuffix))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start queue segment: %w", err)
	}
	if err := syncDir(q.dir); err != nil {
		f.Close()
		return fmt.Errorf("start queue segment: %w", err)
	}
	q.active = f
	q.segs = append(q.segs, &segment{first: seq, last: seq - 1, path: path})
	return nil
}

// makeRoom drops the oldest segments until a record of n bytes fits.
func (q *Queue) makeRoom(n int64) error {
	for len(q.segs) > 0 && (q.records+1 > q.opt.MaxRecords || q.bytes+n > q.opt.MaxBytes) {
		s := q.segs[0]
		if len(q.segs) == 1 && q.active != nil {
			q.active.Close()
			q.active = nil
		}
		if s.count > 0 && s.last > q.state.Floor {
			q.addGap(max(s.first, q.state.Floor+1), s.last)
			q.state.Floor = s.last
			if err := q.saveState(); err != nil {
				return err
			}
		}
		if err := q.removeFirst(); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) addGap(from, to uint64) {
	if n := len(q.state.Gaps); n > 0 && q.state.Gaps[n-1].To+1 >= from {
		g := &q.state.Gaps[n-1]
		g.To = max(g.To, to)
		g.Dropped = g.To - g.From + 1
		return
	}
	q.state.Gaps = append(q.state.Gaps, wire.Gap{From: from, To: to, Dropped: to - from + 1})
	if len(q.state.Gaps) > 100 { // never in practice: keep the state small anyway
		q.state.Gaps[1].From = q.state.Gaps[0].From
		q.state.Gaps[1].Dropped += q.state.Gaps[0].Dropped
		q.state.Gaps = q.state.Gaps[1:]
	}
}

func (q *Queue) removeFirst() error {
	s := q.segs[0]
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove queue segment: %w", err)
	}
	q.records -= s.count
	q.bytes -= s.size
	q.segs = q.segs[1:]
	if q.cursor.path == s.path {
		q.cursor = cursor{}
	}
	return nil
}

// removeBelowFloor removes segments with nothing live. The floor must be
// saved first: it is what keeps numbering from going back.
func (q *Queue) removeBelowFloor() error {
	for len(q.segs) > 0 && q.segs[0].count > 0 && q.segs[0].last <= q.state.Floor {
		if len(q.segs) == 1 && q.active != nil {
			q.active.Close()
			q.active = nil
		}
		if err := q.removeFirst(); err != nil {
			return err
		}
	}
	return nil
}

// Ack records that the server has stored every result up to seq: they are
// not sent again, and their space is freed. Gaps up to seq are forgotten
// (the server has seen what came after them).
//
// When seq is beyond the last result, the server knows of results this
// queue has lost (a data directory restored from an old copy, say):
// numbering continues after seq, so that a new result never reuses a number
// the server has seen and would ignore as a duplicate.
func (q *Queue) Ack(seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if seq <= q.state.Acked {
		return nil
	}
	q.state.Acked = seq
	q.state.Floor = max(q.state.Floor, seq)
	gaps := q.state.Gaps[:0]
	for _, g := range q.state.Gaps {
		if g.To > seq {
			gaps = append(gaps, g)
		}
	}
	changed := len(gaps) != len(q.state.Gaps)
	q.state.Gaps = gaps
	if seq >= q.next {
		q.next = seq + 1
		changed = true
	}
	if len(q.segs) > 0 && q.segs[0].count > 0 && q.segs[0].last <= seq {
		changed = true
	}
	// Saving only when something is removed keeps acks cheap: an ack lost to
	// a crash only means a few results are sent twice, which the server
	// ignores.
	if !changed {
		return nil
	}
	if err := q.saveState(); err != nil {
		return err
	}
	return q.removeBelowFloor()
}

// Read returns up to maxRecords results after the sequence after (and
// above the floor), in order, stopping early once their payloads reach
// maxBytes (but always returning at least one result if there is one).
func (q *Queue) Read(after uint64, maxRecords int, maxBytes int64) ([]wire.Result, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	after = max(after, q.state.Floor)
	var out []wire.Result
	var size int64
	for _, s := range q.segs {
		if s.count == 0 || s.last <= after {
			continue
		}
		f, err := os.Open(s.path)
		if err != nil {
			return out, fmt.Errorf("read queue: %w", err)
		}
		var off int64
		if q.cursor.path == s.path && q.cursor.seq == after {
			off = q.cursor.offset
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return out, fmt.Errorf("read queue: %w", err)
		}
		r := bufio.NewReaderSize(f, 16<<10)
		for off < s.size {
			var res wire.Result
			seq, n, err := readRecord(r, &res)
			if err != nil {
				f.Close()
				return out, fmt.Errorf("read queue segment %s at %d: %w", filepath.Base(s.path), off, err)
			}
			off += n
			if seq <= after {
				continue
			}
			out = append(out, res)
			size += n
			after = seq
			q.cursor = cursor{path: s.path, seq: seq, offset: off}
			if len(out) >= maxRecords || size >= maxBytes {
				f.Close()
				return out, nil
			}
		}
		f.Close()
	}
	return out, nil
}

// Notify receives a value after results were appended.
func (q *Queue) Notify() <-chan struct{} { return q.notify }

// Acked is the highest sequence the server acknowledged.
func (q *Queue) Acked() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.state.Acked
}

// Floor is the highest sequence acknowledged or dropped: nothing at or
// below it will be read again.
func (q *Queue) Floor() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.state.Floor
}

// Last is the sequence of the last result appended (0 before the first).
func (q *Queue) Last() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.next - 1
}

// Pending is the number of results waiting for the server's ack.
func (q *Queue) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, s := range q.segs {
		if s.count > 0 && s.last > q.state.Floor {
			n += int(s.last - max(s.first, q.state.Floor+1) + 1)
		}
	}
	return n
}

// Gaps are the ranges dropped because the queue was full (or lost to damage)
// that the server may not know of yet.
func (q *Queue) Gaps() []wire.Gap {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]wire.Gap(nil), q.state.Gaps...)
}

// Close closes the queue's files.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.active == nil {
		return nil
	}
	err := q.active.Close()
	q.active = nil
	return err
}

func (q *Queue) saveState() error {
	raw, err := json.Marshal(q.state)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(q.dir, stateFile), raw); err != nil {
		return fmt.Errorf("save queue state: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new content.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
