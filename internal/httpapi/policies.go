package httpapi

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func (a *API) policyRoutes() {
	a.handle("GET /api/v1/policies", read, a.listPolicies)
	a.handle("POST /api/v1/policies", write, a.createPolicy)
	a.handle("POST /api/v1/policies/simulate", read, a.simulate)
	a.handle("GET /api/v1/policies/{name}", read, a.getPolicy)
	a.handle("DELETE /api/v1/policies/{name}", write, a.deletePolicy)
	a.handle("GET /api/v1/policies/{name}/versions", read, a.listPolicyVersions)
	a.handle("POST /api/v1/policies/{name}/versions", write, a.createPolicyVersion)
	a.handle("DELETE /api/v1/policies/{name}/versions/{id}", write, a.deletePolicyVersion)
	a.handle("PUT /api/v1/policies/{name}/default-version", write, a.setDefaultVersion)
	a.handle("GET /api/v1/policies/{name}/attachments", read, a.listPolicyAttachments)
	a.handle("POST /api/v1/policies/{name}/attachments", write, a.attachPolicy)
	a.handle("DELETE /api/v1/policies/{name}/attachments", write, a.detachPolicy)
	a.handle("GET /api/v1/policy-attachments", read, a.listAllAttachments)
}

// document checks that a request's document is a JSON object.
func document(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, errorf(http.StatusBadRequest, "document must be a policy JSON object")
	}
	return raw, nil
}

type policyView struct {
	*store.Policy
	Document json.RawMessage `json:"document,omitempty"`
	// BuiltIn marks a policy Gatehouse itself needs (the lobby's, the
	// people's): it cannot be deleted, and its default version must keep
	// allowing what Gatehouse requires.
	BuiltIn bool `json:"builtIn,omitempty"`
}

func (a *API) listPolicies(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	ps, err := a.reg.Policies(r.Context(), store.Page{After: after, Limit: limit})
	if err != nil {
		return err
	}
	views := make([]policyView, len(ps))
	for i := range ps {
		views[i] = policyView{Policy: &ps[i], BuiltIn: a.reg.BuiltinPolicy(ps[i].Name)}
	}
	return list(w, views, limit, func(p policyView) string { return p.Name })
}

func (a *API) createPolicy(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Document    json.RawMessage `json:"document"`
	}
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	doc, err := document(in.Document)
	if err != nil {
		return err
	}
	p, err := a.reg.CreatePolicy(r.Context(), registry.NewPolicy{Name: in.Name, Description: in.Description, Document: doc})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/policies/"+p.Name)
	return writeVersioned(w, http.StatusCreated, p.Version, policyView{Policy: p, Document: doc, BuiltIn: a.reg.BuiltinPolicy(p.Name)})
}

func (a *API) getPolicy(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	p, err := a.reg.Policy(r.Context(), name)
	if err != nil {
		return err
	}
	versions, err := a.reg.PolicyVersions(r.Context(), name)
	if err != nil {
		return err
	}
	view := policyView{Policy: p, BuiltIn: a.reg.BuiltinPolicy(name)}
	for _, v := range versions {
		if v.IsDefault {
			view.Document = v.Document
		}
	}
	return writeVersioned(w, http.StatusOK, p.Version, view)
}

func (a *API) deletePolicy(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := a.reg.DeletePolicy(r.Context(), r.PathValue("name"), v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listPolicyVersions(w http.ResponseWriter, r *http.Request) error {
	vs, err := a.reg.PolicyVersions(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listResponse[store.PolicyVersion]{Items: vs})
}

func (a *API) createPolicyVersion(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in struct {
		Document     json.RawMessage `json:"document"`
		SetAsDefault bool            `json:"setAsDefault"`
	}
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	doc, err := document(in.Document)
	if err != nil {
		return err
	}
	pv, err := a.reg.CreatePolicyVersion(r.Context(), r.PathValue("name"), v, doc, in.SetAsDefault)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, pv)
}

func versionID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, errorf(http.StatusBadRequest, "version id %q is not a positive integer", r.PathValue("id"))
	}
	return id, nil
}

func (a *API) deletePolicyVersion(w http.ResponseWriter, r *http.Request) error {
	id, err := versionID(r)
	if err != nil {
		return err
	}
	if err := a.reg.DeletePolicyVersion(r.Context(), r.PathValue("name"), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) setDefaultVersion(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in struct {
		VersionID int64 `json:"versionId"`
	}
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	p, err := a.reg.SetDefaultPolicyVersion(r.Context(), r.PathValue("name"), v, in.VersionID)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, p.Version, p)
}

func (a *API) listPolicyAttachments(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := a.reg.Policy(r.Context(), name); err != nil {
		return err
	}
	as, err := a.reg.PolicyAttachments(r.Context(), store.AttachmentFilter{Policy: name})
	if err != nil {
		return err
	}
	return listPage(w, r, as, attachmentKey)
}

