package inventory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki/agent/inventory"
	"github.com/aramaki/aramaki/wire"
)

func TestParseOSRelease(t *testing.T) {
	raw := `# a comment
NAME="Debian GNU/Linux"
VERSION_ID="13"
ID=debian
PRETTY_NAME="Debian \"trixie\""
HOME_URL='https://www.debian.org/'
BROKEN LINE
`
	want := map[string]string{"NAME": "Debian GNU/Linux", "VERSION_ID": "13", "ID": "debian", "PRETTY_NAME": `Debian "trixie"`, "HOME_URL": "https://www.debian.org/"}
	if got := inventory.ParseOSRelease([]byte(raw)); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
}

func TestParseCPUInfo(t *testing.T) {
	x86 := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n"
	if n, model := inventory.ParseCPUInfo([]byte(x86)); n != 2 || model != "Intel(R) Xeon(R) CPU @ 2.20GHz" {
		t.Fatalf("x86: %d %q", n, model)
	}
	arm := "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n\nprocessor\t: 1\n\nprocessor\t: 2\n\nprocessor\t: 3\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
	if n, model := inventory.ParseCPUInfo([]byte(arm)); n != 4 || model != "Raspberry Pi 4 Model B Rev 1.4" {
		t.Fatalf("arm: %d %q", n, model)
	}
}

func TestParseMemTotal(t *testing.T) {
	if kib := inventory.ParseMemTotal([]byte("MemTotal:       16318480 kB\nMemFree:         1234 kB\n")); kib != 16318480 {
		t.Fatalf("got %d", kib)
	}
	if kib := inventory.ParseMemTotal([]byte("nothing")); kib != 0 {
		t.Fatalf("got %d", kib)
	}
}

func TestParseUnits(t *testing.T) {
	out := `cron.service                 loaded    active   running Regular background program processing daemon
nginx.service                loaded    failed   failed  A high performance web server
● varnish.service            not-found inactive dead    varnish.service
not a unit line
`
	want := []wire.Unit{{Name: "cron.service", Active: "active", Sub: "running"}, {Name: "nginx.service", Active: "failed", Sub: "failed"},
		{Name: "varnish.service", Active: "inactive", Sub: "dead"}}
	if got := inventory.ParseUnits([]byte(out)); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

func TestParseProcNet(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 30566 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 19021 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0CEA 0100007F:B3C4 01 00000000:00000000 00:00000000 00000000     0        0 30570 1 0000000000000000 20 4 30 10 -1
`
	want := []wire.Port{{Proto: "tcp", Address: "127.0.0.1", Port: 3306, Process: "30566"}, {Proto: "tcp", Address: "0.0.0.0", Port: 22, Process: "19021"}}
	if got := inventory.ParseProcNet([]byte(tcp), "tcp"); !reflect.DeepEqual(got, want) {
		t.Fatalf("tcp: %+v", got)
	}
	tcp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21841 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21842 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:0019 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21843 1 0000000000000000 100 0 0 10 0
`
	want = []wire.Port{{Proto: "tcp", Address: "::", Port: 80, Process: "21841"}, {Proto: "tcp", Address: "::1", Port: 8080, Process: "21842"},
		{Proto: "tcp", Address: "127.0.0.1", Port: 25, Process: "21843"}}
	if got := inventory.ParseProcNet([]byte(tcp6), "tcp6"); !reflect.DeepEqual(got, want) {
		t.Fatalf("tcp6: %+v", got)
	}
	udp := `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 18374 2 0000000000000000 0
  101: 0F02000A:D431 08080808:0035 01 00000000:00000000 00:00000000 00000000     0        0 40000 2 0000000000000000 0
`
	want = []wire.Port{{Proto: "udp", Address: "127.0.0.53", Port: 53, Process: "18374"}}
	if got := inventory.ParseProcNet([]byte(udp), "udp"); !reflect.DeepEqual(got, want) {
		t.Fatalf("udp: %+v", got)
	}
}

func TestCollectOnThisHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := inventory.Collect(ctx)
	if err := f.Validate(time.Now()); err != nil {
		t.Fatalf("facts refused by the wire: %v", err)
	}
	if f.Hostname == "" || f.Arch != runtime.GOARCH || f.CPUs < 1 || f.Kernel == "" || f.MemoryKiB == 0 {
		t.Fatalf("facts %+v", f)
	}
	if len(f.Disks) > 0 && !json.Valid(f.Disks) {
		t.Fatalf("disks are not JSON: %s", f.Disks)
	}
	raw, _ := json.Marshal(f)
	t.Logf("%d bytes: %d OS fields, %d units, %d ports, disks %v", len(raw), len(f.OS), len(f.Units), len(f.Ports), len(f.Disks) > 0)
}

func TestFitCutsWhatTheWireWouldRefuse(t *testing.T) {
	f := &wire.Facts{Collected: time.Now(), Hostname: strings.Repeat("h", 300), CPUModel: "bad \xff utf-8", OS: map[string]string{}}
	for i := range 80 {
		f.OS[fmt.Sprintf("KEY_%d", i)] = strings.Repeat("v", 2000)
	}
	for i := range 9000 {
		f.Units = append(f.Units, wire.Unit{Name: fmt.Sprintf("unit-%d-%s.service", i, strings.Repeat("x", 100)), Active: "active", Sub: "running"})
		f.Ports = append(f.Ports, wire.Port{Proto: "tcp", Address: "::", Port: i, Process: "p"})
	}
	inventory.Fit(f)
	if err := f.Validate(time.Now()); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(f)
	if len(raw) > wire.MaxFactsSize {
		t.Fatalf("%d bytes", len(raw))
	}
	if len(f.Units) == 0 || len(f.Ports) == 0 || len(f.OS) != 50 {
		t.Fatalf("cut too much: %d units, %d ports, %d OS fields", len(f.Units), len(f.Ports), len(f.OS))
	}
}

// FuzzParsers feeds the same bytes to every parser of system files: none
// may panic, and what they return must pass the wire once fitted.
func FuzzParsers(f *testing.F) {
	f.Add([]byte("NAME=\"x\\\"\"\nprocessor : 0\nMemTotal: 1 kB\n0: 0100007F:0CEA 00000000:0000 0A 0 0 0 0 0 1 1\n"))
	f.Add([]byte("a.service loaded active running x\n● b.service not-found inactive dead b\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		facts := &wire.Facts{Collected: time.Now(), Hostname: "h", OS: inventory.ParseOSRelease(raw), Units: inventory.ParseUnits(raw)}
		facts.CPUs, facts.CPUModel = inventory.ParseCPUInfo(raw)
		facts.MemoryKiB = inventory.ParseMemTotal(raw)
		for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
			for _, p := range inventory.ParseProcNet(raw, table) {
				if p.Port < 0 || p.Port > 65535 {
					t.Fatalf("port %d", p.Port)
				}
				facts.Ports = append(facts.Ports, p)
			}
		}
		inventory.Fit(facts)
		if err := facts.Validate(time.Now()); err != nil {
			t.Fatal(err)
		}
	})
}
