package lobby

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Seen records that a manufacturer-certified device opened a lobby
// session: a new device is knocking; a pre-claimed one learns its
// certificate and is commissioned at once. Rejected and decommissioned
// devices are refused with ErrState.
func (s *Service) Seen(ctx context.Context, dev *certs.ManufacturerDevice) (*store.LobbyDevice, error) {
	return s.seen(ctx, dev, "")
}

// seen is Seen for a session of protocol ("" native, ProtocolAWS).
func (s *Service) seen(ctx context.Context, dev *certs.ManufacturerDevice, protocol string) (*store.LobbyDevice, error) {
	chain, err := s.localChain(ctx)
	if err != nil {
		return nil, err
	}
	var remote bool
	out, err := s.update(ctx, dev.Fingerprint, true, func(l *ledger) error {
		defer func() { remote = l.remote }()
		d := l.d
		now := s.now()
		switch d.State {
		case store.LobbyRejected, store.LobbyDecommissioned:
			return stateErr(d, "admit")
		}
		d.LastSeenAt = now
		if d.CertificatePEM != "" {
			if protocol != "" && lobbyPoliciesAttached(d.State) {
				// A ledger entry from before the AWS protocol policy
				// existed gains it.
				return l.attachLobbyPolicy()
			}
			return nil
		}
		d.CertificatePEM = string(pki.EncodeCertificatesPEM(dev.Leaf))
		d.CommonName, d.CA, d.FirstSeenAt = dev.CommonName, dev.CA, now
		if err := l.attachLobbyPolicy(); err != nil {
			return err
		}
		if l.isNew {
			return l.move(store.LobbyKnocking, "lobby.seen", "", withProtocol(map[string]any{"ca": dev.CA, "commonName": dev.CommonName}, protocol))
		}
		if d.State == store.LobbyClaimed {
			return s.commission(l, chain)
		}
		return nil
	})
	if err == nil && remote {
		s.commissionRemoteLater(ctx, dev.Fingerprint)
	}
	return out, err
}

// Knock is a device's knock message: its own state and configuration. A
// knocking device enters the lobby; a commissioned or arrived one gets its
// assignment again (returned, and re-published).
func (s *Service) Knock(ctx context.Context, fingerprint, deviceState, deviceConfig string) (*store.LobbyDevice, error) {
	return s.knock(ctx, fingerprint, deviceState, deviceConfig, "")
}

// knock is Knock over protocol ("" native, ProtocolAWS).
func (s *Service) knock(ctx context.Context, fingerprint, deviceState, deviceConfig, protocol string) (*store.LobbyDevice, error) {
	var remote, verify bool
	out, err := s.update(ctx, fingerprint, false, func(l *ledger) error {
		defer func() { remote, verify = l.remote, l.verify }()
		d := l.d
		if d.CertificatePEM == "" {
			return stateErr(d, "knock for")
		}
		d.DeviceState, d.DeviceConfig, d.LastSeenAt = deviceState, deviceConfig, s.now()
		switch d.State {
		case store.LobbyKnocking:
			return l.move(store.LobbyInLobby, "lobby.knocked", "", withProtocol(map[string]any{"deviceState": deviceState}, protocol))
		case store.LobbyClaimed:
			// A gatehouse target that failed before is tried again.
			l.remote = d.CommissionedClaim != d.Claims
		case store.LobbyCommissioned:
			if deviceState == ArrivedState {
				return s.reportedArrival(l)
			}
			s.deliverLater(l)
		case store.LobbyArrived:
			s.deliverLater(l)
		case store.LobbyRejected, store.LobbyDecommissioned:
			return stateErr(d, "knock for")
		}
		return nil
	})
	if err == nil && remote {
		s.commissionRemoteLater(ctx, fingerprint)
	}
	if err == nil && verify {
		s.verifyArrivalLater(ctx, fingerprint)
	}
	return out, err
}

// ArrivedState is the knock state with which a device reports that it
// logged in at a target this Gatehouse does not see (an MQTT broker,
// another Gatehouse). A local target sees the login itself.
const ArrivedState = "arrived"

// reportedArrival takes a device's word that it arrived at a remote
// target.
func (s *Service) reportedArrival(l *ledger) error {
	t, err := l.tx.GetLobbyTarget(l.ctx, l.d.Target)
	if err != nil {
		return fmt.Errorf("lobby: target %q: %w", l.d.Target, err)
	}
	switch t.Kind {
	case store.LobbyTargetLocal:
		s.deliverLater(l) // arrival here is the login, not a claim
		return nil
	case store.LobbyTargetGatehouse:
		l.verify = true // asked at the target, outside the transaction
		return nil
	}
	// The lobby policy stays: the report comes over the lobby session, and
	// detaching would cut it off before the device has its PUBACK. The
	// certificate is not registered here, so the policy grants nothing
	// beyond the device's own lobby topics.
	l.d.LastSeenAt = s.now()
	return l.move(store.LobbyArrived, "lobby.arrived", "", map[string]any{"reportedBy": "device", "kind": t.Kind})
}

