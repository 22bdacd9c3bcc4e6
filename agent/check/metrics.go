package check

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aramaki/aramaki/wire"
)

// Limits of one metric, as the wire accepts it.
const (
	maxNameLen   = 200
	maxUnitLen   = 20
	maxLabels    = 20
	maxLabelKey  = 100
	maxLabelText = 200
)

// ParseMetrics reads the metrics in a check's output: the Prometheus text
// exposition format when the output starts like it (a # HELP or # TYPE
// comment, or a sample line), otherwise Nagios perfdata. What does not
// parse is skipped; at most wire.MaxMetrics are returned.
func ParseMetrics(output string) []wire.Metric {
	if looksLikePrometheus(output) {
		return ParsePrometheus(output)
	}
	return ParsePerfdata(output)
}

func looksLikePrometheus(output string) bool {
	for line := range strings.Lines(output) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			return true
		}
		_, ok := parsePrometheusLine(line)
		return ok
	}
	return false
}

// ParsePerfdata reads Nagios plugin performance data: the text after "|" on
// the first line, and everything after the first "|" in the lines that
// follow, as space-separated 'label'=value[unit];warn;crit;min;max items.
// The value and its unit become a metric; thresholds are not kept.
func ParsePerfdata(output string) []wire.Metric {
	first, rest, _ := strings.Cut(output, "\n")
	var metrics []wire.Metric
	for _, text := range []string{first, rest} {
		_, perf, ok := strings.Cut(text, "|")
		if !ok {
			continue
		}
		for _, item := range splitPerfdata(perf) {
			if len(metrics) == wire.MaxMetrics {
				return metrics
			}
			if m, ok := parsePerfItem(item); ok {
				metrics = append(metrics, m)
			}
		}
	}
	return metrics
}

// splitPerfdata splits at white space outside single quotes.
func splitPerfdata(s string) []string {
	var items []string
	start, quoted := -1, false
	for i, r := range s {
		switch {
		case r == '\'':
			quoted = !quoted // '' inside a label toggles twice: still quoted
			if start < 0 {
				start = i
			}
		case !quoted && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if start >= 0 {
				items = append(items, s[start:i])
				start = -1
			}
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		items = append(items, s[start:])
	}
	return items
}

func parsePerfItem(item string) (wire.Metric, bool) {
	var label, rest string
	if strings.HasPrefix(item, "'") {
		// 'label with spaces'=…, where '' stands for one quote.
		var b strings.Builder
		i := 1
		for {
			j := strings.IndexByte(item[i:], '\'')
			if j < 0 {
				return wire.Metric{}, false
			}
			b.WriteString(item[i : i+j])
			i += j + 1
			if i < len(item) && item[i] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			break
		}
		label = b.String()
		var ok bool
		if rest, ok = strings.CutPrefix(item[i:], "="); !ok {
			return wire.Metric{}, false
		}
	} else {
		var ok bool
		if label, rest, ok = strings.Cut(item, "="); !ok {
			return wire.Metric{}, false
		}
	}
	label = strings.TrimSpace(label)
	if label == "" || len(label) > maxNameLen || !utf8.ValidString(label) {
		return wire.Metric{}, false
	}
	value, _, _ := strings.Cut(rest, ";")
	v, unit, ok := parseValueUnit(value)
	if !ok {
		return wire.Metric{}, false
	}
	return wire.Metric{Name: label, Value: v, Unit: unit}, true
}

// parseValueUnit splits "12.5MB" into 12.5 and "MB". A decimal comma (from
// plugins run in some locales) counts as a point. "U" (no value) and
// anything not finite are refused.
func parseValueUnit(s string) (float64, string, bool) {
	n := 0
	for n < len(s) && strings.IndexByte("0123456789.,+-eE", s[n]) >= 0 {
		n++
	}
	for ; n > 0; n-- {
		num := s[:n]
		if !strings.Contains(num, ".") {
			num = strings.Replace(num, ",", ".", 1)
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return 0, "", false
			}
			continue
		}
		unit := s[n:]
		if !finite(v) || len(unit) > maxUnitLen || !validUnit(unit) {
			return 0, "", false
		}
		return v, unit, true
	}
	return 0, "", false
}

func validUnit(u string) bool {
	for _, r := range u {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError || r == ';' || r == '=' || r == '\'' {
			return false
		}
	}
	return true
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// ParsePrometheus reads the Prometheus text exposition format: one sample
// per line, name{label="value",…} value [timestamp]. Comments (# HELP,
// # TYPE) and lines that do not parse are skipped, and so are samples whose
// value is not finite (NaN, ±Inf).
func ParsePrometheus(output string) []wire.Metric {
	var metrics []wire.Metric
	for line := range strings.Lines(output) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if m, ok := parsePrometheusLine(line); ok {
			metrics = append(metrics, m)
			if len(metrics) == wire.MaxMetrics {
				break
			}
		}
	}
	return metrics
}

func parsePrometheusLine(line string) (wire.Metric, bool) {
	var m wire.Metric
	n := 0
	for n < len(line) && isNameByte(line[n], n == 0) {
		n++
	}
	if n == 0 || n > maxNameLen {
		return m, false
	}
	m.Name, line = line[:n], line[n:]
	if strings.HasPrefix(line, "{") {
		labels, rest, ok := parseLabels(line[1:])
		if !ok {
			return m, false
		}
		m.Labels, line = labels, rest
	}
	fields := strings.Fields(line)
	if len(fields) < 1 || len(fields) > 2 || (line[0] != ' ' && line[0] != '\t') {
		return m, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || !finite(v) {
		return m, false
	}
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return m, false
		}
	}
	m.Value = v
	return m, true
}

func isNameByte(c byte, first bool) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':' || !first && c >= '0' && c <= '9'
}

// parseLabels reads label="value",… up to the closing brace and returns
// what follows it.
func parseLabels(s string) (map[string]string, string, bool) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, "}") {
			if len(labels) == 0 {
				labels = nil
			}
			return labels, s[1:], true
		}
		n := 0
		for n < len(s) && isNameByte(s[n], n == 0) && s[n] != ':' {
			n++
		}
		if n == 0 || n > maxLabelKey {
			return nil, "", false
		}
		key := s[:n]
		s = strings.TrimLeft(s[n:], " \t")
		if !strings.HasPrefix(s, "=") {
			return nil, "", false
		}
		s = strings.TrimLeft(s[1:], " \t")
		if !strings.HasPrefix(s, `"`) {
			return nil, "", false
		}
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				default: // \\ and \"
					b.WriteByte(s[i])
				}
				continue
			}
			b.WriteByte(s[i])
		}
		if i >= len(s) {
			return nil, "", false
		}
		value := b.String()
		if len(value) > maxLabelText || !utf8.ValidString(value) {
			return nil, "", false
		}
		if _, dup := labels[key]; dup || len(labels) == maxLabels {
			return nil, "", false
		}
		labels[key] = value
		s = strings.TrimLeft(s[i+1:], " \t")
		if strings.HasPrefix(s, ",") {
			s = s[1:]
		} else if !strings.HasPrefix(s, "}") {
			return nil, "", false
		}
	}
}
