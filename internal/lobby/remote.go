package lobby

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// A gatehouse target is another Gatehouse. Claiming a device for it mints,
// through the target's admin API (with the target's API token), a
// single-use registration token for the target's thing type; the device
// gets the target's URL, its CA chain, the thing name and that token, and
// registers there itself (POST /register with a CSR: its key never leaves
// it), then logs in to the target's broker with the certificate it got.

// registrationTokenTTL bounds how long a minted registration token waits
// for its device.
const registrationTokenTTL = 24 * time.Hour

func targetTokenAD(name string) []byte { return []byte("lobby-target:" + name) }
func assignmentAD(fp string) []byte    { return []byte("lobby-assignment:" + fp) }

func (s *Service) checkGatehouseTarget(t *store.LobbyTarget) error {
	u, err := url.Parse(t.APIURL)
	if t.APIURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%w: a gatehouse target needs apiUrl, the target's base URL (https://host)", ErrInvalid)
	}
	t.APIURL = strings.TrimRight(t.APIURL, "/")
	if !registry.ValidName(t.ThingType) {
		return fmt.Errorf("%w: a gatehouse target needs thingType, a thing type that exists at the target", ErrInvalid)
	}
	if t.APIToken == "" && len(t.APITokenSealed) == 0 {
		return fmt.Errorf("%w: a gatehouse target needs apiToken, an admin API token of the target", ErrInvalid)
	}
	if strings.ContainsAny(t.APIToken, " \t\r\n") {
		return fmt.Errorf("%w: apiToken must not contain spaces", ErrInvalid)
	}
	if t.Endpoint != "" {
		if e, err := url.Parse(t.Endpoint); err != nil || (e.Scheme != "mqtts" && e.Scheme != "tls" && e.Scheme != "ssl") || e.Host == "" {
			return fmt.Errorf("%w: endpoint %q: want the target's mqtts://host:port (or none: the one it tells at registration)", ErrInvalid, t.Endpoint)
		}
	}
	if t.CAPEM != "" {
		if _, err := pki.ParseCertificatesPEM([]byte(t.CAPEM)); err != nil {
			return fmt.Errorf("%w: caPem: %w", ErrInvalid, err)
		}
	}
	if s.cfg.Sealer == nil {
		return fmt.Errorf("%w: gatehouse targets need a sealer (master key)", ErrInvalid)
	}
	return nil
}

// sealTargetToken replaces a given API token by its sealed form.
func (s *Service) sealTargetToken(t *store.LobbyTarget) error {
	if t.APIToken == "" {
		return nil
	}
	sealed, err := s.cfg.Sealer.Seal([]byte(t.APIToken), targetTokenAD(t.Name))
	if err != nil {
		return fmt.Errorf("lobby: seal API token of target %s: %w", t.Name, err)
	}
	t.APIToken, t.APITokenSealed = "", sealed
	return nil
}

// assignmentPayload is what device d receives, or nil: its assignment
// with the sealed secret (a registration token) put back in.
func (s *Service) assignmentPayload(_ context.Context, d *store.LobbyDevice) []byte {
	if d.Assignment == "" {
		return nil
	}
	if len(d.AssignmentSecret) == 0 {
		return []byte(d.Assignment)
	}
	if s.cfg.Sealer == nil {
		s.log.Warn("lobby: a sealed assignment but no sealer", "certificateId", d.Fingerprint)
		return nil
	}
	secret, err := s.cfg.Sealer.Open(d.AssignmentSecret, assignmentAD(d.Fingerprint))
	if err != nil {
		s.log.Warn("lobby: open sealed assignment", "certificateId", d.Fingerprint, "err", err)
		return nil
	}
	var a Assignment
	if err := json.Unmarshal([]byte(d.Assignment), &a); err != nil {
		s.log.Warn("lobby: stored assignment", "certificateId", d.Fingerprint, "err", err)
		return nil
	}
	a.RegistrationToken = string(secret)
	b, err := json.Marshal(a)
	if err != nil {
		return nil
	}
	return b
}

// errSuperseded: the claim changed while its target was asked.
var errSuperseded = errors.New("lobby: claim superseded")

// commissionRemoteLater commissions fp at its gatehouse target in the
// background (from the broker's paths: a device showing up, a knock), one
// attempt per device at a time.
func (s *Service) commissionRemoteLater(ctx context.Context, fp string) {
	if _, busy := s.remoteBusy.LoadOrStore(fp, true); busy {
		return
	}
	ctx = events.WithActor(context.WithoutCancel(ctx), "lobby")
	go func() {
		defer s.remoteBusy.Delete(fp)
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := s.commissionRemote(ctx, fp); err != nil {
			s.log.WarnContext(ctx, "lobby: commission at gatehouse target", "certificateId", fp, "err", err)
		}
	}()
}

