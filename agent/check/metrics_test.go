package check_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aramaki/aramaki/agent/check"
	"github.com/aramaki/aramaki/wire"
)

func m(name string, v float64, unit string, labels ...string) wire.Metric {
	met := wire.Metric{Name: name, Value: v, Unit: unit}
	for i := 0; i+1 < len(labels); i += 2 {
		if met.Labels == nil {
			met.Labels = map[string]string{}
		}
		met.Labels[labels[i]] = labels[i+1]
	}
	return met
}

func TestParsePerfdata(t *testing.T) {
	cases := []struct {
		name, output string
		want         []wire.Metric
	}{
		{"none", "OK - all good", nil},
		{"check_load", "OK - load average: 0.15, 0.10, 0.05|load1=0.150;4.000;8.000;0; load5=0.100;3.000;6.000;0; load15=0.050;2.000;4.000;0;",
			[]wire.Metric{m("load1", 0.15, ""), m("load5", 0.1, ""), m("load15", 0.05, "")}},
		{"units", "HTTP OK | time=0.25s size=1234B;;;0 ratio=99.5%", []wire.Metric{m("time", 0.25, "s"), m("size", 1234, "B"), m("ratio", 99.5, "%")}},
		{"quoted label", "DISK OK | '/var/lib'=12.5MB;80;90;0;100 'it''s'=1", []wire.Metric{m("/var/lib", 12.5, "MB"), m("it's", 1, "")}},
		{"label with spaces", "OK | 'my label'=12.5MB;1;2", []wire.Metric{m("my label", 12.5, "MB")}},
		{"negative and exponent", "OK | temp=-3.5C big=1.5e3", []wire.Metric{m("temp", -3.5, "C"), m("big", 1500, "")}},
		{"decimal comma", "OK | load=0,75", []wire.Metric{m("load", 0.75, "")}},
		{"counter", "OK | packets=12345c", []wire.Metric{m("packets", 12345, "c")}},
		{"undetermined value skipped", "OK | a=U;1;2 b=2", []wire.Metric{m("b", 2, "")}},
		{"garbage skipped", "OK | = a= =1 x=abc y=1;2 ; z 'unterminated=1 w=2", []wire.Metric{m("y", 1, "")}},
		{"not finite skipped", "OK | a=NaN b=Inf c=1e999 d=4", []wire.Metric{m("d", 4, "")}},
		{"long text and later perfdata", "OK - summary | a=1\nline two\nline three | b=2s\nc=3;;;\n",
			[]wire.Metric{m("a", 1, ""), m("b", 2, "s"), m("c", 3, "")}},
		{"perfdata only on later lines", "OK\ndetail | x=5ms", []wire.Metric{m("x", 5, "ms")}},
		{"pipe in the long text without perfdata", "OK | a=1\nno pipes here", []wire.Metric{m("a", 1, "")}},
		{"unit too long", "OK | a=1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b=2", []wire.Metric{m("b", 2, "")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := check.ParsePerfdata(c.output)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ParsePerfdata(%q)\n got %+v\nwant %+v", c.output, got, c.want)
			}
			if got := check.ParseMetrics(c.output); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ParseMetrics(%q) did not take it for perfdata: %+v", c.output, got)
			}
		})
	}
}

