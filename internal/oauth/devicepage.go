package oauth

import (
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// csrfCookie carries the double-submit CSRF token of the verification page.
const csrfCookie = "gatehouse_device_csrf"

type devicePage struct {
	Step      string // login, consent, done, error
	Action    string
	CSRF      string
	Error     string
	UserCode  string
	Username  string
	Consent   string
	ClientID  string
	ThingName string
	ThingType string
	Relation  string
	Scopes    []string
	// Described pairs each scope with what it lets the thing do, in the
	// words of its thing type (empty when the type says nothing).
	Described []describedScope
	Approved  bool
}

// describedScope is one scope on the consent step.
type describedScope struct {
	Scope, Description string
}

// serveDevicePage is the RFC 8628 verification page: a person enters the
// user code and signs in (POST step=login), sees which thing or application
// asks for which scopes, then approves or denies (POST step=decide). Forms
// carry a double-submit CSRF token bound to a SameSite=Strict cookie; the
// consent step carries a one-time value whose hash the login step stored on
// the device authorization, so a decision needs a fresh login.
func (s *Server) serveDevicePage(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	page := &devicePage{Step: "login", Action: PathDevice}
	csrf, err := s.csrfToken(w, r)
	if err != nil {
		s.renderDevice(w, r, http.StatusInternalServerError, page, "Something went wrong. Please try again.")
		return
	}
	page.CSRF = csrf
	if r.Method == http.MethodGet {
		page.UserCode = displayUserCode(normalizeUserCode(r.URL.Query().Get("user_code")))
		s.renderDevice(w, r, http.StatusOK, page, "")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.renderDevice(w, r, http.StatusBadRequest, page, "The form could not be read.")
		return
	}
	if !csrfSent(r, csrfCookie) {
		s.renderDevice(w, r, http.StatusForbidden, page, "Your session expired. Please enter the code again.")
		return
	}
	page.UserCode = displayUserCode(normalizeUserCode(r.PostForm.Get("user_code")))
	page.Username = r.PostForm.Get("username")
	switch r.PostForm.Get("step") {
	case "login":
		s.deviceLogin(w, r, page)
	case "decide":
		s.deviceDecide(w, r, page)
	default:
		s.renderDevice(w, r, http.StatusBadRequest, page, "Unknown step.")
	}
}

func (s *Server) deviceLogin(w http.ResponseWriter, r *http.Request, page *devicePage) {
	ctx := r.Context()
	code := normalizeUserCode(r.PostForm.Get("user_code"))
	if ok, wait := s.guesses.allow(clientAddr(r), code); !ok {
		setRetryAfter(w, wait)
		s.renderDevice(w, r, http.StatusTooManyRequests, page, "Too many attempts. Please wait a minute and try again.")
		return
	}
	if len(code) != userCodeLength {
		s.renderDevice(w, r, http.StatusBadRequest, page, "That code is not valid or has expired.")
		return
	}
	d, err := s.store.GetDeviceAuthorizationByUserCode(ctx, code)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (d.State != store.DeviceStatePending || s.now().After(d.ExpiresAt))) {
		s.renderDevice(w, r, http.StatusBadRequest, page, "That code is not valid or has expired.")
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "device page: load code", "err", err)
		s.renderDevice(w, r, http.StatusInternalServerError, page, "Something went wrong. Please try again.")
		return
	}
	user := s.signIn(w, r, "device page", page.Username, func(status int, msg string) { s.renderDevice(w, r, status, page, msg) })
	if user == nil {
		return
	}
	consent, err := s.newID(32)
	if err == nil {
		err = s.store.InTx(ctx, func(tx *store.Tx) error {
			d, err = tx.GetDeviceAuthorizationByUserCode(ctx, code)
			if err != nil {
				return err
			}
			if d.State != store.DeviceStatePending {
				return store.ErrStale
			}
			d.Subject, d.ConsentHash = user.Username, HashSecret(consent)
			return tx.UpdateDeviceAuthorization(ctx, d)
		})
	}
	if errors.Is(err, store.ErrStale) || errors.Is(err, store.ErrNotFound) {
		s.renderDevice(w, r, http.StatusBadRequest, page, "That code is not valid or has expired.")
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "device page: start consent", "err", err)
		s.renderDevice(w, r, http.StatusInternalServerError, page, "Something went wrong. Please try again.")
		return
	}
	page.Step, page.Username, page.Consent = "consent", user.Username, consent
	page.ClientID, page.Scopes = d.ClientID, d.Scopes
	if _, static := s.clients[d.ClientID]; !static && !isApp(d.ClientID) {
		if tc, err := s.store.GetThingClient(ctx, d.ClientID); err == nil {
			page.ThingName, page.ThingType, page.Relation = tc.Name, tc.ThingType, tc.ApproverRelation
		}
	}
	var descriptions map[string]string
	if page.ThingType != "" {
		if tt, err := s.store.GetThingType(ctx, page.ThingType); err == nil {
			descriptions = tt.ScopeDescriptions
		}
	}
	for _, sc := range d.Scopes {
		page.Described = append(page.Described, describedScope{Scope: sc, Description: descriptions[sc]})
	}
	s.renderDevice(w, r, http.StatusOK, page, "")
}