// commissionRemote makes the current claim of fp real at its gatehouse
// target: it mints a registration token there (outside any transaction),
// then commissions the device with it unless the claim changed meanwhile
// (the token is then revoked). It returns the ledger entry.
func (s *Service) commissionRemote(ctx context.Context, fp string) (*store.LobbyDevice, error) {
	d, err := s.store.GetLobbyDevice(ctx, fp)
	if err != nil {
		return nil, err
	}
	if d.State != store.LobbyClaimed || d.CertificatePEM == "" || d.CommissionedClaim == d.Claims {
		return d, nil
	}
	t, err := s.store.GetLobbyTarget(ctx, d.Target)
	if err != nil {
		return nil, fmt.Errorf("lobby: target %q: %w", d.Target, err)
	}
	if t.Kind != store.LobbyTargetGatehouse {
		return d, nil
	}
	rc, err := s.remoteClient(t)
	if err != nil {
		return nil, err
	}
	name := thingNameOf(d)
	chain := t.CAPEM
	if chain == "" {
		if chain, err = rc.caChain(ctx); err != nil {
			return nil, err
		}
	}
	secret, tokenID, err := rc.mintRegistrationToken(ctx, t.ThingType, "lobby: device "+fp[:16]+" as "+name)
	if err != nil {
		return nil, err
	}
	claims := d.Claims
	out, err := s.update(ctx, fp, false, func(l *ledger) error {
		d := l.d
		if d.State != store.LobbyClaimed || d.Claims != claims || d.CommissionedClaim == d.Claims {
			return errSuperseded
		}
		a := Assignment{Kind: t.Kind, Endpoint: t.Endpoint, Config: d.ClaimConfig, CAChain: chain, ThingName: name, ServerURL: t.APIURL}
		if a.Config == "" {
			a.Config = t.Config
		}
		sealed, err := s.cfg.Sealer.Seal([]byte(secret), assignmentAD(fp))
		if err != nil {
			return fmt.Errorf("lobby: seal registration token: %w", err)
		}
		if d.Assignment, err = marshalAssignment(a); err != nil {
			return err
		}
		d.ThingName, d.AssignmentSecret, d.CommissionedClaim = name, sealed, d.Claims
		if err := l.move(store.LobbyCommissioned, "lobby.commissioned", "", map[string]any{"kind": t.Kind, "endpoint": a.Endpoint,
			"thingName": name, "serverUrl": t.APIURL, "registrationTokenId": tokenID}); err != nil {
			return err
		}
		s.deliverLater(l)
		return nil
	})
	if err != nil {
		if rerr := rc.revokeRegistrationToken(context.WithoutCancel(ctx), tokenID); rerr != nil {
			s.log.WarnContext(ctx, "lobby: revoke unused registration token at target", "target", t.Name, "id", tokenID, "err", rerr)
		}
		if errors.Is(err, errSuperseded) {
			return s.store.GetLobbyDevice(ctx, fp)
		}
		return nil, err
	}
	return out, nil
}

// verifyArrivalLater checks a device's arrival report at its gatehouse
// target in the background, one check per device at a time.
func (s *Service) verifyArrivalLater(ctx context.Context, fp string) {
	if _, busy := s.remoteBusy.LoadOrStore("arrival:"+fp, true); busy {
		return
	}
	ctx = events.WithActor(context.WithoutCancel(ctx), "lobby")
	go func() {
		defer s.remoteBusy.Delete("arrival:" + fp)
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		// A few tries: the target may answer late or be down a moment.
		for try, wait := 0, time.Second; ; try, wait = try+1, 2*wait {
			err := s.verifyArrival(ctx, fp)
			if err == nil {
				return
			}
			if try == 4 {
				s.log.WarnContext(ctx, "lobby: verify arrival at gatehouse target", "certificateId", fp, "err", err)
				return
			}
			sleep(ctx, wait)
		}
	}()
}

