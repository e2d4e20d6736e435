package lobby

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// The AWS Device Lobby protocol is the one of the reference device of
// aws-samples/aws-device-lobby (device/aws-iot-python-sdkv2/dl_pubsub.py),
// served unchanged beside the native one, on the same ledger, claims and
// targets:
//
//   - the device connects over TLS with its manufacturer certificate and
//     the certificate's common name (CN) as MQTT client id;
//   - it subscribes to lobby/{CN} and announces itself, every few seconds,
//     on $aws/rules/lobby with {"state","iotep","config"};
//   - once commissioned, the lobby answers an announce on lobby/{CN} with
//     {"iotep": host of the target's endpoint, "config": the claim's
//     config} (and "caChain", the target's CA chain, when the target has
//     one: the reference device ignores it); the device stores it and
//     reconnects to that host, on the same port, with the same certificate
//     and client id;
//   - a factory reset tells the device {"config":"factory reset"} on
//     lobby/{CN} where it works - here, if it was commissioned to this
//     Gatehouse - and it goes back to the lobby.
//
// Its QR code is the certificate's SHA-256 fingerprint in plain lowercase
// hex, which ParseQR accepts as is.
//
// Such a session is admitted only where the normal login refuses the
// certificate as unknown or inactive: a device commissioned here logs in
// as its thing with the same certificate and client id. Its principal is
// lobby:{fingerprint} as for a native session. Nothing it is told is
// signed (the reference device could not check it): the broker keeps
// lobby/ and $aws/rules/lobby to the server (AWSReservedTopic,
// AWSReservedGrant), and the lobby publishes on lobby/{CN} only while the
// session holding client id {CN} is the device's own.

// ProtocolAWS names the AWS Device Lobby protocol in events.
const ProtocolAWS = "aws"

// AWSPolicyName is the built-in policy the AWS protocol's lobby sessions
// are authorized by, beside PolicyName.
const AWSPolicyName = "gatehouse-aws-lobby"

