package wire

import (
	"encoding/json"
	"time"
)

// Hello is the server's first frame: its protocol version, a fresh nonce
// the agent must sign, and the server's clock, which agents use to correct
// the times they send when their own clock is off.
type Hello struct {
	Version    int       `json:"version"`
	Nonce      []byte    `json:"nonce"`
	ServerTime time.Time `json:"server_time"`
}

func (*Hello) FrameType() Type { return TypeHello }

func (m *Hello) Validate(now time.Time) error {
	if m.Version < 1 {
		return errorf("hello: invalid version %d", m.Version)
	}
	if len(m.Nonce) != NonceSize {
		return errorf("hello: nonce must have %d bytes", NonceSize)
	}
	return nil
}

// Auth is the agent's first frame. Signature is the Ed25519 signature of
// AuthPayload(nonce, agent id, channel binding) with the agent's key.
type Auth struct {
	Version      int       `json:"version"`
	AgentID      string    `json:"agent_id"`
	AgentVersion string    `json:"agent_version"`
	Time         time.Time `json:"time"`
	Signature    []byte    `json:"signature"`
	// Acked is the highest sequence the agent knows to be stored; the
	// server's own record wins, this is for diagnostics.
	Acked uint64 `json:"acked"`
}

func (*Auth) FrameType() Type { return TypeAuth }

func (m *Auth) Validate(now time.Time) error {
	if m.Version < MinVersion || m.Version > Version {
		return errorf("auth: protocol version %d is not spoken here (this server speaks %d to %d)", m.Version, MinVersion, Version)
	}
	if !ValidAgentID(m.AgentID) {
		return errorf("auth: invalid agent id")
	}
	if !versionPattern.MatchString(m.AgentVersion) {
		return errorf("auth: agent_version %s is not a version", clip(m.AgentVersion))
	}
	if len(m.Signature) != SignatureSize {
		return errorf("auth: signature must have %d bytes", SignatureSize)
	}
	return validTime("auth: time", m.Time, now)
}

// AuthPayload is what an agent signs to prove it holds its key: the
// server's nonce, its own id, and the TLS channel binding (keying material
// exported from the TLS session, empty without TLS), so that a signature
// cannot be replayed on another connection.
func AuthPayload(nonce []byte, agentID string, binding []byte) []byte {
	p := []byte("aramaki-agent-auth-v1\x00")
	p = append(p, nonce...)
	p = append(p, 0)
	p = append(p, agentID...)
	p = append(p, 0)
	return append(p, binding...)
}

// ChannelBindingLabel is the label for TLS keying material export (RFC 5705).
const ChannelBindingLabel = "EXPORTER-aramaki-agent-auth"

// CheckDefinition tells an agent what to run: the command as argv (never a
// shell string), how often and for how long at most.
type CheckDefinition struct {
	System   string   `json:"system"`
	Name     string   `json:"name"`
	Command  []string `json:"command"`
	Interval Duration `json:"interval_ms"`
	Timeout  Duration `json:"timeout_ms"`
}

func (d *CheckDefinition) validate() error {
	if !ValidName(d.System) || !ValidName(d.Name) {
		return errorf("check %s/%s: invalid system id or check name", clip(d.System), clip(d.Name))
	}
	if len(d.Command) == 0 || len(d.Command) > MaxArgs {
		return errorf("check %s/%s: command needs 1 to %d arguments", d.System, d.Name, MaxArgs)
	}
	for _, a := range d.Command {
		if err := validText("check command", a, 4096); err != nil {
			return err
		}
		for _, r := range a {
			if r == 0 {
				return errorf("check %s/%s: NUL in command", d.System, d.Name)
			}
		}
	}
	if d.Command[0] == "" {
		return errorf("check %s/%s: empty program", d.System, d.Name)
	}
	if d.Interval.D() < MinInterval || d.Interval.D() > MaxInterval {
		return errorf("check %s/%s: interval must be between %s and %s", d.System, d.Name, MinInterval, MaxInterval)
	}
	if d.Timeout.D() <= 0 || d.Timeout.D() > MaxTimeout {
		return errorf("check %s/%s: timeout must be between 1ms and %s", d.System, d.Name, MaxTimeout)
	}
	return nil
}

// Key identifies a check on an agent: system and name.
func (d *CheckDefinition) Key() string { return d.System + "/" + d.Name }

// Welcome accepts the agent: its id as the server knows it, the checks it
// runs, how often to send keepalives, and the last sequence the server
// stored from it (the agent resends everything after).
type Welcome struct {
	AgentID   string            `json:"agent_id"`
	Checks    []CheckDefinition `json:"checks"`
	Keepalive Duration          `json:"keepalive_ms"`
	Acked     uint64            `json:"acked"`
}