func (s *Server) deviceDecide(w http.ResponseWriter, r *http.Request, page *devicePage) {
	ctx := r.Context()
	code := normalizeUserCode(r.PostForm.Get("user_code"))
	consent := r.PostForm.Get("consent")
	approve := r.PostForm.Get("action") == "approve"
	typ := "device.denied"
	if approve {
		typ = "device.approved"
	}
	var invalid bool
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		invalid = false
		d, err := tx.GetDeviceAuthorizationByUserCode(ctx, code)
		if errors.Is(err, store.ErrNotFound) {
			invalid = true
			return nil
		}
		if err != nil {
			return err
		}
		if consent == "" || d.ConsentHash == "" || !secretMatches(d.ConsentHash, consent) || d.State != store.DeviceStatePending || s.now().After(d.ExpiresAt) {
			invalid = true
			return nil
		}
		ctx := events.WithActor(ctx, "user:"+d.Subject)
		d.ConsentHash, d.DecidedAt = "", s.now().UTC()
		d.State = store.DeviceStateDenied
		if approve {
			d.State = store.DeviceStateApproved
		}
		if err := tx.UpdateDeviceAuthorization(ctx, d); err != nil {
			return err
		}
		subject := "client/" + d.ClientID
		var relation string
		// Only things have approver relations: static clients and apps
		// are no things.
		if _, static := s.clients[d.ClientID]; !static && !isApp(d.ClientID) {
			tc, err := tx.GetThingClient(ctx, d.ClientID)
			if err != nil {
				return err
			}
			subject, relation = "thing/"+tc.Name, tc.ApproverRelation
		}
		if _, err := s.events.Record(ctx, tx, typ, subject, map[string]any{"user": d.Subject, "client_id": d.ClientID, "scope": strings.Join(d.Scopes, " ")}); err != nil {
			return err
		}
		if approve && relation != "" {
			rel, err := s.registry.AddRelationshipInTx(ctx, tx, store.Relationship{SubjectKind: store.KindUser, Subject: d.Subject, Relation: relation, ObjectKind: store.KindThing, Object: d.ClientID})
			switch {
			case errors.Is(err, store.ErrExists):
			case err != nil:
				return err
			default:
				if _, err := s.events.Record(ctx, tx, "relationship.added", subject, rel); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		s.log.ErrorContext(ctx, "device page: decision", "err", err)
		s.renderDevice(w, r, http.StatusInternalServerError, page, "Something went wrong. Please try again.")
		return
	}
	if invalid {
		page.Username = ""
		s.renderDevice(w, r, http.StatusBadRequest, page, "That code is not valid or has expired, or this page is stale. Please enter the code again.")
		return
	}
	if approve {
		// The approver's new relationship changes what their policies
		// resolve to.
		s.registry.InvalidatePolicies()
	}
	page.Step, page.Approved = "done", approve
	s.renderDevice(w, r, http.StatusOK, page, "")
}

func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) (string, error) {
	return s.pageCSRF(w, r, csrfCookie, PathDevice)
}

func (s *Server) renderDevice(w http.ResponseWriter, r *http.Request, status int, page *devicePage, msg string) {
	page.Error = msg
	s.renderPage(w, r, s.deviceTmpl, status, page, "device page")
}

// clientAddr is the client's IP address (without port) for rate limiting.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
