package wire_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/wire"
)

func ptr[T any](v T) *T { return &v }

// with is m changed: a good message made bad in one way.
func with[M any](m M, change func(M)) M {
	change(m)
	return m
}

func goodActions() *wire.Actions {
	return &wire.Actions{Actions: []wire.ActionDeclaration{{
		Name:        "flush-cache",
		Description: "Flush Varnish's cache of one host name",
		Argv:        []string{"/usr/bin/varnishadm", "ban", "req.http.host == {host}"},
		Params:      []wire.ActionParam{{Name: "host", Type: "string", Pattern: `[a-z0-9.-]+`, Description: "the host name"}},
		Timeout:     wire.Millis(30 * time.Second),
	}, {
		Name: "restart",
		Argv: []string{"/usr/bin/systemctl", "restart", "{unit}"},
		Params: []wire.ActionParam{
			{Name: "unit", Type: "enum", Values: []string{"varnish.service", "nginx.service"}},
			{Name: "wait", Type: "bool", Default: ptr("true")},
			{Name: "delay", Type: "int", Min: ptr(int64(0)), Max: ptr(int64(60)), Default: ptr("0")},
		},
		User: "root",
	}}}
}

func goodStart() *wire.StartRun {
	return &wire.StartRun{Run: "run_01JD3X5N8T", Action: "flush-cache", Params: map[string]string{"host": "shop.example.com"}, Timeout: wire.Millis(time.Minute)}
}

func goodOutput() *wire.RunOutput {
	return &wire.RunOutput{Run: "run_01JD3X5N8T", Seq: 1, Stream: wire.StreamStdout, Data: "banned 3 objects\n"}
}

func goodFinished() *wire.RunFinished {
	return &wire.RunFinished{Run: "run_01JD3X5N8T", State: "succeeded", ExitCode: ptr(0), Started: now.Add(-10 * time.Second), Ended: now.Add(-time.Second), LastSeq: 1}
}

func goodRuns() *wire.Runs {
	return &wire.Runs{Runs: []wire.RunStatus{{Run: "run_1", State: "running"}, {Run: "run_2", State: "timed_out"}}}
}

// v2Messages are one good message of every frame type version 2 added.
func v2Messages() []wire.Message {
	return []wire.Message{goodActions(), goodStart(), goodOutput(), goodFinished(), goodRuns(),
		&wire.CancelRun{Run: "run_01JD3X5N8T"}, &wire.RunAck{Run: "run_01JD3X5N8T"}}
}

// v1Messages are one good message of every frame type of version 1.
func v1Messages() []wire.Message {
	return []wire.Message{
		&wire.Results{Results: []wire.Result{result(1), result(2)}},
		&wire.Keepalive{Time: now},
		&wire.Facts{Collected: now, Hostname: "web1"},
		&wire.Gap{From: 1, To: 1, Dropped: 1},
		&wire.Welcome{AgentID: "ag_0123456789abcdef", Keepalive: 20000},
		&wire.Checks{Checks: []wire.CheckDefinition{{System: "webshop", Name: "http", Command: []string{"/bin/true"}, Interval: 60000, Timeout: 1000}}},
		&wire.Ack{Seq: 7},
		&wire.Run{Request: "r1", System: "webshop", Check: "http"},
		&wire.ErrorMessage{Code: wire.CodeProtocol, Message: "no"},
	}
}

func sentByServer(t wire.Type) bool {
	switch t {
	case wire.TypeHello, wire.TypeWelcome, wire.TypeChecks, wire.TypeAck, wire.TypeRun, wire.TypeError, wire.TypeStart, wire.TypeCancel, wire.TypeRunAck:
		return true
	}
	return false
}

// decodeAt decodes a frame of either side on a connection of version v.
func decodeAt(raw []byte, t wire.Type, v int) (wire.Message, error) {
	if sentByServer(t) {
		return wire.DecodeFromServerVersion(raw, v, now)
	}
	return wire.DecodeFromAgentVersion(raw, v, now)
}