func (*Welcome) FrameType() Type { return TypeWelcome }

func (m *Welcome) Validate(now time.Time) error {
	if !ValidAgentID(m.AgentID) {
		return errorf("welcome: invalid agent id")
	}
	if m.Keepalive.D() < time.Second || m.Keepalive.D() > time.Hour {
		return errorf("welcome: keepalive interval must be between 1s and 1h")
	}
	return validChecks(m.Checks)
}

// Checks replaces the agent's check definitions.
type Checks struct {
	Checks []CheckDefinition `json:"checks"`
}

func (*Checks) FrameType() Type { return TypeChecks }

func (m *Checks) Validate(now time.Time) error { return validChecks(m.Checks) }

func validChecks(checks []CheckDefinition) error {
	if len(checks) > MaxChecks {
		return errorf("more than %d checks", MaxChecks)
	}
	seen := make(map[string]bool, len(checks))
	for i := range checks {
		if err := checks[i].validate(); err != nil {
			return err
		}
		if seen[checks[i].Key()] {
			return errorf("check %s is defined twice", checks[i].Key())
		}
		seen[checks[i].Key()] = true
	}
	return nil
}

// Status is a check's state, as Nagios plugins exit: 0 OK, 1 WARNING,
// 2 CRITICAL, 3 UNKNOWN.
type Status int

// Metric is one measurement from a check's perfdata or Prometheus output.
type Metric struct {
	Name   string            `json:"name"`
	Value  float64           `json:"value"`
	Unit   string            `json:"unit,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Result is one run of a check. Seq numbers an agent's results: 1, 2, 3,
// … without gaps unless a gap frame says so.
type Result struct {
	Seq      uint64    `json:"seq"`
	System   string    `json:"system"`
	Check    string    `json:"check"`
	Status   Status    `json:"status"`
	Output   string    `json:"output"`
	Metrics  []Metric  `json:"metrics,omitempty"`
	Started  time.Time `json:"started"`
	Duration Duration  `json:"duration_ms"`
	// Request is set when the run was asked for with a run frame.
	Request string `json:"request,omitempty"`
}

func (r *Result) validate(now time.Time) error {
	if r.Seq == 0 {
		return errorf("result: seq must be positive")
	}
	if !ValidName(r.System) || !ValidName(r.Check) {
		return errorf("result %d: invalid system id or check name", r.Seq)
	}
	if r.Status < 0 || r.Status > 3 {
		return errorf("result %d: status %d is not 0-3", r.Seq, r.Status)
	}
	if err := validText("result output", r.Output, MaxOutput); err != nil {
		return err
	}
	if len(r.Metrics) > MaxMetrics {
		return errorf("result %d: more than %d metrics", r.Seq, MaxMetrics)
	}
	for _, m := range r.Metrics {
		if m.Name == "" || len(m.Name) > 200 || !finite(m.Value) || len(m.Unit) > 20 || len(m.Labels) > 20 {
			return errorf("result %d: invalid metric %s", r.Seq, clip(m.Name))
		}
		for k, v := range m.Labels {
			if len(k) > 100 || len(v) > 200 {
				return errorf("result %d: metric %s: label too long", r.Seq, clip(m.Name))
			}
		}
	}
	if r.Duration < 0 || r.Duration.D() > MaxTimeout+time.Minute {
		return errorf("result %d: invalid duration", r.Seq)
	}
	if err := validText("result request", r.Request, 64); err != nil {
		return err
	}
	return validTime("result "+r.Check+" started", r.Started, now)
}

// Results is a batch of results in ascending sequence order.
type Results struct {
	Results []Result `json:"results"`
}

func (*Results) FrameType() Type { return TypeResults }

func (m *Results) Validate(now time.Time) error {
	if len(m.Results) == 0 || len(m.Results) > MaxBatch {
		return errorf("results: a batch holds 1 to %d results", MaxBatch)
	}
	for i := range m.Results {
		if err := m.Results[i].validate(now); err != nil {
			return err
		}
		if i > 0 && m.Results[i].Seq <= m.Results[i-1].Seq {
			return errorf("results: sequence numbers must ascend (%d after %d)", m.Results[i].Seq, m.Results[i-1].Seq)
		}
	}
	return nil
}

// Ack says every result up to and including Seq is durably stored.
type Ack struct {
	Seq uint64 `json:"seq"`
}

func (*Ack) FrameType() Type            { return TypeAck }
func (m *Ack) Validate(time.Time) error { return nil }

// Keepalive says the agent is alive.
type Keepalive struct {
	Time time.Time `json:"time"`
}

func (*Keepalive) FrameType() Type { return TypeKeepalive }

func (m *Keepalive) Validate(now time.Time) error { return validTime("keepalive time", m.Time, now) }

// Facts is the agent's inventory: what it found out about its host.
type Facts struct {
	Collected time.Time         `json:"collected"`
	Hostname  string            `json:"hostname"`
	OS        map[string]string `json:"os,omitempty"` // /etc/os-release
	Kernel    string            `json:"kernel,omitempty"`
	Arch      string            `json:"arch,omitempty"`
	CPUs      int               `json:"cpus,omitempty"`
	CPUModel  string            `json:"cpu_model,omitempty"`
	MemoryKiB uint64            `json:"memory_kib,omitempty"`
	// Disks is the output of lsblk -J, kept as the tool gives it.
	Disks json.RawMessage `json:"disks,omitempty"`
	Units []Unit          `json:"units,omitempty"`
	Ports []Port          `json:"ports,omitempty"`
}

// Unit is a systemd unit.
type Unit struct {
	Name   string `json:"name"`
	Active string `json:"active"`
	Sub    string `json:"sub"`
}

// Port is a listening socket.
type Port struct {
	Proto   string `json:"proto"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Process string `json:"process,omitempty"`
}

