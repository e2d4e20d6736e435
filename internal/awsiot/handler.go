package awsiot

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/fleetprov"
	"github.com/gatehouse-iot/gatehouse/internal/jsonbody"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Config holds a Handler's dependencies.
type Config struct {
	Registry *registry.Service
	Keys     *Keys
	// Prefix is the path the API is mounted at, e.g. "/aws-iot".
	Prefix string
	// Region, when set, is the only signing region accepted; it and
	// Account fill returned ARNs.
	Region  string
	Account string
	// MaxSkew bounds the request time's distance from the server clock.
	MaxSkew      time.Duration
	MaxBodyBytes int64
	// Certs serves the certificate and CA operations; nil refuses them.
	Certs *certs.Service
	// FleetProv serves the provisioning template operations; nil refuses
	// them.
	FleetProv *fleetprov.Service
	// Authenticate checks custom-authorizer credentials for
	// TestInvokeAuthorizer, as a connection would; nil refuses it.
	Authenticate func(context.Context, authn.Credentials) (*authn.Identity, error)
	// Policy is the policy variables' region and account, for the policies
	// TestInvokeAuthorizer resolves.
	Policy policy.Options
	// DataEndpoint answers DescribeEndpoint: the MQTT TLS listener's
	// host:port, or "" when there is none.
	DataEndpoint func() string
	Now          func() time.Time
	Logger       *slog.Logger
}

// Handler serves the AWS IoT registry API subset.
type Handler struct {
	cfg Config
	mux *http.ServeMux
}

// New returns the handler. Mount it at cfg.Prefix + "/".
func New(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = 5 * time.Minute
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Account == "" {
		cfg.Account = "000000000000"
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	h.route("GET /things", false, h.listThings)
	h.route("GET /things/{thingName}", false, h.describeThing)
	h.route("POST /things/{thingName}", true, h.createThing)
	h.route("PATCH /things/{thingName}", true, h.updateThing)
	h.route("DELETE /things/{thingName}", true, h.deleteThing)
	h.route("GET /thing-types", false, h.listThingTypes)
	h.route("GET /thing-types/{thingTypeName}", false, h.describeThingType)
	h.route("POST /thing-types/{thingTypeName}", true, h.createThingType)
	h.controlRoutes()
	h.provisioningRoutes()
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, r, cfg.Logger, &apiError{status: http.StatusNotFound, typ: "UnknownOperationException", msg: "no operation " + r.Method + " " + r.URL.Path})
	})
	return h
}

// pathKey carries the escaped path as the client sent (and signed) it,
// before the prefix is stripped.
type pathKey struct{}

// ServeHTTP strips the prefix and serves the operation.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(context.WithValue(r.Context(), pathKey{}, r.URL.EscapedPath()))
	http.StripPrefix(h.cfg.Prefix, h.mux).ServeHTTP(w, r)
}

// apiError is an AWS error: its type goes into X-Amzn-Errortype.
type apiError struct {
	status int
	typ    string
	msg    string
	err    error
}

func (e *apiError) Error() string {
	if e.err != nil {
		return e.typ + ": " + e.msg + ": " + e.err.Error()
	}
	return e.typ + ": " + e.msg
}

func (e *apiError) Unwrap() error { return e.err }

func invalid(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "InvalidRequestException", msg: fmt.Sprintf(format, args...)}
}