// verifyArrival marks fp arrived once its gatehouse target knows the
// thing with a certificate: the device's word alone is not taken.
func (s *Service) verifyArrival(ctx context.Context, fp string) error {
	d, err := s.store.GetLobbyDevice(ctx, fp)
	if err != nil {
		return err
	}
	if d.State != store.LobbyCommissioned || d.ThingName == "" {
		return nil
	}
	t, err := s.store.GetLobbyTarget(ctx, d.Target)
	if err != nil {
		return fmt.Errorf("lobby: target %q: %w", d.Target, err)
	}
	if t.Kind != store.LobbyTargetGatehouse {
		return nil
	}
	rc, err := s.remoteClient(t)
	if err != nil {
		return err
	}
	var page struct {
		Items []struct {
			Fingerprint string `json:"certificateId"`
			Status      string `json:"status"`
		} `json:"items"`
	}
	if err := rc.do(ctx, http.MethodGet, "/api/v1/certificates?thingName="+url.QueryEscape(d.ThingName), nil, &page, http.StatusOK); err != nil {
		return err
	}
	var certID string
	for _, c := range page.Items {
		if c.Status == store.CertActive {
			certID = c.Fingerprint
		}
	}
	if certID == "" {
		return fmt.Errorf("%w: %s reports its arrival, but target %s has no active certificate of thing %s", ErrRemote, fp, t.Name, d.ThingName)
	}
	claims := d.Claims
	_, err = s.update(ctx, fp, false, func(l *ledger) error {
		if l.d.State != store.LobbyCommissioned || l.d.Claims != claims {
			return nil
		}
		// The registration token is spent: it leaves the ledger and the
		// brokers' retained messages.
		l.d.LastSeenAt, l.d.AssignmentSecret = s.now(), nil
		s.clearLater(l, false)
		return l.move(store.LobbyArrived, "lobby.arrived", "", map[string]any{"reportedBy": "device", "kind": t.Kind,
			"verifiedAt": t.Name, "certificateId": certID})
	})
	return err
}

// remote is a gatehouse target's admin API.
type remote struct {
	base, token string
	http        *http.Client
}

func (s *Service) remoteClient(t *store.LobbyTarget) (*remote, error) {
	if s.cfg.Sealer == nil {
		return nil, fmt.Errorf("%w: no sealer to open the API token of target %s", ErrRemote, t.Name)
	}
	tok, err := s.cfg.Sealer.Open(t.APITokenSealed, targetTokenAD(t.Name))
	if err != nil {
		return nil, fmt.Errorf("lobby: API token of target %s: %w", t.Name, err)
	}
	hc := s.cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if t.CAPEM != "" {
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			pool.AppendCertsFromPEM([]byte(t.CAPEM))
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
		}
		hc = &http.Client{Timeout: 15 * time.Second, Transport: tr}
	}
	return &remote{base: t.APIURL, token: string(tok), http: hc}, nil
}

// do sends a request to the target and decodes a JSON answer into out;
// any status but want (or one of also) is an error.
func (r *remote) do(ctx context.Context, method, path string, in, out any, want int, also ...int) error {
	_, err := r.status(ctx, method, path, in, out, want, also...)
	return err
}

// status is do that also returns the status the target answered.
func (r *remote) status(ctx context.Context, method, path string, in, out any, want int, also ...int) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, body)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrRemote, err)
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %s: %w", ErrRemote, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("%w: %s %s: %w", ErrRemote, method, path, err)
	}
	if resp.StatusCode != want && !slices.Contains(also, resp.StatusCode) {
		var p struct {
			Detail string `json:"detail"`
			Title  string `json:"title"`
		}
		_ = json.Unmarshal(b, &p)
		msg := p.Detail
		if msg == "" {
			msg = p.Title
		}
		return resp.StatusCode, fmt.Errorf("%w: %s %s answered %d %s", ErrRemote, method, path, resp.StatusCode, msg)
	}
	if out == nil || resp.StatusCode != want {
		return resp.StatusCode, nil
	}
	if s, ok := out.(*string); ok {
		*s = string(b)
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, fmt.Errorf("%w: %s %s: %w", ErrRemote, method, path, err)
	}
	return resp.StatusCode, nil
}

func (r *remote) caChain(ctx context.Context) (string, error) {
	var chain string
	if err := r.do(ctx, http.MethodGet, "/ca", nil, &chain, http.StatusOK); err != nil {
		return "", err
	}
	if _, err := pki.ParseCertificatesPEM([]byte(chain)); err != nil {
		return "", fmt.Errorf("%w: GET /ca: %w", ErrRemote, err)
	}
	return chain, nil
}

func (r *remote) mintRegistrationToken(ctx context.Context, thingType, description string) (secret, id string, err error) {
	var out struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	in := map[string]any{"thingType": thingType, "maxUses": 1, "expiresInSeconds": int64(registrationTokenTTL / time.Second), "description": description}
	if err := r.do(ctx, http.MethodPost, "/api/v1/registration-tokens", in, &out, http.StatusCreated); err != nil {
		return "", "", err
	}
	if out.Token == "" || out.ID == "" {
		return "", "", fmt.Errorf("%w: the registration token answer lacks id or token", ErrRemote)
	}
	return out.Token, out.ID, nil
}

func (r *remote) revokeRegistrationToken(ctx context.Context, id string) error {
	return r.do(ctx, http.MethodDelete, "/api/v1/registration-tokens/"+url.PathEscape(id), nil, nil, http.StatusNoContent)
}
