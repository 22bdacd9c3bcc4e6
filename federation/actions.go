package federation

import (
	"fmt"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/wire"
)

// openAction decodes the body of an action or action_result message into
// what the service stores: a peer asks to run an action here, or says how
// a run of its system that this server asked for goes.
func openAction(m wire.PeerMessage, pm *service.PeerMessage) error {
	switch m.Kind {
	case wire.KindAction:
		a, err := wire.DecodePeerAction(m.Body)
		if err != nil {
			return fmt.Errorf("message %d: %w", m.Seq, err)
		}
		pm.Actions = append(pm.Actions, service.PeerAction{Run: a.Run, System: a.System, Action: a.Action, Params: a.Params,
			Reason: a.Reason, Requester: a.Requester, Requested: a.Requested})
	case wire.KindActionResult:
		r, err := wire.DecodePeerActionResult(m.Body)
		if err != nil {
			return fmt.Errorf("message %d: %w", m.Seq, err)
		}
		pm.ActionResults = append(pm.ActionResults, service.PeerActionResult{Run: r.Run, PeerRun: r.PeerRun, State: aramaki.RunState(r.State),
			HostsOK: r.HostsOK, HostsFailed: r.HostsFailed, Started: r.Started, Ended: r.Ended, Message: r.Message})
	default:
		return fmt.Errorf("message %d: %s is no kind of remote action", m.Seq, m.Kind)
	}
	return nil
}
