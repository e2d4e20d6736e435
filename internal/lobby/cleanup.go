package lobby

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Leaving a gatehouse target. A device commissioned at another Gatehouse
// got a single-use registration token there and, once it registered, a
// thing and a certificate. When the device is rerouted, rejected,
// decommissioned or factory-reset, the lobby undoes that at the target
// through its admin API, before it changes its own ledger:
//
//   - the registration token minted for the claim is revoked (a no-op if
//     it was used: it registers nothing more either way);
//   - if the device registered there (the token was used, or the target
//     confirmed its arrival), every certificate of its thing there that is
//     not revoked yet is revoked (reason 5, cessationOfOperation: the
//     device's key stays on the device, so deactivating is not enough), and
//     the thing is deleted. Deleted, not disabled: a device rerouted back to
//     the same target registers again under the same name, which an existing
//     thing would refuse; and nothing at the target is left that the lobby
//     would have to remember. A thing of that name that the token did not
//     register is somebody else's and is left alone.
//
// Every step is idempotent (a revoked certificate, a missing thing or
// token count as done), so a repeated operation repeats the cleanup
// harmlessly. If the target fails or cannot be reached, the operation
// fails with ErrRemote (502) and the ledger does not change: the device
// keeps its state and the operator tries again, or first repairs or
// updates the target. The cleanup is recorded on both sides: the target
// records its own events (registration_token.revoked, certificate.revoked,
// thing.deleted, by the lobby's API token), and the lobby records
// lobby.remote_cleaned in the same transaction as the operation.

// cleanupStates are the states in which a device may hold something at a
// gatehouse target.
var cleanupStates = []string{store.LobbyCommissioned, store.LobbyArrived}

// remoteCleanup is what leaving a gatehouse target did there.
type remoteCleanup struct {
	claims                 int64
	target, thingName      string
	registrationTokenID    string
	revokedCertificates    []string
	thingDeleted, ownThing bool
}

func (c *remoteCleanup) details() map[string]any {
	revoked := c.revokedCertificates
	if revoked == nil {
		revoked = []string{}
	}
	return map[string]any{"target": c.target, "thingName": c.thingName, "registrationTokenId": c.registrationTokenID,
		"revokedCertificates": revoked, "thingDeleted": c.thingDeleted}
}

// record adds the lobby.remote_cleaned event to l if c is for the claim l
// is changing.
func (c *remoteCleanup) record(l *ledger) {
	if c == nil || l.d.Claims != c.claims {
		return
	}
	l.events = append(l.events, event{"lobby.remote_cleaned", l.subject(), c.details()})
}

// leaveRemote undoes at its gatehouse target what device fp got there for
// its current claim, if the device is in one of states from (the states the
// operation about to run accepts). It returns nil when there is nothing to
// undo.
func (s *Service) leaveRemote(ctx context.Context, fp string, from ...string) (*remoteCleanup, error) {
	d, err := s.store.GetLobbyDevice(ctx, fp)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !contains(from, d.State) || !contains(cleanupStates, d.State) || d.ThingName == "" || d.Target == "" {
		return nil, nil
	}
	t, err := s.store.GetLobbyTarget(ctx, d.Target)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lobby: target %q: %w", d.Target, err)
	}
	if t.Kind != store.LobbyTargetGatehouse {
		return nil, nil
	}
	rc, err := s.remoteClient(t)
	if err != nil {
		return nil, err
	}
	c := &remoteCleanup{claims: d.Claims, target: t.Name, thingName: d.ThingName, ownThing: d.State == store.LobbyArrived}
	if c.registrationTokenID, err = s.commissionTokenID(ctx, fp); err != nil {
		return nil, err
	}
	if id := c.registrationTokenID; id != "" {
		var tok struct {
			Uses int64 `json:"uses"`
		}
		path := "/api/v1/registration-tokens/" + url.PathEscape(id)
		code, err := rc.status(ctx, http.MethodGet, path, nil, &tok, http.StatusOK, http.StatusNotFound)
		if err != nil {
			return nil, err
		}
		if code == http.StatusOK {
			c.ownThing = c.ownThing || tok.Uses > 0
			if err := rc.do(ctx, http.MethodDelete, path, nil, nil, http.StatusNoContent, http.StatusNotFound); err != nil {
				return nil, err
			}
		}
	}
	if !c.ownThing {
		return c, nil
	}
	// The thing's certificates, page by page.
	for after := ""; ; {
		var page struct {
			Items []struct {
				ID     string `json:"certificateId"`
				Status string `json:"status"`
			} `json:"items"`
			Next string `json:"next"`
		}
		q := url.Values{"thingName": {d.ThingName}, "limit": {"500"}}
		if after != "" {
			q.Set("after", after)
		}
		if err := rc.do(ctx, http.MethodGet, "/api/v1/certificates?"+q.Encode(), nil, &page, http.StatusOK); err != nil {
			return nil, err
		}
		for _, cert := range page.Items {
			if cert.Status == store.CertRevoked {
				continue
			}
			// 409: revoked meanwhile, which is what is wanted.
			code, err := rc.status(ctx, http.MethodPost, "/api/v1/certificates/"+url.PathEscape(cert.ID)+"/revoke",
				map[string]int{"reason": 5}, nil, http.StatusOK, http.StatusConflict, http.StatusNotFound)
			if err != nil {
				return nil, err
			}
			if code == http.StatusOK {
				c.revokedCertificates = append(c.revokedCertificates, cert.ID)
			}
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	code, err := rc.status(ctx, http.MethodDelete, "/api/v1/things/"+url.PathEscape(d.ThingName), nil, nil, http.StatusNoContent, http.StatusNotFound)
	if err != nil {
		return nil, err
	}
	c.thingDeleted = code == http.StatusNoContent
	s.log.InfoContext(ctx, "lobby: left gatehouse target", "certificateId", fp, "target", t.Name, "thingName", d.ThingName,
		"revokedCertificates", len(c.revokedCertificates), "thingDeleted", c.thingDeleted)
	return c, nil
}

// commissionTokenID is the id of the registration token minted for the
// last commissioning of fp at a gatehouse target ("" if none is recorded),
// read from the lobby's own events.
func (s *Service) commissionTokenID(ctx context.Context, fp string) (string, error) {
	evs, err := s.store.ListEvents(ctx, store.EventFilter{Type: "lobby.commissioned", Subject: "lobby/" + fp, Limit: 1000})
	if err != nil {
		return "", fmt.Errorf("lobby: events of %s: %w", fp, err)
	}
	if len(evs) == 0 {
		return "", nil
	}
	var det struct {
		ID string `json:"registrationTokenId"`
	}
	if err := json.Unmarshal(evs[len(evs)-1].Details, &det); err != nil {
		return "", fmt.Errorf("lobby: event %d: %w", evs[len(evs)-1].ID, err)
	}
	return det.ID, nil
}
