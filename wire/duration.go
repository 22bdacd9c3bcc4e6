package wire

import "time"

// Duration travels as whole milliseconds.
type Duration int64

// Millis makes a Duration of a time.Duration.
func Millis(d time.Duration) Duration { return Duration(d / time.Millisecond) }

// D is the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) * time.Millisecond }
