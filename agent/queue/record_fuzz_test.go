package queue

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"

	"github.com/aramaki/aramaki/wire"
)

// FuzzReadRecord: whatever is on disk, reading a record never panics, and
// a record it accepts carries what was written with that sequence.
func FuzzReadRecord(f *testing.F) {
	payload, _ := json.Marshal(wire.Result{System: "web", Check: "http", Status: 2, Output: "CRITICAL"})
	good := encodeRecord(7, payload)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), good...))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, '{'})
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := bufio.NewReader(bytes.NewReader(raw))
		for {
			var res wire.Result
			seq, size, err := readRecord(r, &res)
			if err != nil {
				return
			}
			if seq == 0 || res.Seq != seq || size <= headerSize || size > int64(len(raw)) {
				t.Fatalf("accepted record seq %d size %d of %d bytes: %+v", seq, size, len(raw), res)
			}
		}
	})
}
