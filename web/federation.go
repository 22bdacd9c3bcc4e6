package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/wire"
)

// The federation page: this server's identity, its peers and the state of
// the links with them, the grants given and the systems of peers used
// here; and the forms to invite, accept, grant, revoke and remove. Every
// change goes through the service, which decides who may (global admins
// peer, admins of systems grant them) and records it on the timeline; the
// page only offers what the service would allow and shows its refusals.

// invitationTTLs are the lifetimes the invitation form offers; the second
// is the default.
var invitationTTLs = []struct {
	Name string
	D    time.Duration
}{{"1 hour", time.Hour}, {"24 hours", 24 * time.Hour}, {"7 days", aramaki.MaxInvitationTTL}}

// grantDurations are the lengths the grant form offers; the third is the
// default.
var grantDurations = []struct {
	Name string
	D    time.Duration
}{{"1 day", 24 * time.Hour}, {"7 days", 7 * 24 * time.Hour}, {"30 days", 30 * 24 * time.Hour}, {"90 days", 90 * 24 * time.Hour}, {"365 days", 365 * 24 * time.Hour}}

// keyView is one of this server's keys as the page shows it.
type keyView struct {
	ID, Fingerprint string
	Created         time.Time
	Retired         *time.Time
}

// peerView is a peer on the page, with its grants and its systems used
// here.
type peerView struct {
	service.PeerStatus
	Fingerprints []string
	// Dials is true when this server dials the peer (it accepted the
	// peer's invitation); otherwise the peer dials this server.
	Dials  bool
	Grants []grantView
	Used   []service.SystemView
	// Received are the grants the peer told this server it holds for it.
	Received []receivedView
}

// receivedView is a grant a peer holds for this server, on the page.
type receivedView struct {
	aramaki.ReceivedGrant
	Allow  string
	Active bool
}

// grantView is a grant on the page.
type grantView struct {
	aramaki.Grant
	Allow  string
	Active bool
}

// newInvitation is an invitation just made: its token is shown once.
type newInvitation struct {
	Name, Token, Server, Key string
	Expires                  time.Time
}

// grantForm is what the grant form sent, to fill it in again after a
// refusal.
type grantForm struct {
	Peer, System, Actions, Duration, Until string
	Events, Status                         bool
}

// federationMsg is what a form on the page brings back: a refusal, a
// token to show once.
type federationMsg struct {
	Error      string
	Form       string // which form the error is about: invite, accept, grant, revoke, peer
	Invitation *newInvitation
	Grant      grantForm
}

func (u *UI) federationPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Anonymous() {
		redirectToLogin(w, r)
		return nil
	}
	return u.renderFederation(w, r, s, http.StatusOK, federationMsg{})
}

func (u *UI) renderFederation(w http.ResponseWriter, r *http.Request, s *session, status int, msg federationMsg) error {
	ctx := r.Context()
	id, err := u.svc.Identity(ctx)
	if err != nil {
		return err
	}
	keys := make([]keyView, 0, len(id.Keys))
	for _, k := range id.Keys {
		keys = append(keys, keyView{ID: k.ID, Fingerprint: aramaki.KeyFingerprint(k.Public), Created: k.Created, Retired: k.Retired})
	}
	isAdmin := s.GlobalRole().AtLeast(aramaki.RoleAdmin)
	now := u.opts.Now()

	grants, err := u.svc.Grants(ctx, s.Principal, "")
	if err != nil {
		return err
	}
	slices.SortStableFunc(grants, func(a, b aramaki.Grant) int { return b.Created.Compare(a.Created) })
	grantsOf := map[string][]grantView{}
	var grantPeers []string // peers of grants, in the order first seen
	for _, g := range grants {
		if _, ok := grantsOf[g.Peer]; !ok {
			grantPeers = append(grantPeers, g.Peer)
		}
		grantsOf[g.Peer] = append(grantsOf[g.Peer], grantView{Grant: g, Allow: allowText(g), Active: g.Active(now)})
	}

	systems, err := u.svc.Systems(ctx, s.Principal, service.SystemFilter{})
	if err != nil {
		return err
	}
	usedOf := map[string][]service.SystemView{}
	var grantable []service.SystemView
	for _, sys := range systems {
		if sys.Peer != "" {
			usedOf[sys.Peer] = append(usedOf[sys.Peer], sys)
		} else if u.svc.MayGrant(s.Principal, sys.ID) {
			grantable = append(grantable, sys)
		}
	}

	received, err := u.svc.ReceivedGrants(ctx, s.Principal, "")
	if err != nil {
		return err
	}
	receivedOf := map[string][]receivedView{}
	for _, g := range received {
		receivedOf[g.Peer] = append(receivedOf[g.Peer], receivedView{ReceivedGrant: g,
			Allow: allowText(aramaki.Grant{Kinds: g.Kinds, Actions: g.Actions}), Active: g.Active(now)})
	}

	var peers, removed []peerView
	var activePeers []string
	if isAdmin {
		statuses, err := u.svc.PeerStatuses(ctx, s.Principal)
		if err != nil {
			return err
		}
		for _, ps := range statuses {
			v := peerView{PeerStatus: ps, Dials: ps.URL != "" && !strings.HasPrefix(ps.AddedBy, "invitation:")}
			for _, k := range ps.Keys {
				v.Fingerprints = append(v.Fingerprints, aramaki.KeyFingerprint(k.Public))
			}
			if ps.Removed != nil {
				removed = append(removed, v)
				continue
			}
			v.Grants, v.Used, v.Received = grantsOf[ps.Name], usedOf[ps.Name], receivedOf[ps.Name]
			delete(grantsOf, ps.Name)
			delete(usedOf, ps.Name)
			peers = append(peers, v)
			activePeers = append(activePeers, ps.Name)
		}
	}
	// What is left: grants and systems of peers this user cannot list
	// (not a global admin), or of removed peers.
	var others []peerView
	for _, name := range grantPeers {
		if gs, ok := grantsOf[name]; ok {
			v := peerView{Grants: gs, Used: usedOf[name], Received: receivedOf[name]}
			v.Name = name
			delete(usedOf, name)
			others = append(others, v)
		}
	}
	for name, used := range usedOf {
		v := peerView{Used: used, Received: receivedOf[name]}
		v.Name = name
		others = append(others, v)
	}
	slices.SortStableFunc(others, func(a, b peerView) int { return strings.Compare(a.Name, b.Name) })

	form := msg.Grant
	if form.Duration == "" {
		form.Duration = grantDurations[2].Name
	}
	if msg.Form != "grant" {
		form.Events, form.Status = true, true
	}
	u.render(w, r, status, "federation", s, map[string]any{
		"Name": u.serverName(), "URL": u.opts.PublicURL, "ServerID": id.ID, "Keys": keys,
		"IsAdmin": isAdmin, "Peers": peers, "Removed": removed, "Others": others, "ActivePeers": activePeers,
		"Grantable": grantable, "Form": form, "Durations": grantDurations, "TTLs": invitationTTLs,
		"Error": msg.Error, "ErrorForm": msg.Form, "Invitation": msg.Invitation,
	})
	return nil
}

