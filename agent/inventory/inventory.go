// Package inventory finds out what an agent's host is: name, OS, kernel,
// CPUs, memory, disks (lsblk), systemd units and listening ports, as the
// inventory facts the agent reports (wire.Facts). Everything is best effort
// and bounded in time; what a host lacks stays empty.
package inventory

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aramaki/aramaki/wire"
)

// commandTimeout bounds each tool the inventory runs.
const commandTimeout = 10 * time.Second

// Collect finds out what it can about the host. Everything is best effort:
// what is missing or fails stays empty. The result always passes wire
// validation; lists too long are cut.
func Collect(ctx context.Context) *wire.Facts {
	f := &wire.Facts{Arch: runtime.GOARCH}
	f.Hostname, _ = os.Hostname()
	if raw, err := os.ReadFile("/etc/os-release"); err == nil {
		f.OS = ParseOSRelease(raw)
	} else if raw, err := os.ReadFile("/usr/lib/os-release"); err == nil {
		f.OS = ParseOSRelease(raw)
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		f.Kernel = strings.TrimSpace(string(raw))
	} else if out, err := runTool(ctx, "uname", "-r"); err == nil {
		f.Kernel = strings.TrimSpace(string(out))
	}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		f.CPUs, f.CPUModel = ParseCPUInfo(raw)
	}
	if f.CPUs == 0 {
		f.CPUs = runtime.NumCPU()
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		f.MemoryKiB = ParseMemTotal(raw)
	}
	if out, err := runTool(ctx, "lsblk", "-J"); err == nil && json.Valid(out) {
		var compact bytes.Buffer
		if json.Compact(&compact, out) == nil {
			f.Disks = compact.Bytes()
		}
	}
	if out, err := runTool(ctx, "systemctl", "list-units", "--type=service", "--all", "--no-legend", "--plain", "--no-pager"); err == nil {
		f.Units = ParseUnits(out)
	}
	f.Ports = listeningPorts(ctx)
	f.Collected = time.Now()
	Fit(f)
	return f
}

func runTool(ctx context.Context, name string, args ...string) ([]byte, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "SYSTEMD_COLORS=0")
	cmd.WaitDelay = time.Second
	return cmd.Output()
}

// ParseOSRelease reads os-release(5): KEY=value lines, values optionally
// quoted, with backslash escapes inside double quotes.
func ParseOSRelease(raw []byte) map[string]string {
	m := map[string]string{}
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimSpace(line)
		key, value, ok := strings.Cut(line, "=")
		if !ok || key == "" || strings.HasPrefix(line, "#") || strings.ContainsAny(key, " \t") {
			continue
		}
		if n := len(value); n >= 2 && (value[0] == '"' && value[n-1] == '"' || value[0] == '\'' && value[n-1] == '\'') {
			quote := value[0]
			value = value[1 : n-1]
			if quote == '"' {
				var b strings.Builder
				for i := 0; i < len(value); i++ {
					if value[i] == '\\' && i+1 < len(value) {
						i++
					}
					b.WriteByte(value[i])
				}
				value = b.String()
			}
		}
		m[key] = value
	}
	return m
}

// ParseCPUInfo counts the processors in /proc/cpuinfo and finds their model
// (x86 "model name"; ARM "Model", "Hardware" or "CPU part").
func ParseCPUInfo(raw []byte) (count int, model string) {
	found := map[string]string{}
	for line := range strings.Lines(string(raw)) {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key == "processor" {
			count++
		}
		if _, seen := found[key]; !seen && value != "" {
			found[key] = value
		}
	}
	for _, k := range []string{"model name", "Model", "cpu model", "Hardware", "cpu", "CPU part"} {
		if v := found[k]; v != "" {
			return count, v
		}
	}
	return count, ""
}

// ParseMemTotal finds MemTotal, in KiB, in /proc/meminfo.
func ParseMemTotal(raw []byte) uint64 {
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				n, _ := strconv.ParseUint(fields[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// ParseUnits reads `systemctl list-units --plain --no-legend` lines:
// UNIT LOAD ACTIVE SUB DESCRIPTION.
func ParseUnits(out []byte) []wire.Unit {
	var units []wire.Unit
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) > 0 && (fields[0] == "●" || fields[0] == "*") {
			fields = fields[1:] // a failed or not-found unit's marker, without --plain
		}
		if len(fields) < 4 || !strings.Contains(fields[0], ".") {
			continue
		}
		units = append(units, wire.Unit{Name: fields[0], Active: fields[2], Sub: fields[3]})
	}
	return units
}

// listeningPorts reads the kernel's socket tables, and the names of the
// processes owning the sockets where /proc lets it see them.
func listeningPorts(ctx context.Context) []wire.Port {
	var ports []wire.Port
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		raw, err := os.ReadFile("/proc/net/" + proto)
		if err != nil {
			continue
		}
		ports = append(ports, ParseProcNet(raw, proto)...)
	}
	if len(ports) == 0 {
		return nil
	}
	owners := socketOwners(ctx)
	seen := map[wire.Port]bool{}
	out := ports[:0]
	for _, p := range ports {
		p.Process = owners[p.Process] // Process holds the inode until here
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Address < b.Address
	})
	return out
}