// toAPIError maps Gatehouse errors to AWS IoT error types, in one place.
func toAPIError(err error) *apiError {
	var (
		ae  *apiError
		inv *registry.InvalidError
		big *http.MaxBytesError
		req *pki.RequestError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &big):
		return &apiError{status: http.StatusRequestEntityTooLarge, typ: "InvalidRequestException", msg: "request body too large", err: err}
	case errors.As(err, &inv):
		var parts []string
		for _, p := range inv.Problems {
			parts = append(parts, p.Field+": "+p.Message)
		}
		return &apiError{status: http.StatusBadRequest, typ: "InvalidRequestException", msg: strings.Join(parts, "; "), err: err}
	case errors.As(err, &req):
		return &apiError{status: http.StatusBadRequest, typ: "InvalidRequestException", msg: req.Error(), err: err}
	case errors.Is(err, certs.ErrInvalidTransition):
		return &apiError{status: http.StatusNotAcceptable, typ: "CertificateStateException", msg: err.Error(), err: err}
	case errors.Is(err, store.ErrNotFound):
		return &apiError{status: http.StatusNotFound, typ: "ResourceNotFoundException", msg: err.Error(), err: err}
	case errors.Is(err, store.ErrExists):
		return &apiError{status: http.StatusConflict, typ: "ResourceAlreadyExistsException", msg: err.Error(), err: err}
	case errors.Is(err, store.ErrStale):
		return &apiError{status: http.StatusConflict, typ: "VersionConflictException", msg: err.Error(), err: err}
	case errors.Is(err, store.ErrInUse):
		return &apiError{status: http.StatusBadRequest, typ: "InvalidRequestException", msg: err.Error(), err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, typ: "ServiceUnavailableException", msg: "request cancelled or timed out", err: err}
	}
	return &apiError{status: http.StatusInternalServerError, typ: "InternalFailureException", msg: "internal error", err: err}
}

func writeErr(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	ae := toAPIError(err)
	level := slog.LevelInfo
	if ae.status >= 500 {
		level = slog.LevelError
	}
	log.Log(r.Context(), level, "aws iot request failed", "method", r.Method, "path", r.URL.Path, "status", ae.status, "type", ae.typ, "err", err)
	w.Header().Set("X-Amzn-Errortype", ae.typ)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": ae.msg})
}

func writeOK(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(v)
}

type opFunc func(w http.ResponseWriter, r *http.Request, body []byte) error

// route registers an operation behind Signature V4 verification.
func (h *Handler) route(pattern string, write bool, op opFunc) {
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Amzn-Requestid", requestID(r))
		body, key, err := h.verify(r)
		if err == nil && write && !canWrite(key) {
			err = &apiError{status: http.StatusForbidden, typ: "UnauthorizedException", msg: "the access key " + key.ID + " is read-only"}
		}
		if err == nil {
			ctx := events.WithActor(r.Context(), "aws_key:"+key.ID)
			err = op(w, r.WithContext(ctx), body)
		}
		if err != nil {
			writeErr(w, r, h.cfg.Logger, err)
		}
	})
}

func requestID(r *http.Request) string {
	sum := sha256.Sum256([]byte(r.Header.Get("Authorization") + r.Header.Get("Amz-Sdk-Invocation-Id")))
	return hex.EncodeToString(sum[:8])
}

// verify checks r's Signature V4 and returns its body and access key.
func (h *Handler) verify(r *http.Request) ([]byte, *store.AWSAccessKey, error) {
	forbidden := func(typ, msg string) error {
		return &apiError{status: http.StatusForbidden, typ: typ, msg: msg}
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return nil, nil, forbidden("MissingAuthenticationTokenException", "request is missing an AWS Signature V4 Authorization header")
	}
	a, err := parseAuthHeader(auth)
	if err != nil {
		return nil, nil, forbidden("IncompleteSignatureException", err.Error())
	}
	amzDate, err := checkScope(r, a, h.cfg.Now(), h.cfg.MaxSkew, h.cfg.Region)
	if err != nil {
		return nil, nil, forbidden("InvalidSignatureException", err.Error())
	}
	key, secret, err := h.cfg.Keys.secret(r.Context(), a.keyID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, forbidden("UnrecognizedClientException", "the security token included in the request is invalid")
	}
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if claimed := r.Header.Get("X-Amz-Content-Sha256"); claimed != "" && claimed != payloadHash {
		return nil, nil, forbidden("InvalidSignatureException", "X-Amz-Content-Sha256 does not match the body")
	}
	path, _ := r.Context().Value(pathKey{}).(string)
	want := signature(secret, a, amzDate, canonicalRequest(r, path, a.signedHeaders, payloadHash))
	if !hmac.Equal([]byte(want), []byte(a.signature)) {
		return nil, nil, forbidden("InvalidSignatureException", "the request signature we calculated does not match the signature you provided")
	}
	return body, key, nil
}

