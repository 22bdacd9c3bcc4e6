package action

import (
	"os/user"
	"strconv"
	"testing"

	"github.com/aramaki/aramaki"
)

// An agent that is not root cannot become another user, and says so rather
// than run the action as itself. (Run as root, the tests cannot be that
// agent, so this one asks the rule directly.)
func TestAnAgentThatIsNotRootRefusesActionsOfOtherUsers(t *testing.T) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	spec := aramaki.ActionSpec{Name: "flush", Argv: []string{"/usr/bin/varnishadm"}, User: "nobody"}

	_, err = credential(spec, uid+1)
	if aramaki.ErrorCode(err) != aramaki.EFORBIDDEN || aramaki.ErrorMessage(err) !=
		"action flush runs as user nobody, and the agent (uid "+strconv.Itoa(uid+1)+") is not root and cannot become another user" {
		t.Fatalf("got %v", err)
	}
	// The agent's own user needs no switch.
	if cred, err := credential(spec, uid); cred != nil || err != nil {
		t.Fatalf("as nobody itself: %+v, %v", cred, err)
	}
	if cred, err := credential(aramaki.ActionSpec{Name: "flush"}, uid+1); cred != nil || err != nil {
		t.Fatalf("without a user: %+v, %v", cred, err)
	}
	// Root switches, to the user's groups too.
	cred, err := credential(spec, 0)
	if err != nil || cred == nil || int(cred.Uid) != uid || strconv.Itoa(int(cred.Gid)) != nobody.Gid {
		t.Fatalf("as root: %+v, %v", cred, err)
	}
}