func (a *API) listAllAttachments(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	as, err := a.reg.PolicyAttachments(r.Context(), store.AttachmentFilter{TargetKind: q.Get("targetKind"), Target: q.Get("target")})
	if err != nil {
		return err
	}
	return listPage(w, r, as, attachmentKey)
}

func (a *API) attachPolicy(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		TargetKind string `json:"targetKind"`
		Target     string `json:"target"`
	}
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	at, err := a.reg.AttachPolicy(r.Context(), r.PathValue("name"), in.TargetKind, in.Target)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, at)
}

func (a *API) detachPolicy(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("targetKind") == "" || q.Get("target") == "" {
		return errorf(http.StatusBadRequest, "name the attachment with targetKind and target query parameters")
	}
	if err := a.reg.DetachPolicy(r.Context(), r.PathValue("name"), q.Get("targetKind"), q.Get("target")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// simulation is the simulator's answer.
type simulation struct {
	Allowed    bool              `json:"allowed"`
	Reason     string            `json:"reason"`
	Action     string            `json:"action"`
	Resource   string            `json:"resource"`
	Policies   []string          `json:"policies"`
	Matched    []statementView   `json:"matchedStatements"`
	NotApplied []notAppliedView  `json:"notAppliedStatements,omitempty"`
	Problem    string            `json:"problem,omitempty"`
	Context    map[string]string `json:"context"`
}

type statementView struct {
	Policy string `json:"policy"`
	Index  int    `json:"index"`
	Sid    string `json:"sid,omitempty"`
	Effect string `json:"effect"`
}

type notAppliedView struct {
	statementView
	Why string `json:"why"`
}

func viewOf(s policy.StatementRef) statementView {
	return statementView{Policy: s.Policy, Index: s.Index, Sid: s.Sid, Effect: s.Effect.String()}
}

// simulate answers "may this principal do action A on resource R", with
// the statements that decided it.
func (a *API) simulate(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		ThingName              string   `json:"thingName,omitempty"`
		ClientID               string   `json:"clientId,omitempty"`
		CertificateFingerprint string   `json:"certificateFingerprint,omitempty"`
		Scopes                 []string `json:"scopes,omitempty"`
		SourceIP               string   `json:"sourceIp,omitempty"`
		Action                 string   `json:"action"`
		Resource               string   `json:"resource"`

		// Username simulates a person's token (their policies and
		// relationships) instead of a thing.
		Username string `json:"username,omitempty"`
	}
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	act, err := policy.ParseAction(in.Action)
	if err != nil {
		return errorf(http.StatusBadRequest, "action: %v", err)
	}
	var ip netip.Addr
	if in.SourceIP != "" {
		if ip, err = netip.ParseAddr(in.SourceIP); err != nil {
			return errorf(http.StatusBadRequest, "sourceIp %q is not an IP address", in.SourceIP)
		}
	}
	if in.Username != "" && in.ThingName != "" {
		return errorf(http.StatusBadRequest, "give thingName or username, not both")
	}
	if in.Username != "" {
		if _, err := a.reg.User(r.Context(), in.Username); err != nil {
			return err
		}
	}
	res, err := a.reg.ResolvePolicies(r.Context(), registry.Subject{ThingName: in.ThingName, CertificateFingerprint: in.CertificateFingerprint, Scopes: in.Scopes, UserName: in.Username}, policy.Options{})
	if err != nil {
		return err
	}
	var tok *policy.Token
	if len(in.Scopes) > 0 {
		tok = &policy.Token{Subject: in.ThingName, ClientID: in.ThingName, Scope: in.Scopes}
	}
	clientID := in.ClientID
	if clientID == "" {
		clientID = in.ThingName
	}
	pctx := registry.PolicyContext(res, clientID, ip, nil, tok)
	if res.Thing != nil && clientID != res.Thing.Name {
		// As in AWS IoT, thing variables resolve only when the client id
		// is the thing's name.
		pctx.Thing = nil
	}
	d := res.Set.Bind(pctx).Explain(act, in.Resource)
	out := simulation{Allowed: d.Allowed, Reason: d.Reason.String(), Action: act.String(), Resource: in.Resource,
		Policies: res.Policies, Matched: []statementView{}, Problem: d.Problem,
		Context: map[string]string{"iot:ClientId": clientID}}
	if out.Policies == nil {
		out.Policies = []string{}
	}
	if pctx.Thing != nil {
		out.Context["iot:Connection.Thing.ThingName"] = pctx.Thing.Name
		out.Context["iot:Connection.Thing.ThingTypeName"] = pctx.Thing.TypeName
	}
	for _, m := range d.Matched {
		out.Matched = append(out.Matched, viewOf(m))
	}
	for _, n := range d.NotApplied {
		out.NotApplied = append(out.NotApplied, notAppliedView{viewOf(n.StatementRef), n.Why})
	}
	return writeJSON(w, http.StatusOK, out)
}

// attachmentKey orders attachments as the store does.
func attachmentKey(a store.PolicyAttachment) string {
	return a.Policy + " " + a.TargetKind + " " + a.Target
}