// serverName is what this server calls itself to its peers, as the API
// says it.
func (u *UI) serverName() string {
	if wire.ValidPeerName(u.opts.ServerName) {
		return u.opts.ServerName
	}
	return "aramaki"
}

func allowText(g aramaki.Grant) string {
	parts := make([]string, 0, len(g.Kinds)+len(g.Actions))
	for _, k := range g.Kinds {
		parts = append(parts, string(k))
	}
	for _, a := range g.Actions {
		parts = append(parts, "action:"+a)
	}
	return strings.Join(parts, ", ")
}

// federationError shows a refusal on the federation page when people can
// do something about it; anything else is an error page.
func (u *UI) federationError(w http.ResponseWriter, r *http.Request, s *session, form string, err error, g grantForm) error {
	switch code := aramaki.ErrorCode(err); code {
	case aramaki.EINVALID, aramaki.EFORBIDDEN, aramaki.ECONFLICT, aramaki.ENOTFOUND, aramaki.EUNAVAILABLE, aramaki.EUNAUTHORIZED:
		return u.renderFederation(w, r, s, api.Status(code), federationMsg{Error: aramaki.ErrorMessage(err), Form: form, Grant: g})
	}
	return err
}

// createInvitation invites a server to become a peer and shows the token
// once.
func (u *UI) createInvitation(w http.ResponseWriter, r *http.Request, s *session) error {
	name := strings.TrimSpace(r.PostFormValue("name"))
	var ttl time.Duration
	for _, t := range invitationTTLs {
		if t.Name == r.PostFormValue("ttl") {
			ttl = t.D
		}
	}
	if ttl == 0 {
		return u.federationError(w, r, s, "invite", aramaki.Errorf(aramaki.EINVALID, "Choose how long the invitation is good for."), grantForm{})
	}
	// A token that cannot carry this server's URL and CA would only be in
	// the way: found out before the invitation is made. Only admins learn
	// why; others are refused by the service.
	if s.GlobalRole().AtLeast(aramaki.RoleAdmin) {
		if _, err := u.invitationToken(service.NewInvitation{Invitation: aramaki.Invitation{ID: "0000000000000000", Name: "probe", Expires: u.opts.Now().Add(time.Hour)},
			Secret: strings.Repeat("A", 43), Server: "srv_0000000000000000", Key: strings.Repeat("0", 64)}); err != nil {
			return u.federationError(w, r, s, "invite", err, grantForm{})
		}
	}
	inv, err := u.svc.CreateInvitation(r.Context(), s.Principal, name, ttl)
	if err != nil {
		return u.federationError(w, r, s, "invite", err, grantForm{})
	}
	tok, err := u.invitationToken(inv)
	if err != nil {
		return err
	}
	return u.renderFederation(w, r, s, http.StatusCreated, federationMsg{Invitation: &newInvitation{
		Name: inv.Name, Token: tok, Server: inv.Server, Key: inv.Key, Expires: inv.Expires,
	}})
}

