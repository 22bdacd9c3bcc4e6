package service

import (
	"context"
	"time"

	"github.com/aramaki/aramaki"
)

// Store is what the service needs of persistence. Each method is one
// transaction; a method that takes an audit event appends it in the same
// transaction as the change it records, so no mutation goes unaudited.
// Errors carry aramaki error codes (ENOTFOUND, ECONFLICT, ...).
type Store interface {
	// Systems returns the systems of the config in force, ordered by id.
	Systems(ctx context.Context) ([]aramaki.System, error)
	ConfigState(ctx context.Context) (aramaki.ConfigState, error)
	// ApplyConfig replaces all systems with the snapshot's, records its
	// commit as applied (clearing a rejection) and appends ev. When that
	// commit is already the applied one it changes nothing and returns false.
	ApplyConfig(ctx context.Context, snap aramaki.ConfigSnapshot, ev aramaki.Event) (bool, error)
	// RejectConfig records a refused commit with its problems and appends ev.
	// When that commit is already recorded as rejected (or applied) it
	// changes nothing and returns false.
	RejectConfig(ctx context.Context, c aramaki.Commit, problems []string, ev aramaki.Event) (bool, error)
	// MarkConfigChecked records when the repository was last read.
	MarkConfigChecked(ctx context.Context, at time.Time) error

	// AppendEvent stores an event; an event whose id is already stored is
	// ignored and false returned.
	AppendEvent(ctx context.Context, ev aramaki.Event) (bool, error)
	Event(ctx context.Context, id string) (aramaki.Event, error)
	Timeline(ctx context.Context, q aramaki.TimelineQuery) (aramaki.TimelinePage, error)

	// Bootstrap creates the first user as a global admin with an API token,
	// in one transaction. It fails with ECONFLICT when any user exists.
	Bootstrap(ctx context.Context, name, passwordHash string, tok aramaki.Token, secretHash []byte, audit aramaki.Event) (aramaki.User, error)
	CreateUser(ctx context.Context, name, passwordHash string, audit aramaki.Event) (aramaki.User, error)
	// SetUserEmail sets or clears a user's e-mail address, with the audit event.
	SetUserEmail(ctx context.Context, name, email string, audit aramaki.Event) error
	// UserByName returns the user and the password hash.
	UserByName(ctx context.Context, name string) (aramaki.User, string, error)
	UserByID(ctx context.Context, id int64) (aramaki.User, error)
	Users(ctx context.Context) ([]aramaki.User, error)
	SetPassword(ctx context.Context, userID int64, passwordHash string, audit aramaki.Event) error
	// SetUserDisabled disables (deleting every token) or enables a user.
	SetUserDisabled(ctx context.Context, name string, disabled bool, audit aramaki.Event) error

	CreateToken(ctx context.Context, t aramaki.Token, secretHash []byte, audit aramaki.Event) error
	// TokenByID returns the token and the hash of its secret.
	TokenByID(ctx context.Context, id string) (aramaki.Token, []byte, error)
	// TokenPrincipal returns the token with the hash of its secret, its user
	// and the user's role bindings, in one read.
	TokenPrincipal(ctx context.Context, id string) (aramaki.Token, []byte, aramaki.User, []aramaki.RoleBinding, error)
	Tokens(ctx context.Context, userID int64) ([]aramaki.Token, error)
	DeleteToken(ctx context.Context, userID int64, id string, audit aramaki.Event) error

	// GrantRole adds or replaces the role of b.User on b.System.
	GrantRole(ctx context.Context, b aramaki.RoleBinding, audit aramaki.Event) error
	RevokeRole(ctx context.Context, user, system string, audit aramaki.Event) error
	// RoleBindings returns the API-granted roles of a user, or of everyone
	// when user is empty, ordered by user and system.
	RoleBindings(ctx context.Context, user string) ([]aramaki.RoleBinding, error)

	MonitoringStore
}