// AWSPolicyDocument lets a session (client id = certificate CN, enforced at
// authentication) announce itself and read its own lobby topic.
const AWSPolicyDocument = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:ClientId}"},
 {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/$aws/rules/lobby"},
 {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/lobby/${iot:ClientId}"},
 {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/lobby/${iot:ClientId}"}]}`

// AWSAnnounceTopic is where a device of the AWS protocol announces itself
// (AWS IoT's Basic Ingest topic of the reference lobby's rule).
const AWSAnnounceTopic = "$aws/rules/lobby"

// awsTopicRoot is the first level of the AWS protocol's device topics.
const awsTopicRoot = "lobby"

// AWSLobbyTopic is where device cn is answered.
func AWSLobbyTopic(cn string) string { return awsTopicRoot + "/" + cn }

func awsPolicyRequirements() []registry.PolicyRequirement {
	const cn = "meter-1"
	ctx := policy.Context{ClientID: cn}
	return []registry.PolicyRequirement{
		{Who: "AWS protocol lobby devices", Context: ctx, Action: policy.ActionConnect, Resource: cn},
		{Who: "AWS protocol lobby devices", Context: ctx, Action: policy.ActionPublish, Resource: AWSAnnounceTopic},
		{Who: "AWS protocol lobby devices", Context: ctx, Action: policy.ActionSubscribe, Resource: AWSLobbyTopic(cn)},
		{Who: "AWS protocol lobby devices", Context: ctx, Action: policy.ActionReceive, Resource: AWSLobbyTopic(cn)},
	}
}

// AWSReservedTopic reports whether a topic name or filter lies in the
// AWS protocol's server topics: lobby/ and $aws/rules/lobby (see
// broker.ReservedSpace).
func AWSReservedTopic(topic string) bool {
	first, _, _ := strings.Cut(topic, "/")
	return first == awsTopicRoot || topic == AWSAnnounceTopic
}

// AWSReservedGrant opens the AWS protocol's server topics (see
// broker.ReservedGrant): only an AWS protocol lobby session publishes to
// $aws/rules/lobby; a session that logged in with a certificate
// subscribes to and receives lobby/{its client id} - the lobby session,
// and the device at work here as its thing, which hears its factory reset
// there. Nothing else: no client publishes under lobby/.
func AWSReservedGrant(id *authn.Identity, clientID string, action policy.Action, topic string) bool {
	switch action {
	case policy.ActionPublish:
		return topic == AWSAnnounceTopic && awsSession(id, clientID)
	case policy.ActionSubscribe, policy.ActionReceive:
		return id != nil && id.Method == authn.MethodCertificate && clientID != "" &&
			!strings.ContainsAny(clientID, "/+#") && topic == AWSLobbyTopic(clientID)
	}
	return false
}

// awsSession reports whether id, with clientID, is an AWS protocol lobby
// session: a lobby session whose client id is its certificate's single
// common name (a native one's is the fingerprint).
func awsSession(id *authn.Identity, clientID string) bool {
	if id == nil || !fingerprintRE.MatchString(id.CredentialID) || id.Principal != PrincipalPrefix+id.CredentialID ||
		clientID == id.CredentialID || id.Certificate == nil {
		return false
	}
	cn := id.Certificate.Subject.CommonName
	return len(cn) == 1 && cn[0] == clientID
}

// awsCandidate reports whether a login the normal authenticator refused
// (with err) may be an AWS protocol lobby session: certificate only, the
// client id is the certificate's common name, and the certificate is
// unknown here or inactive (a device commissioned here logs in as its
// thing; one sent elsewhere or reset has its certificate deactivated).
func awsCandidate(c authn.Credentials, err error) bool {
	if !certificateOnly(c) || c.ClientID == "" || c.ClientID != c.PeerCertificates[0].Subject.CommonName {
		return false
	}
	return errors.Is(err, certs.ErrUnknownCertificate) || errors.Is(err, certs.ErrCertificateInactive)
}

// admitAWS opens an AWS protocol lobby session if the certificate chains
// to an active manufacturer CA; otherwise the normal login's refusal
// (refused) stands.
//
// A certificate that is registered but inactive (a factory reset
// deactivated it) opens one only for a device that came to the lobby over
// this protocol before: a native device whose target refuses it after a
// reset (client id its thing name, which may be its CN) must hear the
// refusal and go back to the lobby by itself, not land in an AWS session.
func (a *Authenticator) admitAWS(ctx context.Context, chain []*x509.Certificate, refused error) (*authn.Identity, error) {
	dev, err := a.lobby.certs.VerifyManufacturerDevice(ctx, chain)
	if err != nil {
		return nil, refused
	}
	if errors.Is(refused, certs.ErrCertificateInactive) {
		aws, err := a.lobby.cameOverAWS(ctx, dev.Fingerprint)
		if err != nil {
			return nil, err
		}
		if !aws {
			return nil, refused
		}
	}
	return a.session(ctx, dev, ProtocolAWS)
}

// cameOverAWS reports whether the device's latest arrival in the lobby
// (its newest lobby.seen event) was over the AWS protocol.
func (s *Service) cameOverAWS(ctx context.Context, fingerprint string) (bool, error) {
	evs, err := s.store.ListEvents(ctx, store.EventFilter{Type: "lobby.seen", Subject: "lobby/" + fingerprint, Newest: true, Limit: 1})
	if err != nil {
		return false, fmt.Errorf("lobby: %w", err)
	}
	if len(evs) == 0 {
		return false, nil
	}
	var d struct {
		Protocol string `json:"protocol"`
	}
	_ = json.Unmarshal(evs[0].Details, &d)
	return d.Protocol == ProtocolAWS, nil
}

// AnnounceMessage is what a device of the AWS protocol publishes to
// $aws/rules/lobby. Config is the device's "config" as text: a JSON
// string's value, or any other JSON value as compact JSON.
type AnnounceMessage struct {
	State  string
	IoTEP  string
	Config string
}

// Bounds of an announce.
const (
	maxAnnounceState  = 256
	maxAnnounceIoTEP  = 253
	maxAnnounceConfig = 4096
)

// ParseAnnounce decodes an announce: a JSON object whose "state" and
// "iotep" are strings if present; other members are ignored. An empty
// payload is an empty announce. Errors wrap ErrInvalid.
func ParseAnnounce(payload []byte) (AnnounceMessage, error) {
	var m AnnounceMessage
	if len(bytes.TrimSpace(payload)) == 0 {
		return m, nil
	}
	var raw struct {
		State  *string         `json:"state"`
		IoTEP  *string         `json:"iotep"`
		Config json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return m, fmt.Errorf("%w: announce: %w", ErrInvalid, err)
	}
	if raw.State != nil {
		m.State = *raw.State
	}
	if raw.IoTEP != nil {
		m.IoTEP = *raw.IoTEP
	}
	if len(raw.Config) > 0 && !bytes.Equal(raw.Config, []byte("null")) {
		if err := json.Unmarshal(raw.Config, &m.Config); err != nil {
			var b bytes.Buffer
			if err := json.Compact(&b, raw.Config); err != nil {
				return AnnounceMessage{}, fmt.Errorf("%w: announce config: %w", ErrInvalid, err)
			}
			m.Config = b.String()
		}
	}
	if len(m.State) > maxAnnounceState || len(m.IoTEP) > maxAnnounceIoTEP || len(m.Config) > maxAnnounceConfig {
		return AnnounceMessage{}, fmt.Errorf("%w: announce too large", ErrInvalid)
	}
	return m, nil
}

// onAnnounce handles a message on $aws/rules/lobby: it is the knock of
// the AWS protocol lobby session that published it (anything else - the
// server's inline client, an HTTPS publish - is dropped), answered on
// lobby/{CN} with the assignment once the device is commissioned.
func (s *Service) onAnnounce(ctx context.Context, publisher *authn.Identity, clientID string, payload []byte) {
	if !awsSession(publisher, clientID) {
		principal := "(server)"
		if publisher != nil {
			principal = publisher.Principal
		}
		s.log.WarnContext(ctx, "lobby: announce not from an AWS protocol lobby session dropped", "principal", principal, "client", clientID)
		return
	}
	fp := publisher.CredentialID
	m, err := ParseAnnounce(payload)
	if err != nil {
		s.log.InfoContext(ctx, "lobby: announce refused", "certificateId", fp, "err", err)
		return
	}
	d, err := s.knock(events.WithActor(ctx, PrincipalPrefix+fp), fp, m.State, m.Config, ProtocolAWS)
	if err != nil {
		s.log.InfoContext(ctx, "lobby: announce refused", "certificateId", fp, "err", err)
		return
	}
	if d.State != store.LobbyCommissioned && d.State != store.LobbyArrived {
		return // it waits in the lobby
	}
	if reply := s.awsAssignment(d); reply != nil {
		s.publishAWS(fp, clientID, reply, true)
	}
}

// awsAssignment is what device d is answered with: {"iotep","config"}
// (and "caChain"), or nil if its assignment names no MQTT endpoint.
func (s *Service) awsAssignment(d *store.LobbyDevice) []byte {
	var a Assignment
	if d.Assignment == "" || json.Unmarshal([]byte(d.Assignment), &a) != nil {
		return nil
	}
	host := ""
	if u, err := url.Parse(a.Endpoint); err == nil {
		host = u.Hostname()
	}
	if host == "" {
		s.log.Warn("lobby: an AWS protocol device's target has no MQTT endpoint", "certificateId", d.Fingerprint, "target", d.Target)
		return nil
	}
	b, err := json.Marshal(struct {
		IoTEP   string `json:"iotep"`
		Config  string `json:"config"`
		CAChain string `json:"caChain,omitempty"`
	}{host, a.Config, a.CAChain})
	if err != nil {
		return nil
	}
	return b
}

// publishAWS publishes payload on lobby/{cn} for device fp if the session
// holding client id cn here is fp's own: its lobby session (inLobby), or,
// for a factory reset, its login as a thing. A session of another
// certificate with the same client id gets nothing.
func (s *Service) publishAWS(fp, cn string, payload []byte, inLobby bool) bool {
	p := s.pub.Load()
	if p == nil || cn == "" {
		return false
	}
	id := (*p).Identity(cn)
	if id == nil || id.CredentialID != fp || strings.HasPrefix(id.Principal, PrincipalPrefix) != inLobby {
		return false
	}
	s.publish(AWSLobbyTopic(cn), payload, false)
	return true
}

// awsResetFirst tells a device connected here as its thing (commissioned
// to this Gatehouse, or to a target on it) {"config":"factory reset"}
// before the reset commits: the reset deactivates its certificate, and the
// broker then disconnects it, perhaps before a message published after
// commit reached it. If the reset then fails, the device is back in the
// lobby early; it logs in as its thing again until a reset succeeds.
func (s *Service) awsResetFirst(ctx context.Context, fp string, from []string) {
	d, err := s.store.GetLobbyDevice(ctx, fp)
	if err != nil || !slices.Contains(from, d.State) {
		return
	}
	s.publishAWS(fp, d.CommonName, []byte(factoryReset), false)
}

// awsResetReplay tells the device of a reset made on another replica, if
// it is connected here as its thing (replay of lobby.reset).
func (s *Service) awsResetReplay(ctx context.Context, fp string) {
	d, err := s.store.GetLobbyDevice(ctx, fp)
	if err != nil {
		return
	}
	s.publishAWS(fp, d.CommonName, []byte(factoryReset), false)
}

// withProtocol adds the session's protocol to an event's details.
func withProtocol(details map[string]any, protocol string) map[string]any {
	if protocol != "" {
		details["protocol"] = protocol
	}
	return details
}