// ParseProcNet reads a /proc/net/{tcp,tcp6,udp,udp6} table and returns the
// listening sockets: TCP in state LISTEN, UDP unconnected. Proto is "tcp" or
// "udp"; Process holds the socket's inode (for socketOwners to resolve).
func ParseProcNet(raw []byte, table string) []wire.Port {
	proto := strings.TrimSuffix(table, "6")
	var ports []wire.Port
	for i, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if i == 0 || len(fields) < 10 {
			continue
		}
		state := fields[3]
		if proto == "tcp" && state != "0A" || proto == "udp" && (state != "07" || !zeroAddr(fields[2])) {
			continue
		}
		addr, port, ok := parseHexAddr(fields[1])
		if !ok {
			continue
		}
		ports = append(ports, wire.Port{Proto: proto, Address: addr, Port: port, Process: fields[9]})
	}
	return ports
}

func zeroAddr(s string) bool { return strings.Trim(s, "0:") == "" }

// parseHexAddr reads the kernel's "0100007F:0277": the address as 32-bit
// words in host byte order (little-endian here), the port big-endian.
func parseHexAddr(s string) (string, int, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return "", 0, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return "", 0, false
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return "", 0, false
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	addr, _ := netip.AddrFromSlice(raw)
	return addr.Unmap().String(), int(port), true
}

// socketOwners maps socket inodes to the names of processes holding them,
// as far as /proc shows (all of them as root, one's own otherwise).
func socketOwners(ctx context.Context) map[string]string {
	owners := map[string]string{}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return owners
	}
	for _, p := range procs {
		if ctx.Err() != nil {
			break
		}
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		dir := filepath.Join("/proc", p.Name())
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		var comm string
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
			inode, ok := strings.CutPrefix(link, "socket:[")
			if err != nil || !ok {
				continue
			}
			if comm == "" {
				raw, _ := os.ReadFile(filepath.Join(dir, "comm"))
				if comm = strings.TrimSpace(string(raw)); comm == "" {
					comm = "?"
				}
			}
			owners[strings.TrimSuffix(inode, "]")] = comm
		}
	}
	return owners
}

// Fit makes facts pass validation: text valid UTF-8 and within its
// length, lists cut to their limits, the whole within wire.MaxFactsSize.
func Fit(f *wire.Facts) {
	text := func(s string, n int) string {
		s = strings.ToValidUTF8(s, "\uFFFD")
		if len(s) <= n {
			return s
		}
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		return s[:n]
	}
	f.Hostname = text(f.Hostname, 255)
	if f.Hostname == "" {
		f.Hostname = "localhost"
	}
	f.Kernel, f.Arch, f.CPUModel = text(f.Kernel, 1000), text(f.Arch, 1000), text(f.CPUModel, 1000)
	if len(f.OS) > 0 {
		keys := make([]string, 0, len(f.OS))
		for k := range f.OS {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		kept := make(map[string]string, min(len(keys), 50))
		for _, k := range keys {
			if len(kept) == 50 {
				break
			}
			k2 := text(k, 100)
			kept[k2] = text(f.OS[k], 1000-len(k2))
		}
		f.OS = kept
	}
	for i := range f.Units {
		u := &f.Units[i]
		u.Name, u.Active, u.Sub = text(u.Name, 600), text(u.Active, 150), text(u.Sub, 150)
	}
	for i := range f.Ports {
		p := &f.Ports[i]
		p.Proto, p.Address, p.Process = text(p.Proto, 100), text(p.Address, 100), text(p.Process, 500)
	}
	f.Units = f.Units[:min(len(f.Units), 5000)]
	f.Ports = f.Ports[:min(len(f.Ports), 5000)]
	if len(f.Disks) > wire.MaxFactsSize/2 {
		f.Disks = nil
	}
	// The whole must fit too: give up the biggest parts first.
	for _, cut := range []func(){
		func() { f.Units = f.Units[:len(f.Units)/2] },
		func() { f.Disks = nil },
		func() { f.Ports = f.Ports[:len(f.Ports)/2] },
		func() { f.Units, f.Ports = nil, nil },
	} {
		raw, err := json.Marshal(f)
		if err == nil && len(raw) <= wire.MaxFactsSize {
			break
		}
		cut()
	}
	if f.CPUs < 0 {
		f.CPUs = 0
	}
	if f.Validate(time.Now()) != nil {
		// Cannot happen after the above; the bare minimum rather than nothing.
		*f = wire.Facts{Collected: f.Collected, Hostname: f.Hostname, Arch: f.Arch, Kernel: f.Kernel}
	}
}