// decodeBody reads a JSON request body (empty means {}) by package
// jsonbody's rules; a refusal is AWS's InvalidRequestException.
func decodeBody(body []byte, v any) error {
	if err := jsonbody.Decode(body, v, jsonbody.Options{AllowEmpty: true}); err != nil {
		return invalid("malformed request body: %s", err.Error())
	}
	return nil
}

func (h *Handler) arn(kind, name string) string {
	region := h.cfg.Region
	if region == "" {
		region = "gatehouse"
	}
	return fmt.Sprintf("arn:aws:iot:%s:%s:%s/%s", region, h.cfg.Account, kind, name)
}

// ---- pagination ----

// maxResults reads ?maxResults= (1 to 250, default def).
func maxResults(r *http.Request, def int) (int, error) {
	s := r.URL.Query().Get("maxResults")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 250 {
		return 0, invalid("maxResults %q: want 1 to 250", s)
	}
	return n, nil
}

// nextToken decodes ?nextToken=, the name a page ends with.
func nextToken(r *http.Request) (string, error) {
	s := r.URL.Query().Get("nextToken")
	if s == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return "", invalid("nextToken %q is not a token this server issued", s)
	}
	return string(b), nil
}

func encodeToken(after string) string { return base64.RawURLEncoding.EncodeToString([]byte(after)) }

// ---- things ----

type thingAttribute struct {
	ThingName     string            `json:"thingName"`
	ThingTypeName string            `json:"thingTypeName,omitempty"`
	ThingArn      string            `json:"thingArn"`
	Attributes    map[string]string `json:"attributes"`
	Version       int64             `json:"version"`
}