// invitationToken is the token of an invitation: this server's URL and CA
// pin with the invitation, as the API makes it.
func (u *UI) invitationToken(inv service.NewInvitation) (string, error) {
	if u.opts.PublicURL == "" {
		return "", aramaki.Errorf(aramaki.EUNAVAILABLE, "this server does not know its public URL; start it with --public-url")
	}
	tok := wire.PeerInvitation{URL: u.opts.PublicURL, CASHA256: u.opts.CAFingerprint, Server: inv.Server, Key: inv.Key,
		Name: inv.Name, ID: inv.ID, Secret: inv.Secret, Expires: inv.Expires}
	s := tok.String()
	if _, err := wire.ParsePeerInvitation(s); err != nil {
		msg := err.Error()
		if werr, ok := err.(*wire.Error); ok {
			msg = werr.Msg
		}
		return "", aramaki.Errorf(aramaki.EUNAVAILABLE, "this server cannot invite peers with its public URL %s and CA: %s", u.opts.PublicURL, msg)
	}
	return s, nil
}

// acceptInvitation makes this server a peer of the server whose token is
// pasted.
func (u *UI) acceptInvitation(w http.ResponseWriter, r *http.Request, s *session) error {
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		return u.federationError(w, r, s, "accept", aramaki.Errorf(aramaki.EINVALID, "Paste the invitation token the other server's operator made."), grantForm{})
	}
	peer, err := u.svc.AcceptInvitation(r.Context(), s.Principal, token, strings.TrimSpace(r.PostFormValue("name")))
	if err != nil {
		return u.federationError(w, r, s, "accept", err, grantForm{})
	}
	u.log.Info("this server became a peer", "peer", peer.Name, "server", peer.Server, "url", peer.URL, "by", s.User)
	http.Redirect(w, r, "/peers#peer-"+url.PathEscape(peer.Name), http.StatusSeeOther)
	return nil
}

// removePeer ends a peering, once the box saying so is ticked.
func (u *UI) removePeer(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	if r.PostFormValue("confirm") != "1" {
		return u.federationError(w, r, s, "peer", aramaki.Errorf(aramaki.EINVALID, "Tick the box to confirm that the peering with %s ends.", clip(name, 63)), grantForm{})
	}
	if err := u.svc.RemovePeer(r.Context(), s.Principal, name); err != nil {
		return u.federationError(w, r, s, "peer", err, grantForm{})
	}
	http.Redirect(w, r, "/peers", http.StatusSeeOther)
	return nil
}

// createGrant lets a peer use a system until a time.
func (u *UI) createGrant(w http.ResponseWriter, r *http.Request, s *session) error {
	f := grantForm{Peer: strings.TrimSpace(r.PostFormValue("peer")), System: r.PostFormValue("system"),
		Actions: r.PostFormValue("actions"), Duration: r.PostFormValue("duration"), Until: strings.TrimSpace(r.PostFormValue("until")),
		Events: r.PostFormValue("events") != "", Status: r.PostFormValue("status") != ""}
	refuse := func(err error) error { return u.federationError(w, r, s, "grant", err, f) }
	var allow []string
	if f.Events {
		allow = append(allow, string(aramaki.GrantEvents))
	}
	if f.Status {
		allow = append(allow, string(aramaki.GrantStatus))
	}
	for _, a := range strings.FieldsFunc(f.Actions, func(r rune) bool { return r == ',' || r == ' ' }) {
		allow = append(allow, "action:"+strings.TrimPrefix(a, "action:"))
	}
	if len(allow) == 0 {
		return refuse(aramaki.Errorf(aramaki.EINVALID, "a grant must allow something: events, status or an action"))
	}
	kinds, actions, err := aramaki.ParseAllow(strings.Join(allow, ","))
	if err != nil {
		return refuse(err)
	}
	var until time.Time
	if f.Until != "" {
		if until = parseFormTime(f.Until); until.IsZero() {
			return refuse(aramaki.Errorf(aramaki.EINVALID, "The end %q is not a time like 2030-01-31 18:00.", clip(f.Until, 40)))
		}
	} else {
		for _, d := range grantDurations {
			if d.Name == f.Duration {
				until = u.opts.Now().Add(d.D)
			}
		}
		if until.IsZero() {
			return refuse(aramaki.Errorf(aramaki.EINVALID, "Choose how long the grant lasts, or when it ends."))
		}
	}
	g, err := u.svc.CreateGrant(r.Context(), s.Principal, service.GrantRequest{Peer: f.Peer, Systems: []string{f.System}, Kinds: kinds, Actions: actions, Until: until})
	if err != nil {
		return refuse(err)
	}
	http.Redirect(w, r, "/peers#grant-"+url.PathEscape(g.ID), http.StatusSeeOther)
	return nil
}

// revokeGrant ends a grant at once.
func (u *UI) revokeGrant(w http.ResponseWriter, r *http.Request, s *session) error {
	g, err := u.svc.RevokeGrant(r.Context(), s.Principal, r.PathValue("id"))
	if err != nil {
		return u.federationError(w, r, s, "revoke", err, grantForm{})
	}
	http.Redirect(w, r, "/peers#grant-"+url.PathEscape(g.ID), http.StatusSeeOther)
	return nil
}

// clip shortens what people typed for a message.
func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