// mustFrame is a frame of any body, valid or not, as a peer might send it.
func mustFrame(t *testing.T, typ wire.Type, body any) []byte {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(wire.Frame{Type: typ, Body: b})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestTheServerPicksTheNewestVersionBothSpeak(t *testing.T) {
	if got := wire.Subprotocols(); !reflect.DeepEqual(got, []string{"aramaki-agent.v2", "aramaki-agent.v1"}) {
		t.Fatalf("subprotocols %v: newest first", got)
	}
	if wire.Subprotocol != wire.SubprotocolV2 || wire.Version != 2 {
		t.Fatalf("Subprotocol %s and Version %d are not the current version's", wire.Subprotocol, wire.Version)
	}
	for sp, want := range map[string]int{"aramaki-agent.v1": 1, "aramaki-agent.v2": 2, "Aramaki-Agent.V2": 2, "": 0, "aramaki-agent.v3": 0, "aramaki-agent": 0} {
		v, ok := wire.VersionOf(sp)
		if v != want || ok != (want != 0) {
			t.Errorf("VersionOf(%q) = %d, %v; want %d", sp, v, ok, want)
		}
	}
	for _, sp := range wire.Subprotocols() {
		if _, ok := wire.VersionOf(sp); !ok {
			t.Errorf("%s has no version", sp)
		}
	}
}

func TestEachFrameTypeSaysWhichVersionBroughtIt(t *testing.T) {
	for _, m := range v1Messages() {
		if m.FrameType().Since() != 1 {
			t.Errorf("%s since %d", m.FrameType(), m.FrameType().Since())
		}
	}
	for _, typ := range []wire.Type{wire.TypeHello, wire.TypeAuth} {
		if typ.Since() != 1 {
			t.Errorf("%s since %d", typ, typ.Since())
		}
	}
	for _, m := range v2Messages() {
		if m.FrameType().Since() != 2 {
			t.Errorf("%s since %d", m.FrameType(), m.FrameType().Since())
		}
	}
	if wire.Type("shell").Since() != 0 {
		t.Error("an unknown type has a version")
	}
}

func TestActionRunFramesRoundTrip(t *testing.T) {
	for _, m := range v2Messages() {
		raw, err := wire.EncodeVersion(m, 2, now)
		if err != nil {
			t.Fatalf("encode %s: %v", m.FrameType(), err)
		}
		got, err := decodeAt(raw, m.FrameType(), 2)
		if err != nil {
			t.Fatalf("decode %s: %v", m.FrameType(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%s changed on the way:\n got %+v\nwant %+v", m.FrameType(), got, m)
		}
	}
}

func TestVersion2FramesAreRefusedOnAVersion1Connection(t *testing.T) {
	for _, m := range v2Messages() {
		raw, err := wire.Encode(m, now)
		if err != nil {
			t.Fatal(err)
		}
		want := string(m.FrameType()) + " frames need protocol version 2; this connection speaks 1"
		if _, err := decodeAt(raw, m.FrameType(), 1); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s on v1: error %v", m.FrameType(), err)
		}
		if _, err := wire.EncodeVersion(m, 1, now); err == nil || !strings.Contains(err.Error(), "the peer speaks 1") {
			t.Errorf("%s encoded for a v1 peer: %v", m.FrameType(), err)
		}
		// The decoders without a version are version 1's.
		legacy := wire.DecodeFromAgent
		if sentByServer(m.FrameType()) {
			legacy = wire.DecodeFromServer
		}
		if _, err := legacy(raw, now); err == nil {
			t.Errorf("%s accepted by the version 1 decoder", m.FrameType())
		}
	}
}

func TestVersion1FramesAreTheSameOnAVersion2Connection(t *testing.T) {
	for _, m := range v1Messages() {
		for v := wire.MinVersion; v <= wire.Version; v++ {
			raw, err := wire.EncodeVersion(m, v, now)
			if err != nil {
				t.Fatalf("encode %s for v%d: %v", m.FrameType(), v, err)
			}
			got, err := decodeAt(raw, m.FrameType(), v)
			if err != nil || !reflect.DeepEqual(got, m) {
				t.Errorf("%s on v%d: %+v %v", m.FrameType(), v, got, err)
			}
		}
	}
}

func TestHelloAndAuthNameTheNegotiatedVersion(t *testing.T) {
	hello := func(v int) []byte {
		raw, err := wire.Encode(&wire.Hello{Version: v, Nonce: make([]byte, wire.NonceSize), ServerTime: now}, now)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	auth := func(v int) []byte {
		return mustFrame(t, wire.TypeAuth, &wire.Auth{Version: v, AgentID: "ag_0123456789abcdef", AgentVersion: "1.2", Time: now, Signature: make([]byte, wire.SignatureSize)})
	}
	for v := wire.MinVersion; v <= wire.Version; v++ {
		if _, err := wire.DecodeFromServerVersion(hello(v), v, now); err != nil {
			t.Errorf("hello %d on v%d: %v", v, v, err)
		}
		if a, err := wire.DecodeAuthVersion(auth(v), v, now); err != nil || a.Version != v {
			t.Errorf("auth %d on v%d: %v", v, v, err)
		}
		if a, err := wire.DecodeAuth(auth(v), now); err != nil || a.Version != v {
			t.Errorf("auth %d without a negotiated version: %v", v, err)
		}
		// As version 1 agents did: the hello's version is the server's.
		if _, err := wire.DecodeFromServer(hello(v), now); err != nil {
			t.Errorf("hello %d by the version 1 decoder: %v", v, err)
		}
	}
	if _, err := wire.DecodeFromServerVersion(hello(1), 2, now); err == nil || !strings.Contains(err.Error(), "version 1 on a connection that negotiated 2") {
		t.Errorf("hello 1 on v2: %v", err)
	}
	if _, err := wire.DecodeAuthVersion(auth(2), 1, now); err == nil || !strings.Contains(err.Error(), "version 2 on a connection that negotiated 1") {
		t.Errorf("auth 2 on v1: %v", err)
	}
	for _, v := range []int{0, 3} {
		if _, err := wire.DecodeAuth(auth(v), now); err == nil || !strings.Contains(err.Error(), "is not spoken here") {
			t.Errorf("auth %d: %v", v, err)
		}
		if _, err := wire.DecodeFromAgentVersion(mustFrame(t, wire.TypeKeepalive, wire.Keepalive{Time: now}), v, now); err == nil || !strings.Contains(err.Error(), "is not spoken here") {
			t.Errorf("decoding at version %d: %v", v, err)
		}
	}
	if _, err := wire.EncodeVersion(&wire.Hello{Version: 2, Nonce: make([]byte, wire.NonceSize)}, 1, now); err == nil {
		t.Error("a hello naming 2 encoded for a v1 agent")
	}
}

func TestBadActionRunFramesAreRefusedWithAClearError(t *testing.T) {
	longID := strings.Repeat("r", 65)
	manyActions := goodActions()
	for i := range wire.MaxActions {
		manyActions.Actions = append(manyActions.Actions, wire.ActionDeclaration{Name: "a" + strings.Repeat("x", i%60) + string(rune('a'+i/60)), Argv: []string{"/bin/true"}})
	}
	manyParams := map[string]string{}
	manyDeclared := []wire.ActionParam{}
	for i := range wire.MaxParams + 1 {
		name := "p" + strings.Repeat("x", i)
		manyParams[name] = "1"
		manyDeclared = append(manyDeclared, wire.ActionParam{Name: name, Type: "bool", Default: ptr("true")})
	}
	manyRuns := &wire.Runs{}
	for i := range wire.MaxRuns + 1 {
		manyRuns.Runs = append(manyRuns.Runs, wire.RunStatus{Run: "run_" + strings.Repeat("x", i%50) + string(rune('a'+i/50)), State: "running"})
	}
	cases := []struct {
		name string
		m    wire.Message
		want string
	}{
		// actions
		{"too many actions", manyActions, "actions: more than 256"},
		{"action declared twice", with(goodActions(), func(m *wire.Actions) { m.Actions[1].Name = "flush-cache" }), "action flush-cache is declared twice"},
		{"action name with a slash", with(goodActions(), func(m *wire.Actions) { m.Actions[0].Name = "../flush" }), `invalid action name "../flush"`},
		{"relative program", with(goodActions(), func(m *wire.Actions) { m.Actions[0].Argv[0] = "varnishadm" }), "absolute path of a program"},
		{"placeholder as program", with(goodActions(), func(m *wire.Actions) { m.Actions[0].Argv[0] = "/usr/bin/{host}" }), "without placeholders"},
		{"no argv", with(goodActions(), func(m *wire.Actions) { m.Actions[0].Argv = nil }), "argv needs 1 to 64"},
		{"too many arguments", with(goodActions(), func(m *wire.Actions) { m.Actions[0].Argv = append(m.Actions[0].Argv, make([]string, wire.MaxArgs)...) }), "argv needs 1 to 64"},
		{"NUL in an argument", with(goodActions(), func(m *wire.Actions) { m.Actions[0].Argv[1] = "ban\x00x" }), "NUL"},
		{"undeclared placeholder", with(goodActions(), func(m *wire.Actions) { m.Actions[0].Argv[2] = "{hots}" }), "argv uses {hots}, which is not a declared parameter"},
		{"negative timeout", with(goodActions(), func(m *wire.Actions) { m.Actions[0].Timeout = -1 }), "timeout must be between 0"},
		{"timeout over an hour", with(goodActions(), func(m *wire.Actions) { m.Actions[0].Timeout = wire.Millis(61 * time.Minute) }), "timeout must be between 0"},
		{"timeout that overflows", with(goodActions(), func(m *wire.Actions) { m.Actions[0].Timeout = 1 << 62 }), "timeout must be between 0"},
		{"user with a space", with(goodActions(), func(m *wire.Actions) { m.Actions[1].User = "root admin" }), "invalid user"},
		{"description too long", with(goodActions(), func(m *wire.Actions) { m.Actions[0].Description = strings.Repeat("d", 1025) }), "description exceeds 1024 bytes"},
		{"too many parameters", with(goodActions(), func(m *wire.Actions) { m.Actions[1].Params = manyDeclared }), "at most 32 parameters"},
		{"parameter declared twice", with(goodActions(), func(m *wire.Actions) { m.Actions[1].Params[1].Name = "unit" }), "parameter unit is declared twice"},
		{"unknown parameter type", with(goodActions(), func(m *wire.Actions) { m.Actions[0].Params[0].Type = "float" }), `unknown type "float"`},
		{"enum without values", with(goodActions(), func(m *wire.Actions) { m.Actions[1].Params[0].Values = nil }), "an enum needs values"},
		{"enum value like an option", with(goodActions(), func(m *wire.Actions) { m.Actions[1].Params[0].Values[1] = "--force" }), "must be non-empty and not start with -"},
		{"min above max", with(goodActions(), func(m *wire.Actions) { m.Actions[1].Params[2].Min = ptr(int64(61)) }), "min is above max"},
		{"pattern that does not compile", with(goodActions(), func(m *wire.Actions) { m.Actions[0].Params[0].Pattern = "[a-" }), "pattern does not compile"},
		{"default out of range", with(goodActions(), func(m *wire.Actions) { m.Actions[1].Params[2].Default = ptr("61") }), "the default value 61 is out of range"},
		{"default not a bool", with(goodActions(), func(m *wire.Actions) { m.Actions[1].Params[1].Default = ptr("yes please") }), "not true or false"},
		// start
		{"empty run id", with(goodStart(), func(m *wire.StartRun) { m.Run = "" }), `start: invalid run id ""`},
		{"run id too long", with(goodStart(), func(m *wire.StartRun) { m.Run = longID }), "start: invalid run id"},
		{"run id with a slash", with(goodStart(), func(m *wire.StartRun) { m.Run = "../run" }), "start: invalid run id"},
		{"run id like an option", with(goodStart(), func(m *wire.StartRun) { m.Run = "-rf" }), "start: invalid run id"},
		{"run id with a new line", with(goodStart(), func(m *wire.StartRun) { m.Run = "run\nFAKE" }), `start: invalid run id "run\\nFAKE"`},
		{"bad action name", with(goodStart(), func(m *wire.StartRun) { m.Action = "Flush Cache" }), "invalid action name"},
		{"too many values", with(goodStart(), func(m *wire.StartRun) { m.Params = manyParams }), "more than 32 parameters"},
		{"value too long", with(goodStart(), func(m *wire.StartRun) { m.Params["host"] = strings.Repeat("h", 1025) }), "parameter host exceeds 1024 bytes"},
		{"NUL in a value", with(goodStart(), func(m *wire.StartRun) { m.Params["host"] = "shop\x00evil" }), "parameter host holds a NUL byte"},
		{"bad parameter name", with(goodStart(), func(m *wire.StartRun) { m.Params["--host"] = "x" }), `invalid parameter name "--host"`},
		{"no timeout", with(goodStart(), func(m *wire.StartRun) { m.Timeout = 0 }), "timeout must be between 1ms and 1h0m0s"},
		{"start timeout over an hour", with(goodStart(), func(m *wire.StartRun) { m.Timeout = wire.Millis(2 * time.Hour) }), "timeout must be between 1ms and 1h0m0s"},
		// cancel and run_ack
		{"cancel without a run", &wire.CancelRun{}, "cancel: invalid run id"},
		{"run_ack of a bad run id", &wire.RunAck{Run: "run 1"}, "run_ack: invalid run id"},
		// output
		{"output of a bad run id", with(goodOutput(), func(m *wire.RunOutput) { m.Run = longID }), "output: invalid run id"},
		{"output seq zero", with(goodOutput(), func(m *wire.RunOutput) { m.Seq = 0 }), "seq must be positive"},
		{"unknown stream", with(goodOutput(), func(m *wire.RunOutput) { m.Stream = "stdin" }), `stream "stdin" is not stdout or stderr`},
		{"empty output", with(goodOutput(), func(m *wire.RunOutput) { m.Data = "" }), "no data"},
		{"output too large", with(goodOutput(), func(m *wire.RunOutput) { m.Data = strings.Repeat("x", wire.MaxOutputChunk+1) }), "data exceeds 16384 bytes"},
		{"NUL in output", with(goodOutput(), func(m *wire.RunOutput) { m.Data = "a\x00b" }), "data holds a NUL byte"},
		// finished
		{"finished still running", with(goodFinished(), func(m *wire.RunFinished) { m.State = "running" }), `state "running" is not succeeded, failed, cancelled or timed_out`},
		{"finished awaiting approval", with(goodFinished(), func(m *wire.RunFinished) { m.State = "awaiting_approval" }), "is not succeeded"},
		{"finished in no state", with(goodFinished(), func(m *wire.RunFinished) { m.State = "" }), "is not succeeded"},
		{"finished in a made-up state", with(goodFinished(), func(m *wire.RunFinished) { m.State = "exploded" }), "is not succeeded"},
		{"succeeded with exit 1", with(goodFinished(), func(m *wire.RunFinished) { m.ExitCode = ptr(1) }), "a run that succeeded exited 0"},
		{"succeeded without exit code", with(goodFinished(), func(m *wire.RunFinished) { m.ExitCode = nil }), "a run that succeeded exited 0"},
		{"exit code 256", with(goodFinished(), func(m *wire.RunFinished) { m.State, m.ExitCode = "failed", ptr(256) }), "exit code 256 is not -1 to 255"},
		{"ended before started", with(goodFinished(), func(m *wire.RunFinished) { m.Ended = m.Started.Add(-time.Second) }), "ended 2026-11-24T02:59:49Z before it started 2026-11-24T02:59:50Z"},
		{"started in the future", with(goodFinished(), func(m *wire.RunFinished) { m.Started, m.Ended = now.Add(time.Hour), now.Add(2*time.Hour) }), "ahead of the receiver's clock"},
		{"no end", with(goodFinished(), func(m *wire.RunFinished) { m.Ended = time.Time{} }), "ended is missing"},
		{"error text too long", with(goodFinished(), func(m *wire.RunFinished) { m.State, m.Error = "failed", strings.Repeat("e", 1025) }), "error exceeds 1024 bytes"},
		{"finished of a bad run id", with(goodFinished(), func(m *wire.RunFinished) { m.Run = "" }), "finished: invalid run id"},
		// runs
		{"too many runs", manyRuns, "runs: more than 1000"},
		{"run listed twice", with(goodRuns(), func(m *wire.Runs) { m.Runs[1].Run = "run_1" }), "run run_1 is listed twice"},
		{"run requested", with(goodRuns(), func(m *wire.Runs) { m.Runs[1].State = "requested" }), `state "requested" is not running`},
		{"runs with a bad run id", with(goodRuns(), func(m *wire.Runs) { m.Runs[0].Run = "run/1" }), "runs: invalid run id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeAt(mustFrame(t, c.m.FrameType(), c.m), c.m.FrameType(), 2)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if _, err := wire.EncodeVersion(c.m, 2, now); err == nil {
				t.Fatal("a sender would send it")
			}
		})
	}
}

func TestActionRunFramesAreDecodedStrictly(t *testing.T) {
	cases := []struct {
		name  string
		typ   wire.Type // the frame's, or the one its sender may send
		frame string
		want  string
	}{
		{"unknown field in start", wire.TypeStart, `{"type":"start","body":{"run":"r1","action":"a","timeout_ms":1000,"command":"rm -rf /"}}`, `unknown field "command"`},
		{"unknown field in a parameter", wire.TypeActions, `{"type":"actions","body":{"actions":[{"name":"a","argv":["/bin/true"],"timeout_ms":0,"params":[{"name":"p","type":"bool","shell":true}]}]}}`, `unknown field "shell"`},
		{"value that is not a string", wire.TypeStart, `{"type":"start","body":{"run":"r1","action":"a","timeout_ms":1000,"params":{"n":1}}}`, "must be string"},
		{"seq that is negative", wire.TypeOutput, `{"type":"output","body":{"run":"r1","seq":-1,"stream":"stdout","data":"x"}}`, "must be uint64"},
		{"exit code that is not a number", wire.TypeFinished, `{"type":"finished","body":{"run":"r1","state":"failed","exit_code":"1","started":"2026-11-24T02:59:00Z","ended":"2026-11-24T02:59:00Z","last_seq":0,"dropped":0}}`, "must be int"},
		{"start with no body", wire.TypeStart, `{"type":"start"}`, "start frame has no body"},
		{"cancel from an agent", wire.TypeOutput, `{"type":"cancel","body":{"run":"r1"}}`, `unexpected frame type "cancel"`},
		{"output from the server", wire.TypeStart, `{"type":"output","body":{"run":"r1","seq":1,"stream":"stdout","data":"x"}}`, `unexpected frame type "output"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeAt([]byte(c.frame), c.typ, 2)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestRunsThatNeverRanFinishFailedWithAReason(t *testing.T) {
	for _, m := range []*wire.RunFinished{
		{Run: "r1", State: "failed", Started: now, Ended: now, Error: "action unknown on this host"},
		{Run: "r2", State: "failed", Started: now, Ended: now, Error: `parameter rejected: value "-rf" of path looks like an option`},
		{Run: "r3", State: "failed", Started: now.Add(-time.Hour), Ended: now, Error: "agent restarted"},
		{Run: "r4", State: "cancelled", ExitCode: ptr(-1), Started: now.Add(-time.Minute), Ended: now, LastSeq: 12},
		{Run: "r5", State: "timed_out", ExitCode: ptr(-1), Started: now.Add(-time.Minute), Ended: now, LastSeq: 4, Dropped: 1 << 20},
		{Run: "r6", State: "failed", ExitCode: ptr(2), Started: now.Add(-time.Second), Ended: now},
	} {
		if _, err := wire.EncodeVersion(m, 2, now); err != nil {
			t.Errorf("%s: %v", m.Run, err)
		}
	}
}

func TestCleanOutputIsAlwaysSendable(t *testing.T) {
	for _, b := range [][]byte{[]byte("ok\n"), {0xff, 0xfe, 'x'}, []byte("a\x00b"), {0xe2, 0x82}, []byte("\x1b[31mred\x1b[0m")} {
		s := wire.CleanOutput(b)
		if _, err := wire.EncodeVersion(&wire.RunOutput{Run: "r1", Seq: 1, Stream: wire.StreamStderr, Data: s}, 2, now); err != nil {
			t.Errorf("%q cleaned to %q: %v", b, s, err)
		}
	}
	if got := wire.CleanOutput([]byte("a\x00\xffb")); got != "a\uFFFD\uFFFDb" {
		t.Errorf("cleaned to %q", got)
	}
}

// The agent sends the declarations of its configuration, the server turns
// them back into the domain's: declarationOf and specOf are how.
func declarationOf(a aramaki.ActionSpec) wire.ActionDeclaration {
	d := wire.ActionDeclaration{Name: a.Name, Description: a.Description, Argv: a.Argv, Timeout: wire.Millis(a.Timeout), User: a.User}
	for _, p := range a.Params {
		d.Params = append(d.Params, wire.ActionParam{Name: p.Name, Type: string(p.Type), Description: p.Description,
			Pattern: p.Pattern, Min: p.Min, Max: p.Max, Values: p.Values, Default: p.Default})
	}
	return d
}

func specOf(d wire.ActionDeclaration) aramaki.ActionSpec {
	a := aramaki.ActionSpec{Name: d.Name, Description: d.Description, Argv: d.Argv, Timeout: d.Timeout.D(), User: d.User}
	for _, p := range d.Params {
		a.Params = append(a.Params, aramaki.Param{Name: p.Name, Type: aramaki.ParamType(p.Type), Description: p.Description,
			Pattern: p.Pattern, Min: p.Min, Max: p.Max, Values: p.Values, Default: p.Default})
	}
	return a
}

// This package repeats the domain's rules for actions; they must agree.
func TestDeclarationsFollowTheDomainsRules(t *testing.T) {
	if wire.MaxParams != aramaki.MaxParams || wire.MaxParamValue != aramaki.MaxParamValue || wire.MaxActionTimeout != aramaki.MaxActionTimeout {
		t.Fatal("the limits of actions differ from the domain's")
	}
	good := []aramaki.ActionSpec{
		{Name: "flush-cache", Argv: []string{"/usr/bin/varnishadm", "ban", "req.http.host == {host}"},
			Params: []aramaki.Param{{Name: "host", Type: aramaki.ParamString}}, Timeout: 30 * time.Second},
		{Name: "rotate", Argv: []string{"/usr/sbin/logrotate", "-f", "/etc/logrotate.d/{app}"}, User: "root",
			Params: []aramaki.Param{{Name: "app", Type: aramaki.ParamEnum, Values: []string{"nginx", "varnish"}, Default: ptr("nginx")}}},
		{Name: "scale", Description: "Set the worker count", Argv: []string{"/opt/app/bin/scale", "--workers={n}", "--drain={drain}"},
			Params: []aramaki.Param{
				{Name: "n", Type: aramaki.ParamInt, Min: ptr(int64(1)), Max: ptr(int64(64)), Default: ptr("4")},
				{Name: "drain", Type: aramaki.ParamBool, Default: ptr("false")},
				{Name: "note", Type: aramaki.ParamString, Pattern: `.{0,80}`, Default: ptr("")}}},
	}
	for _, a := range good {
		if err := a.Validate(); err != nil {
			t.Fatalf("fixture %s: %v", a.Name, err)
		}
		d := declarationOf(a)
		if err := d.Validate(); err != nil {
			t.Errorf("%s: the domain allows it, the wire refuses: %v", a.Name, err)
		}
		if back := specOf(d); !reflect.DeepEqual(back, a) {
			t.Errorf("%s does not come back the same: %+v", a.Name, back)
		}
	}
	base := good[0]
	var bad []aramaki.ActionSpec
	for _, change := range []func(*aramaki.ActionSpec){
		func(a *aramaki.ActionSpec) { a.Name = "" },
		func(a *aramaki.ActionSpec) { a.Name = "Flush" },
		func(a *aramaki.ActionSpec) { a.Argv = []string{"bin/x"} },
		func(a *aramaki.ActionSpec) { a.Argv = []string{"/bin/{host}"} },
		func(a *aramaki.ActionSpec) { a.Argv = []string{"/bin/x", "{nope}"} },
		func(a *aramaki.ActionSpec) { a.Timeout = 2 * time.Hour },
		func(a *aramaki.ActionSpec) { a.User = "Root" },
		func(a *aramaki.ActionSpec) { a.Params = []aramaki.Param{{Name: "host", Type: "float"}} },
		func(a *aramaki.ActionSpec) {
			a.Params = []aramaki.Param{{Name: "host", Type: aramaki.ParamString}, {Name: "host", Type: aramaki.ParamBool}}
		},
		func(a *aramaki.ActionSpec) {
			a.Params = []aramaki.Param{{Name: "host", Type: aramaki.ParamString, Default: ptr("-rf")}}
		},
		func(a *aramaki.ActionSpec) {
			a.Params = []aramaki.Param{{Name: "host", Type: aramaki.ParamString, Pattern: "(", Default: ptr("x")}}
		},
		func(a *aramaki.ActionSpec) {
			a.Params = []aramaki.Param{{Name: "host", Type: aramaki.ParamEnum, Values: []string{""}}}
		},
		func(a *aramaki.ActionSpec) {
			a.Params = []aramaki.Param{{Name: "host", Type: aramaki.ParamInt, Min: ptr(int64(5)), Max: ptr(int64(1))}}
		},
		func(a *aramaki.ActionSpec) {
			a.Params = []aramaki.Param{{Name: "host", Type: aramaki.ParamInt, Default: ptr("1e3")}}
		},
		func(a *aramaki.ActionSpec) {
			a.Params = []aramaki.Param{{Name: "host", Type: aramaki.ParamString, Pattern: ".*", Default: ptr("a\nb")}}
		},
	} {
		a := base
		a.Params = append([]aramaki.Param(nil), base.Params...)
		change(&a)
		bad = append(bad, a)
	}
	for _, a := range bad {
		derr, werr := a.Validate(), func() error { d := declarationOf(a); return d.Validate() }()
		if derr == nil || werr == nil {
			t.Errorf("%+v: the domain says %v, the wire %v", a, derr, werr)
		}
	}
}

// Run states travel as the domain names them; an agent reports only those
// of a run that is going or over.
func TestRunStatesAreTheDomains(t *testing.T) {
	for _, s := range []aramaki.RunState{aramaki.RunRequested, aramaki.RunAwaitingApproval, aramaki.RunRunning,
		aramaki.RunSucceeded, aramaki.RunFailed, aramaki.RunCancelled, aramaki.RunTimedOut} {
		f := goodFinished()
		f.State = string(s)
		if s != aramaki.RunSucceeded {
			f.ExitCode = ptr(1)
		}
		if err := f.Validate(now); (err == nil) != s.Final() {
			t.Errorf("finished %s: %v", s, err)
		}
		r := &wire.Runs{Runs: []wire.RunStatus{{Run: "r1", State: string(s)}}}
		if err := r.Validate(now); (err == nil) != (s.Final() || s == aramaki.RunRunning) {
			t.Errorf("runs %s: %v", s, err)
		}
	}
}