func (h *Handler) listThings(w http.ResponseWriter, r *http.Request, _ []byte) error {
	limit, err := maxResults(r, 50)
	if err != nil {
		return err
	}
	after, err := nextToken(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	attrName, attrValue := q.Get("attributeName"), q.Get("attributeValue")
	if (attrName == "") != (attrValue == "") {
		return invalid("attributeName and attributeValue go together")
	}
	prefix := false
	if s := q.Get("usePrefixAttributeValue"); s != "" {
		if prefix, err = strconv.ParseBool(s); err != nil {
			return invalid("usePrefixAttributeValue %q: want true or false", s)
		}
	}
	out := struct {
		Things    []thingAttribute `json:"things"`
		NextToken string           `json:"nextToken,omitempty"`
	}{Things: []thingAttribute{}}
	f := store.ThingFilter{Page: store.Page{After: after, Limit: 1000}, ThingType: q.Get("thingTypeName")}
	if attrName != "" && !prefix {
		f.AttributeName, f.AttributeValue = attrName, attrValue
	}
	for len(out.Things) < limit {
		things, err := h.cfg.Registry.Things(r.Context(), f)
		if err != nil {
			return err
		}
		for _, t := range things {
			f.After = t.Name
			if prefix && !strings.HasPrefix(t.Attributes[attrName], attrValue) {
				continue
			}
			if prefix && attrName != "" {
				if _, ok := t.Attributes[attrName]; !ok {
					continue
				}
			}
			out.Things = append(out.Things, h.thingAttribute(t))
			if len(out.Things) == limit {
				break
			}
		}
		if len(things) < f.Limit {
			break
		}
	}
	if len(out.Things) == limit {
		// There may be more: the client asks again from here.
		out.NextToken = encodeToken(out.Things[limit-1].ThingName)
		more, err := h.cfg.Registry.Things(r.Context(), store.ThingFilter{Page: store.Page{After: out.Things[limit-1].ThingName, Limit: 1}, ThingType: f.ThingType, AttributeName: f.AttributeName, AttributeValue: f.AttributeValue})
		if err != nil {
			return err
		}
		if len(more) == 0 {
			out.NextToken = ""
		}
	}
	return writeOK(w, out)
}

func (h *Handler) thingAttribute(t store.Thing) thingAttribute {
	return thingAttribute{ThingName: t.Name, ThingTypeName: t.ThingType, ThingArn: h.arn("thing", t.Name), Attributes: nonNilMap(t.Attributes), Version: t.Version}
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func (h *Handler) describeThing(w http.ResponseWriter, r *http.Request, _ []byte) error {
	t, err := h.cfg.Registry.Thing(r.Context(), r.PathValue("thingName"))
	if err != nil {
		return err
	}
	return writeOK(w, struct {
		DefaultClientID string `json:"defaultClientId"`
		ThingID         string `json:"thingId"`
		thingAttribute
	}{t.Name, t.ID, h.thingAttribute(*t)})
}

type attributePayload struct {
	Attributes map[string]string `json:"attributes"`
	Merge      bool              `json:"merge"`
}

func (h *Handler) createThing(w http.ResponseWriter, r *http.Request, body []byte) error {
	var in struct {
		ThingTypeName    string            `json:"thingTypeName"`
		AttributePayload *attributePayload `json:"attributePayload"`
		BillingGroupName string            `json:"billingGroupName"`
	}
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	if in.BillingGroupName != "" {
		return invalid("billing groups are not supported")
	}
	name := r.PathValue("thingName")
	attrs := map[string]string{}
	if in.AttributePayload != nil {
		for k, v := range in.AttributePayload.Attributes {
			if v != "" {
				attrs[k] = v
			}
		}
	}
	t, err := h.cfg.Registry.CreateThing(r.Context(), registry.NewThing{Name: name, ThingType: in.ThingTypeName, Attributes: attrs})
	if errors.Is(err, store.ErrExists) {
		// AWS answers an identical CreateThing with the existing thing.
		old, gerr := h.cfg.Registry.Thing(r.Context(), name)
		if gerr == nil && old.ThingType == in.ThingTypeName && sameAttrs(old.Attributes, attrs) {
			t, err = old, nil
		} else {
			return &apiError{status: http.StatusConflict, typ: "ResourceAlreadyExistsException", msg: fmt.Sprintf("thing %s already exists with different tags or attributes", name), err: err}
		}
	}
	if err != nil {
		return err
	}
	return writeOK(w, map[string]string{"thingName": t.Name, "thingArn": h.arn("thing", t.Name), "thingId": t.ID})
}

func sameAttrs(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (h *Handler) updateThing(w http.ResponseWriter, r *http.Request, body []byte) error {
	var in struct {
		ThingTypeName    string            `json:"thingTypeName"`
		AttributePayload *attributePayload `json:"attributePayload"`
		ExpectedVersion  *int64            `json:"expectedVersion"`
		RemoveThingType  bool              `json:"removeThingType"`
	}
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	if in.RemoveThingType && in.ThingTypeName != "" {
		return invalid("give thingTypeName or removeThingType, not both")
	}
	var patch registry.ThingPatch
	switch {
	case in.RemoveThingType:
		patch.ThingType = new(string)
	case in.ThingTypeName != "":
		patch.ThingType = &in.ThingTypeName
	}
	if p := in.AttributePayload; p != nil {
		// merge: given attributes are added or changed and "" removes
		// one; otherwise the given attributes replace all.
		patch.Attributes = map[string]*string{}
		for k, v := range p.Attributes {
			if v == "" {
				patch.Attributes[k] = nil
				continue
			}
			patch.Attributes[k] = &v
		}
		merge := p.Merge
		patch.Merge = &merge
	}
	var version int64
	if in.ExpectedVersion != nil {
		if *in.ExpectedVersion < 1 {
			return invalid("expectedVersion must be positive")
		}
		version = *in.ExpectedVersion
	}
	if _, err := h.cfg.Registry.UpdateThing(r.Context(), r.PathValue("thingName"), version, patch); err != nil {
		return err
	}
	return writeOK(w, struct{}{})
}

func (h *Handler) deleteThing(w http.ResponseWriter, r *http.Request, _ []byte) error {
	var version int64
	if s := r.URL.Query().Get("expectedVersion"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 1 {
			return invalid("expectedVersion %q: want a positive integer", s)
		}
		version = v
	}
	err := h.cfg.Registry.DeleteThing(r.Context(), r.PathValue("thingName"), version)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	// Like AWS, deleting a thing that does not exist succeeds.
	return writeOK(w, struct{}{})
}

// ---- thing types ----

type thingTypeProperties struct {
	ThingTypeDescription string   `json:"thingTypeDescription,omitempty"`
	SearchableAttributes []string `json:"searchableAttributes,omitempty"`
}

type thingTypeMetadata struct {
	Deprecated   bool    `json:"deprecated"`
	CreationDate float64 `json:"creationDate"`
}

type thingTypeDefinition struct {
	ThingTypeName       string              `json:"thingTypeName"`
	ThingTypeArn        string              `json:"thingTypeArn"`
	ThingTypeProperties thingTypeProperties `json:"thingTypeProperties"`
	ThingTypeMetadata   thingTypeMetadata   `json:"thingTypeMetadata"`
}

func (h *Handler) thingTypeDefinition(tt store.ThingType) thingTypeDefinition {
	var attrs []string
	for _, a := range tt.AttributeSchema {
		attrs = append(attrs, a.Name)
	}
	return thingTypeDefinition{
		ThingTypeName: tt.Name, ThingTypeArn: h.arn("thingtype", tt.Name),
		ThingTypeProperties: thingTypeProperties{ThingTypeDescription: tt.Description, SearchableAttributes: attrs},
		ThingTypeMetadata:   thingTypeMetadata{CreationDate: float64(tt.CreatedAt.UnixMilli()) / 1000},
	}
}

func (h *Handler) listThingTypes(w http.ResponseWriter, r *http.Request, _ []byte) error {
	limit, err := maxResults(r, 50)
	if err != nil {
		return err
	}
	after, err := nextToken(r)
	if err != nil {
		return err
	}
	out := struct {
		ThingTypes []thingTypeDefinition `json:"thingTypes"`
		NextToken  string                `json:"nextToken,omitempty"`
	}{ThingTypes: []thingTypeDefinition{}}
	if name := r.URL.Query().Get("thingTypeName"); name != "" {
		tt, err := h.cfg.Registry.ThingType(r.Context(), name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil && after == "" {
			out.ThingTypes = append(out.ThingTypes, h.thingTypeDefinition(*tt))
		}
		return writeOK(w, out)
	}
	tts, err := h.cfg.Registry.ThingTypes(r.Context(), store.Page{After: after, Limit: limit + 1})
	if err != nil {
		return err
	}
	for i, tt := range tts {
		if i == limit {
			out.NextToken = encodeToken(tts[limit-1].Name)
			break
		}
		out.ThingTypes = append(out.ThingTypes, h.thingTypeDefinition(tt))
	}
	return writeOK(w, out)
}

func (h *Handler) describeThingType(w http.ResponseWriter, r *http.Request, _ []byte) error {
	tt, err := h.cfg.Registry.ThingType(r.Context(), r.PathValue("thingTypeName"))
	if err != nil {
		return err
	}
	return writeOK(w, struct {
		ThingTypeID string `json:"thingTypeId"`
		thingTypeDefinition
	}{tt.Name, h.thingTypeDefinition(*tt)})
}

func (h *Handler) createThingType(w http.ResponseWriter, r *http.Request, body []byte) error {
	var in struct {
		ThingTypeProperties *struct {
			ThingTypeDescription string          `json:"thingTypeDescription"`
			SearchableAttributes []string        `json:"searchableAttributes"`
			Mqtt5Configuration   json.RawMessage `json:"mqtt5Configuration"`
		} `json:"thingTypeProperties"`
		Tags json.RawMessage `json:"tags"`
	}
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	spec := registry.ThingTypeSpec{Name: r.PathValue("thingTypeName")}
	if p := in.ThingTypeProperties; p != nil {
		spec.Description = p.ThingTypeDescription
		for _, a := range p.SearchableAttributes {
			spec.AttributeSchema = append(spec.AttributeSchema, store.AttributeSpec{Name: a})
		}
	}
	tt, err := h.cfg.Registry.CreateThingType(r.Context(), spec)
	if errors.Is(err, store.ErrExists) {
		return &apiError{status: http.StatusConflict, typ: "ResourceAlreadyExistsException", msg: fmt.Sprintf("thing type %s already exists", spec.Name), err: err}
	}
	if err != nil {
		return err
	}
	return writeOK(w, map[string]string{"thingTypeName": tt.Name, "thingTypeArn": h.arn("thingtype", tt.Name), "thingTypeId": tt.Name})
}