// MonitoringStore is what the service needs of persistence for agents and
// checks. It is part of Store; it stands apart to be read on its own.
type MonitoringStore interface {
	// CreateEnrollmentToken stores a new token with the hash of its secret.
	CreateEnrollmentToken(ctx context.Context, t aramaki.EnrollmentToken, secretHash []byte, audit aramaki.Event) error
	// Enroll spends an enrollment token and creates the agent, in one
	// transaction: the token must exist, match secretHash, be unused and
	// not expired at a.Enrolled; else EUNAUTHORIZED (the same error for
	// every reason, so that probing learns nothing). The agent gets the
	// token's systems. audit is built by the caller from the token.
	Enroll(ctx context.Context, tokenID string, secretHash []byte, a aramaki.Agent, audit func(aramaki.EnrollmentToken) (aramaki.Event, error)) (aramaki.Agent, error)
	EnrollmentTokens(ctx context.Context) ([]aramaki.EnrollmentToken, error)
	Agent(ctx context.Context, id string) (aramaki.Agent, error)
	Agents(ctx context.Context) ([]aramaki.Agent, error)
	// RevokeAgent marks an agent revoked at the audit event's time and
	// deletes its check states; ENOTFOUND for unknown agents, ECONFLICT when
	// it is revoked already.
	RevokeAgent(ctx context.Context, id string, audit aramaki.Event) error
	// TouchAgents records when agents were last heard from (and the version
	// they run, when not empty), many at once.
	TouchAgents(ctx context.Context, seen []aramaki.AgentSeen) error
	SetFacts(ctx context.Context, f aramaki.Facts) error
	// Facts returns an agent's latest facts; ENOTFOUND when it sent none.
	Facts(ctx context.Context, agentID string) (aramaki.Facts, error)

	// RecordResults stores batches of results, from one or many agents, in
	// one transaction. For each agent, results with Seq not above its
	// LastSeq are duplicates and ignored; the agent's LastSeq becomes the
	// highest Seq stored. (Results with Seq 0 are the server's own — the
	// keepalive check — and skip that.) Each result updates its check's
	// state; when the status differs from the state's (or there was none)
	// the change is stored in the history and the event that changeEvent
	// makes of it is appended. It returns the LastSeq of each batch's agent,
	// in batch order, after the commit.
	RecordResults(ctx context.Context, batches []aramaki.ResultBatch, changeEvent func(aramaki.StatusChange) (aramaki.Event, error)) ([]uint64, error)
	// CheckStates returns the current states of the checks on the systems
	// (all systems when nil), ordered by system, check, agent.
	CheckStates(ctx context.Context, systems []string) ([]aramaki.CheckState, error)
	// StatusChanges returns the history of one check on a system (of every
	// agent), oldest first, from since on — plus the last change before
	// since, so that the status at since is known.
	StatusChanges(ctx context.Context, system, check string, since time.Time) ([]aramaki.StatusChange, error)
	// CheckDays returns the day summaries of every check of a system from
	// the day of since on, plus the newest one before it of each check and
	// agent.
	CheckDays(ctx context.Context, system string, since time.Time) ([]aramaki.CheckDay, error)
	// ProcessAlerts decides up to limit pending checks' alerts after the
	// queue sequence after, in one transaction, and returns how many it
	// took and the last sequence.
	ProcessAlerts(ctx context.Context, after int64, limit int, now time.Time, groupWait time.Duration, decide func(aramaki.AlertInput) (aramaki.AlertOutput, error)) (int, int64, error)
	// Alerts returns alerts, newest first.
	Alerts(ctx context.Context, f aramaki.AlertFilter) ([]aramaki.Alert, error)
	// Alert returns one alert with its notes; ENOTFOUND if there is none.
	Alert(ctx context.Context, id string) (aramaki.Alert, []aramaki.AlertNote, error)
	// ChangeAlert applies a person's change to an alert in one transaction.
	ChangeAlert(ctx context.Context, id string, change func(aramaki.Alert) (aramaki.Alert, aramaki.AlertNote, aramaki.Event, error)) (aramaki.Alert, error)
	// PlanNotifications plans the notifications of due alert groups in one
	// transaction and returns how many groups it took.
	PlanNotifications(ctx context.Context, now time.Time, limit int, plan func([]aramaki.PlanGroup, []aramaki.Silence) (aramaki.PlanOutput, error)) (int, error)
	// ClaimNotifications leases due notifications for sending.
	ClaimNotifications(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]aramaki.Notification, error)
	// FinishAttempt records a delivery attempt and the notification's new
	// state; failure, when set, is the alert to raise for giving up.
	FinishAttempt(ctx context.Context, nt aramaki.Notification, at aramaki.DeliveryAttempt, failure *aramaki.Alert, failed func(aramaki.Alert) (aramaki.Event, error)) error
	// Notifications returns notifications, newest first, of a group or all.
	Notifications(ctx context.Context, group string, limit int) ([]aramaki.Notification, error)
	// Silences returns the silences not over at now.
	Silences(ctx context.Context, now time.Time) ([]aramaki.Silence, error)
	// CreateSilence stores a silence and the event ev makes of it.
	CreateSilence(ctx context.Context, sl aramaki.Silence, ev func(aramaki.Silence) (aramaki.Event, error)) (aramaki.Silence, error)
	// EndSilence changes a silence (ends it, or marks it reminded) in one
	// transaction with its event.
	EndSilence(ctx context.Context, id string, change func(aramaki.Silence) (aramaki.Silence, aramaki.Event, error)) (aramaki.Silence, error)
	// RemindSilence marks a silence's creator reminded, with the event and
	// notifications, unless that was done already.
	RemindSilence(ctx context.Context, id string, ev aramaki.Event, notifications []aramaki.Notification) (bool, error)
	// DueSilences returns silences run out but not marked ended, and those
	// ending before remindBy not yet reminded.
	DueSilences(ctx context.Context, now, remindBy time.Time) ([]aramaki.Silence, error)
	// ChangeCounts returns the noisiest checks under systems since a time.
	ChangeCounts(ctx context.Context, systems []string, since time.Time, limit int) ([]aramaki.CheckChanges, error)
	// DigestSent returns when a recipient's review digest was last queued.
	DigestSent(ctx context.Context, recipient string) (time.Time, error)
	// QueueDigest puts a digest's notifications in the outbox and notes
	// when, unless it was queued at or after since; ev is appended unless
	// its id is empty.
	QueueDigest(ctx context.Context, recipient string, since, at time.Time, notifications []aramaki.Notification, ev aramaki.Event) (bool, error)
	// SetAgentActions records the actions an agent's host allows, with
	// the events of a change.
	SetAgentActions(ctx context.Context, agentID string, actions []aramaki.ActionSpec, events func(before []aramaki.ActionSpec) ([]aramaki.Event, error)) error
	// CreateRun stores a new run with its hosts, events and notifications.
	CreateRun(ctx context.Context, run aramaki.Run, events func(aramaki.Run) ([]aramaki.Event, []aramaki.Notification, error)) (aramaki.Run, error)
	// CreatePeerRun stores a run of a peer's system with its events and,
	// in the same transaction, the message asking the peer (run.Peer) to
	// run it, queued in its outbox.
	CreatePeerRun(ctx context.Context, run aramaki.Run, at time.Time, events func(aramaki.Run) ([]aramaki.Event, aramaki.OutboxMessage, error)) (aramaki.Run, error)
	// Run returns a run with its hosts' output; ENOTFOUND if there is none.
	Run(ctx context.Context, id string) (aramaki.Run, error)
	// ChangeRun moves a run on in one transaction, one change at a time.
	ChangeRun(ctx context.Context, id string, change func(aramaki.Run) (aramaki.Run, []aramaki.Event, error)) (aramaki.Run, error)
	// AppendRunOutput adds a host's output frame to its run, once.
	AppendRunOutput(ctx context.Context, id, agentID string, seq uint64, data string) error
	// Runs returns runs, newest first, without output.
	Runs(ctx context.Context, f aramaki.RunFilter) ([]aramaki.Run, error)
	// WaitingTargets returns the parts of running runs not yet started on
	// the given agents.
	WaitingTargets(ctx context.Context, agents []string) ([]aramaki.RunStart, error)
	// ServerIdentity returns this server's identity, made with fresh when there is none.
	ServerIdentity(ctx context.Context, fresh func() (string, aramaki.ServerKey, error)) (aramaki.ServerIdentity, error)
	// RotateServerKey makes a key the current one, retiring the one
	// before, which endorses it.
	RotateServerKey(ctx context.Context, key aramaki.ServerKey, endorse func(prev aramaki.ServerKey) ([]byte, aramaki.Event, error)) ([]aramaki.ServerKey, error)
	// CreateInvitation stores an invitation to become a peer.
	CreateInvitation(ctx context.Context, inv aramaki.Invitation, ev aramaki.Event) error
	// UseInvitation checks and uses an invitation, storing the peer it makes.
	UseInvitation(ctx context.Context, id string, now time.Time, check func(secretHash []byte) bool, peer aramaki.Peer,
		events func(aramaki.Peer) ([]aramaki.Event, error)) (aramaki.Peer, error)
	// AddPeer stores a peer this server joined.
	AddPeer(ctx context.Context, p aramaki.Peer, ev aramaki.Event) error
	// Peers returns the peers, removed ones too.
	Peers(ctx context.Context) ([]aramaki.Peer, error)
	// RemovePeer ends a peering and revokes its grants.
	RemovePeer(ctx context.Context, name, by string, ev aramaki.Event) error
	// CreateGrant stores a grant to a peer.
	CreateGrant(ctx context.Context, g aramaki.Grant, ev func(aramaki.Grant) (aramaki.Event, error)) (aramaki.Grant, error)
	// Grants returns the grants to a peer, or all.
	Grants(ctx context.Context, peer string) ([]aramaki.Grant, error)
	// Grant returns a grant.
	Grant(ctx context.Context, id string) (aramaki.Grant, error)
	// RevokeGrant ends a grant.
	RevokeGrant(ctx context.Context, id, by string, ev aramaki.Event) error
	// WithholdOutbox deletes messages from a peer's outbox for good.
	WithholdOutbox(ctx context.Context, peer string, msgs []aramaki.WithheldMessage) error
	// DialLeases returns which of the peers this replica is to dial,
	// taking their leases, and lets go of the others'.
	DialLeases(ctx context.Context, peers []string) (map[string]bool, error)
	// ReleaseDialLease lets go of a peer's dial lease, and reports whether
	// it held one another replica may take.
	ReleaseDialLease(ctx context.Context, peer string) bool
	// AppendEventNotifying appends an event with the notifications it makes.
	AppendEventNotifying(ctx context.Context, ev aramaki.Event, nts []aramaki.Notification) error
	// PeerByServer returns the peer with a server id.
	PeerByServer(ctx context.Context, server string) (aramaki.Peer, error)
	// Peer returns the peer with a name.
	Peer(ctx context.Context, name string) (aramaki.Peer, error)
	// AddPeerKeys records keys a peer showed this server after it rotated.
	AddPeerKeys(ctx context.Context, server string, keys []aramaki.PeerKey, ev func(added []aramaki.PeerKey) (aramaki.Event, error)) ([]aramaki.PeerKey, error)
	// ShareStatus queues a shared system's status for a peer when it changed.
	ShareStatus(ctx context.Context, peer, system string, status aramaki.Status, body []byte, at time.Time) (bool, error)
	// RemoteStatuses returns what peers last told of their systems used here.
	RemoteStatuses(ctx context.Context, systems []string) (map[string]aramaki.RemoteStatus, error)
	// TellGrants queues the grants in force for a peer when they changed
	// (digest) since it was told.
	TellGrants(ctx context.Context, peer, digest string, body []byte, at time.Time) (bool, error)
	// ReceivedGrants returns the grants peers told this server they hold
	// for it: of one peer, or ("") of all.
	ReceivedGrants(ctx context.Context, peer string) ([]aramaki.ReceivedGrant, error)
	// PeerLink returns where the exchange with a peer stands.
	PeerLink(ctx context.Context, peer string) (aramaki.PeerLink, error)
	// FillOutbox moves a peer's outbox on over the timeline.
	FillOutbox(ctx context.Context, peer string, limit int, at time.Time, pick func([]aramaki.Event) ([]aramaki.OutboxMessage, error)) (int, error)
	// Outbox returns a peer's messages after a seq.
	Outbox(ctx context.Context, peer string, after uint64, limit int) ([]aramaki.OutboxMessage, error)
	// AckOutbox forgets a peer's messages up to a seq.
	AckOutbox(ctx context.Context, peer string, seq uint64) error
	// ReceiveFromPeer stores a peer's messages, each once, in order.
	ReceiveFromPeer(ctx context.Context, peer string, msgs []aramaki.ReceivedMessage) (uint64, error)
	// AgentsNamed returns the agents with the names given.
	AgentsNamed(ctx context.Context, names []string) ([]aramaki.Agent, error)
	// StartTargets marks the waiting parts of runs given as started, in
	// one transaction, and returns those that were still waiting.
	StartTargets(ctx context.Context, starts []aramaki.RunStart, at time.Time) ([]aramaki.RunStart, error)
	// RunPoints returns the finished runs of an action on a system since a time.
	RunPoints(ctx context.Context, system, action string, since time.Time) ([]aramaki.RunPoint, error)
	// CreateWorkflowRun stores a new workflow run with its events and notifications.
	CreateWorkflowRun(ctx context.Context, w aramaki.WorkflowRun, events func(aramaki.WorkflowRun) ([]aramaki.Event, []aramaki.Notification, error)) (aramaki.WorkflowRun, error)
	// WorkflowRun returns a workflow run; ENOTFOUND if there is none.
	WorkflowRun(ctx context.Context, id string) (aramaki.WorkflowRun, error)
	// WorkflowRuns returns workflow runs, newest first.
	WorkflowRuns(ctx context.Context, f aramaki.WorkflowRunFilter) ([]aramaki.WorkflowRun, error)
	// ChangeWorkflowRun moves a workflow run on in one transaction, with
	// the runs it starts, one change at a time.
	ChangeWorkflowRun(ctx context.Context, id string, change func(aramaki.WorkflowRun, []aramaki.Run) (aramaki.WorkflowChange, error),
		runEvents func(aramaki.Run) ([]aramaki.Event, error)) (aramaki.WorkflowRun, error)
	// Notifiers returns the notifiers of the config commit in force.
	Notifiers(ctx context.Context) ([]aramaki.Notifier, error)
	// Results returns the newest results of a check on a system, newest first.
	Results(ctx context.Context, system, check string, limit int) ([]aramaki.CheckResult, error)
	// DeleteCheckStates forgets the states of checks that are no longer
	// declared: those of the systems not in keep, or whose check is not in
	// keep[system]. The keepalive check is never forgotten this way.
	DeleteCheckStates(ctx context.Context, keep map[string][]string) error
	// Prune deletes results received before resultsBefore and status
	// changes before historyBefore (keeping the last change of each check).
	Prune(ctx context.Context, resultsBefore, historyBefore time.Time) error
	// PruneAlerts deletes resolved alerts, done notifications and silences
	// over before a time.
	PruneAlerts(ctx context.Context, before time.Time) error
}

// ConfigSource reads the config repository.
type ConfigSource interface {
	// Load fetches the newest commit and parses it. A broken commit is not
	// an error: Load returns its Commit with the list of problems (each
	// "file:line: message") and no systems. The error is for failures to
	// reach or read the repository at all.
	Load(ctx context.Context) (aramaki.ConfigSnapshot, []string, error)
}