// PreClaim claims a device before it was ever seen; it is Claim.
func (s *Service) PreClaim(ctx context.Context, req ClaimRequest) (*store.LobbyDevice, error) {
	return s.Claim(ctx, req)
}

// Claim routes a device (by fingerprint or QR payload) to a target. A
// device never seen is pre-claimed; a known one is commissioned in the same
// transaction and receives its assignment.
func (s *Service) Claim(ctx context.Context, req ClaimRequest) (*store.LobbyDevice, error) {
	return s.route(ctx, req, "claim", true, store.LobbyKnocking, store.LobbyInLobby)
}

// Reroute sends a claimed, commissioned or arrived device to another
// target. A device that was commissioned here loses its local certificate
// (deactivated: it is disconnected and goes back to its lobby session).
func (s *Service) Reroute(ctx context.Context, req ClaimRequest) (*store.LobbyDevice, error) {
	return s.route(ctx, req, "reroute", false, store.LobbyClaimed, store.LobbyCommissioned, store.LobbyArrived)
}

func (s *Service) route(ctx context.Context, req ClaimRequest, op string, create bool, from ...string) (*store.LobbyDevice, error) {
	fp, err := ParseQR(req.Device)
	if err != nil {
		return nil, err
	}
	if req.ThingName != "" {
		if !registry.ValidName(req.ThingName) {
			return nil, fmt.Errorf("%w: thingName %q: use 1 to 128 of a-z A-Z 0-9 : _ -", ErrInvalid, req.ThingName)
		}
	}
	target, err := s.store.GetLobbyTarget(ctx, req.Target)
	if err != nil {
		return nil, fmt.Errorf("lobby: target %q: %w", req.Target, err)
	}
	chain, err := s.localChain(ctx)
	if err != nil {
		return nil, err
	}
	var left *remoteCleanup
	if op == "reroute" {
		if left, err = s.leaveRemote(ctx, fp, from...); err != nil {
			return nil, err
		}
	}
	var remote bool
	d, err := s.update(ctx, fp, create, func(l *ledger) error {
		defer func() { remote = l.remote }()
		d := l.d
		if !l.isNew && !contains(from, d.State) {
			return stateErr(d, op)
		}
		if !l.isNew && op == "reroute" {
			if err := s.leaveLocal(l); err != nil {
				return err
			}
			left.record(l)
		}
		d.Target, d.ClaimConfig, d.Claims, d.Assignment, d.AssignmentSecret = target.Name, req.Config, d.Claims+1, "", nil
		if req.ThingName != "" {
			d.ThingName = req.ThingName
		}
		typ := "lobby.claimed"
		switch {
		case l.isNew:
			typ = "lobby.preclaimed"
		case op == "reroute":
			typ = "lobby.rerouted"
		}
		if err := l.move(store.LobbyClaimed, typ, "", nil); err != nil {
			return err
		}
		if d.CertificatePEM == "" {
			return nil // commissioned when the device shows up
		}
		return s.commission(l, chain)
	})
	if err != nil || !remote {
		return d, err
	}
	return s.commissionRemote(ctx, fp)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// localChain is the CA chain devices commissioned here trust.
func (s *Service) localChain(ctx context.Context) (string, error) {
	ca, err := s.certs.CA(ctx)
	if err != nil {
		return "", fmt.Errorf("lobby: CA: %w", err)
	}
	return string(ca.ChainPEM()), nil
}

// commission makes the claim real at its target, exactly once per claim:
// a local target registers the thing and certificate here, an MQTT target
// only gets its endpoint handed over. The device is then commissioned and
// its assignment is published after commit.
func (s *Service) commission(l *ledger, localChain string) error {
	d := l.d
	if d.CommissionedClaim == d.Claims {
		return nil
	}
	target, err := l.tx.GetLobbyTarget(l.ctx, d.Target)
	if err != nil {
		return fmt.Errorf("lobby: target %q: %w", d.Target, err)
	}
	if target.Kind == store.LobbyTargetGatehouse {
		l.remote = true // commissionRemote, once this claim committed
		return nil
	}
	a := Assignment{Kind: target.Kind, Config: d.ClaimConfig}
	if a.Config == "" {
		a.Config = target.Config
	}
	switch target.Kind {
	case store.LobbyTargetLocal:
		if err := s.registerLocal(l, target); err != nil {
			return err
		}
		a.Endpoint, a.CAChain, a.ThingName = s.localEndpoint(), localChain, d.ThingName
	default:
		a.Endpoint, a.CAChain = target.Endpoint, target.CAPEM
	}
	if d.Assignment, err = marshalAssignment(a); err != nil {
		return err
	}
	d.CommissionedClaim = d.Claims
	if err := l.move(store.LobbyCommissioned, "lobby.commissioned", "", map[string]any{"kind": target.Kind, "endpoint": a.Endpoint, "thingName": a.ThingName}); err != nil {
		return err
	}
	s.deliverLater(l)
	return nil
}

// thingNameOf is the name device d is registered as at its target: the
// claim's, else the certificate's common name if it is a valid name, else
// one made of the fingerprint.
func thingNameOf(d *store.LobbyDevice) string {
	name := d.ThingName
	if name == "" {
		name = d.CommonName
	}
	if !registry.ValidName(name) {
		name = "lobby-" + d.Fingerprint[:16]
	}
	return name
}

// registerLocal registers the device's thing and certificate here, or
// reactivates them, and takes it out of the lobby policy.
func (s *Service) registerLocal(l *ledger, target *store.LobbyTarget) error {
	d, ctx, tx, now := l.d, l.ctx, l.tx, s.now()
	d.ThingName = thingNameOf(d)
	rec, err := tx.GetCertificate(ctx, d.Fingerprint)
	switch {
	case errors.Is(err, store.ErrNotFound):
		certs, err := pki.ParseCertificatesPEM([]byte(d.CertificatePEM))
		if err != nil || len(certs) == 0 {
			return fmt.Errorf("lobby: stored certificate of %s: %w", d.Fingerprint, err)
		}
		leaf := certs[0]
		if _, err := tx.GetThing(ctx, d.ThingName); err == nil {
			return fmt.Errorf("%w: thing %q already exists; claim with another thingName", ErrInvalid, d.ThingName)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		th, err := s.reg.CreateThingInTx(ctx, tx, registry.NewThing{Name: d.ThingName, ThingType: target.ThingType, Attributes: map[string]string{}})
		if err != nil {
			return fmt.Errorf("lobby: register thing %q: %w", d.ThingName, err)
		}
		rec = &store.Certificate{Fingerprint: d.Fingerprint, ThingName: th.Name, CA: d.CA, SerialNumber: fmt.Sprintf("%x", leaf.SerialNumber),
			Subject: leaf.Subject.String(), PEM: d.CertificatePEM, Status: store.CertActive, NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC(),
			CreatedAt: now, UpdatedAt: now}
		if err := tx.CreateCertificate(ctx, rec); err != nil {
			return err
		}
		l.events = append(l.events,
			event{"thing.registered", "thing/" + th.Name, map[string]any{"thingType": th.ThingType, "via": "lobby", "certificateId": d.Fingerprint}},
			event{"certificate.registered", "certificate/" + d.Fingerprint, map[string]any{"via": "lobby", "thingName": th.Name, "ca": d.CA}})
	case err != nil:
		return err
	default:
		if rec.Status == store.CertRevoked {
			return fmt.Errorf("%w: certificate %s is revoked", ErrState, d.Fingerprint)
		}
		if rec.ThingName != "" {
			d.ThingName = rec.ThingName
		}
		if rec.Status != store.CertActive {
			rec.Status, rec.UpdatedAt = store.CertActive, now
			if err := tx.UpdateCertificate(ctx, rec); err != nil {
				return err
			}
			l.events = append(l.events, event{"certificate.activated", "certificate/" + d.Fingerprint, map[string]any{"via": "lobby"}})
		}
	}
	// The lobby policy stays attached until the device arrives: its lobby
	// session must still receive the assignment, and a policy change
	// re-authorizes live sessions at once.
	return nil
}

// leaveLocal deactivates the local certificate of a device commissioned
// here (the broker disconnects its sessions on certificate.deactivated) and
// puts it back under the lobby policy.
func (s *Service) leaveLocal(l *ledger) error {
	if l.d.CertificatePEM == "" {
		return nil
	}
	rec, err := l.tx.GetCertificate(l.ctx, l.d.Fingerprint)
	if err == nil && rec.Status == store.CertActive {
		rec.Status, rec.UpdatedAt = store.CertInactive, s.now()
		if err := l.tx.UpdateCertificate(l.ctx, rec); err != nil {
			return err
		}
		l.events = append(l.events, event{"certificate.deactivated", "certificate/" + l.d.Fingerprint, map[string]any{"via": "lobby"}})
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return l.attachLobbyPolicy()
}

// Reject refuses a device (known or not yet seen): it can no longer open a
// lobby session, and a certificate commissioned here is deactivated.
func (s *Service) Reject(ctx context.Context, device, reason string) (*store.LobbyDevice, error) {
	return s.end(ctx, device, reason, store.LobbyRejected, "lobby.rejected", true,
		store.LobbyKnocking, store.LobbyInLobby, store.LobbyClaimed, store.LobbyCommissioned, store.LobbyArrived)
}

// Decommission retires a commissioned or arrived device for good.
func (s *Service) Decommission(ctx context.Context, device, reason string) (*store.LobbyDevice, error) {
	return s.end(ctx, device, reason, store.LobbyDecommissioned, "lobby.decommissioned", false,
		store.LobbyClaimed, store.LobbyCommissioned, store.LobbyArrived, store.LobbyRejected)
}

func (s *Service) end(ctx context.Context, device, reason, to, typ string, create bool, from ...string) (*store.LobbyDevice, error) {
	fp, err := ParseQR(device)
	if err != nil {
		return nil, err
	}
	left, err := s.leaveRemote(ctx, fp, from...)
	if err != nil {
		return nil, err
	}
	return s.update(ctx, fp, create, func(l *ledger) error {
		if !l.isNew && !contains(from, l.d.State) {
			return stateErr(l.d, strings.TrimPrefix(typ, "lobby."))
		}
		if err := s.leaveLocal(l); err != nil {
			return err
		}
		left.record(l)
		if err := l.detachLobbyPolicy(); err != nil {
			return err
		}
		l.d.Assignment, l.d.AssignmentSecret = "", nil
		if err := l.move(to, typ, reason, nil); err != nil {
			return err
		}
		s.clearLater(l, false)
		return nil
	})
}

// FactoryReset sends a device back to the lobby: its target and
// assignment are forgotten, a certificate commissioned here is deactivated,
// and the device is told {"config":"factory reset"}.
func (s *Service) FactoryReset(ctx context.Context, device string) (*store.LobbyDevice, error) {
	return s.FactoryResetReason(ctx, device, "")
}

// FactoryResetReason is FactoryReset keeping reason in the device's
// history ("factory reset" when empty).
func (s *Service) FactoryResetReason(ctx context.Context, device, reason string) (*store.LobbyDevice, error) {
	if reason == "" {
		reason = "factory reset"
	}
	fp, err := ParseQR(device)
	if err != nil {
		return nil, err
	}
	from := []string{store.LobbyClaimed, store.LobbyCommissioned, store.LobbyArrived, store.LobbyRejected, store.LobbyDecommissioned}
	left, err := s.leaveRemote(ctx, fp, from...)
	if err != nil {
		return nil, err
	}
	// A device of the AWS protocol at work here hears of it before its
	// certificate is deactivated, which disconnects it (see awsResetFirst).
	s.awsResetFirst(ctx, fp, from)
	return s.update(ctx, fp, false, func(l *ledger) error {
		d := l.d
		if !contains(from, d.State) {
			return stateErr(d, "reset")
		}
		if err := s.leaveLocal(l); err != nil {
			return err
		}
		left.record(l)
		d.Target, d.ClaimConfig, d.Assignment, d.AssignmentSecret = "", "", "", nil
		d.CommissionedClaim = d.Claims
		to := store.LobbyInLobby
		if d.CertificatePEM == "" {
			// A pre-claimed device never seen: nothing left to route.
			to = store.LobbyKnocking
		} else if err := l.attachLobbyPolicy(); err != nil {
			return err
		}
		if err := l.move(to, "lobby.reset", reason, nil); err != nil {
			return err
		}
		s.clearLater(l, true)
		return nil
	})
}

// markArrived records that a device commissioned here logged in on the
// normal listener with its certificate.
func (s *Service) markArrived(ctx context.Context, fingerprint, thing string) error {
	d, err := s.store.GetLobbyDevice(ctx, fingerprint)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil || d.State != store.LobbyCommissioned {
		return err
	}
	_, err = s.update(ctx, fingerprint, false, func(l *ledger) error {
		if l.d.State != store.LobbyCommissioned {
			return nil
		}
		l.d.LastSeenAt = s.now()
		if err := l.detachLobbyPolicy(); err != nil {
			return err
		}
		return l.move(store.LobbyArrived, "lobby.arrived", "", map[string]any{"thingName": thing})
	})
	if errors.Is(err, store.ErrStale) {
		return nil
	}
	return err
}