func (*Facts) FrameType() Type { return TypeFacts }

func (m *Facts) Validate(now time.Time) error {
	if err := validTime("facts collected", m.Collected, now); err != nil {
		return err
	}
	if err := validText("facts hostname", m.Hostname, 255); err != nil {
		return err
	}
	if m.Hostname == "" {
		return errorf("facts: hostname is missing")
	}
	if len(m.OS) > 50 || len(m.Units) > 5000 || len(m.Ports) > 5000 || len(m.Disks) > MaxFactsSize/2 {
		return errorf("facts: too many entries")
	}
	for k, v := range m.OS {
		if err := validText("facts os "+clip(k), k+v, 1000); err != nil {
			return err
		}
	}
	for _, s := range []string{m.Kernel, m.Arch, m.CPUModel} {
		if err := validText("facts", s, 1000); err != nil {
			return err
		}
	}
	for _, u := range m.Units {
		if err := validText("facts unit", u.Name+u.Active+u.Sub, 1000); err != nil {
			return err
		}
	}
	for _, p := range m.Ports {
		if p.Port < 0 || p.Port > 65535 {
			return errorf("facts: invalid port %d", p.Port)
		}
		if err := validText("facts port", p.Proto+p.Address+p.Process, 1000); err != nil {
			return err
		}
	}
	if m.CPUs < 0 {
		return errorf("facts: negative CPU count")
	}
	if raw, err := json.Marshal(m); err != nil || len(raw) > MaxFactsSize {
		return errorf("facts exceed %d bytes", MaxFactsSize)
	}
	return nil
}

// Run asks the agent to run one of its checks now.
type Run struct {
	Request string `json:"request"`
	System  string `json:"system"`
	Check   string `json:"check"`
}

func (*Run) FrameType() Type { return TypeRun }

func (m *Run) Validate(time.Time) error {
	if m.Request == "" || len(m.Request) > 64 || !ValidName(m.System) || !ValidName(m.Check) {
		return errorf("run: needs a request id, a system and a check")
	}
	return nil
}

// Gap reports results that will never arrive: sequences From to To
// (inclusive) were dropped from a full queue, lost to disk damage, or are
// ones the server would refuse. A gap may be sent again, and may cover
// results the server already has; the server ignores what it already has.
type Gap struct {
	From    uint64 `json:"from"`
	To      uint64 `json:"to"`
	Dropped uint64 `json:"dropped"`
}

func (*Gap) FrameType() Type { return TypeGap }

func (m *Gap) Validate(time.Time) error {
	if m.From == 0 || m.To < m.From || m.Dropped != m.To-m.From+1 {
		return errorf("gap: from %d to %d does not match %d dropped", m.From, m.To, m.Dropped)
	}
	return nil
}

// Codes of error frames.
const (
	CodeRevoked      = "revoked"      // the agent was revoked: do not retry soon
	CodeUnauthorized = "unauthorized" // unknown agent or a signature that does not match
	CodeProtocol     = "protocol"     // the agent sent something this package refuses
)

// ErrorMessage is the server's last word before it closes the connection.
type ErrorMessage struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (*ErrorMessage) FrameType() Type { return TypeError }

func (m *ErrorMessage) Validate(time.Time) error {
	if m.Code == "" || len(m.Code) > 50 || len(m.Message) > 1000 {
		return errorf("error: needs a code and a message of at most 1000 bytes")
	}
	return nil
}