func TestParsePrometheus(t *testing.T) {
	cases := []struct {
		name, output string
		want         []wire.Metric
	}{
		{"plain", "up 1\n", []wire.Metric{m("up", 1, "")}},
		{"help and type ignored", "# HELP http_requests_total The total.\n# TYPE http_requests_total counter\nhttp_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\nhttp_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n",
			[]wire.Metric{m("http_requests_total", 1027, "", "method", "post", "code", "200"), m("http_requests_total", 3, "", "method", "post", "code", "400")}},
		{"escapes", `msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9`,
			[]wire.Metric{m("msdos_file_access_time_seconds", 1.458255915e9, "", "path", `C:\DIR\FILE.TXT`, "error", "Cannot find file:\n\"FILE.TXT\"")}},
		{"histogram", "# TYPE h histogram\nh_bucket{le=\"0.5\"} 129389\nh_bucket{le=\"+Inf\"} 144320\nh_sum 53423\nh_count 144320\n",
			[]wire.Metric{m("h_bucket", 129389, "", "le", "0.5"), m("h_bucket", 144320, "", "le", "+Inf"), m("h_sum", 53423, ""), m("h_count", 144320, "")}},
		{"not finite skipped", "# TYPE x gauge\na NaN\nb +Inf\nc -Inf\nd 2\n", []wire.Metric{m("d", 2, "")}},
		{"trailing comma and empty braces", "a{x=\"1\",} 1\nb{} 2\n", []wire.Metric{m("a", 1, "", "x", "1"), m("b", 2, "")}},
		{"colons in names", "job:rate5m 0.5\n", []wire.Metric{m("job:rate5m", 0.5, "")}},
		{"garbage skipped", "# TYPE a gauge\na{x=1} 1\na{x=\"1\" 2\n9lives 3\na 1 2 3\na nope\na{x=\"1\",x=\"2\"} 4\nok 5\n", []wire.Metric{m("ok", 5, "")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := check.ParsePrometheus(c.output)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ParsePrometheus(%q)\n got %+v\nwant %+v", c.output, got, c.want)
			}
			if got := check.ParseMetrics(c.output); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ParseMetrics(%q) did not take it for Prometheus: %+v", c.output, got)
			}
		})
	}
}

func TestParsersKeepAtMostMaxMetrics(t *testing.T) {
	var perf, prom strings.Builder
	perf.WriteString("OK |")
	for i := range 200 {
		fmt.Fprintf(&perf, " m%d=%d", i, i)
		fmt.Fprintf(&prom, "m%d %d\n", i, i)
	}
	if n := len(check.ParseMetrics(perf.String())); n != wire.MaxMetrics {
		t.Fatalf("perfdata: %d metrics", n)
	}
	if n := len(check.ParseMetrics(prom.String())); n != wire.MaxMetrics {
		t.Fatalf("prometheus: %d metrics", n)
	}
}

// mustBeSendable fails when metrics would not pass the wire.
func mustBeSendable(t *testing.T, input string, metrics []wire.Metric) {
	t.Helper()
	if len(metrics) > wire.MaxMetrics {
		t.Fatalf("%d metrics from %q", len(metrics), input)
	}
	for _, met := range metrics {
		if !utf8.ValidString(met.Name) || !utf8.ValidString(met.Unit) {
			t.Fatalf("metric of %q is not UTF-8: %+v", input, met)
		}
		for k, v := range met.Labels {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				t.Fatalf("label of %q is not UTF-8: %+v", input, met)
			}
		}
	}
	now := time.Now()
	res := wire.Result{Seq: 1, System: "s", Check: "c", Output: "", Metrics: metrics, Started: now}
	if err := (&wire.Results{Results: []wire.Result{res}}).Validate(now); err != nil {
		t.Fatalf("metrics of %q refused by the wire: %v (%+v)", input, err, metrics)
	}
}

func FuzzParsePerfdata(f *testing.F) {
	for _, s := range []string{"OK | a=1", "OK | 'a b'=1.5MB;1;2;0;100 c=U", "x\ny | z=1e3s\nw=0,5", "|'''=1 '=", "| a=1e400 b=-0 c=.5 d=5.", "| a=\xff1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mustBeSendable(t, s, check.ParsePerfdata(s))
		mustBeSendable(t, s, check.ParseMetrics(s))
	})
}

func FuzzParsePrometheus(f *testing.F) {
	for _, s := range []string{"up 1", "# TYPE a counter\na{b=\"c\"} 1 123", `a{b="\\\"\n"} -1e-3`, "a{b=\"\xff\"} 1", "a NaN\nb 0x1p3\nc 1_0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mustBeSendable(t, s, check.ParsePrometheus(s))
	})
}
