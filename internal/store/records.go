package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// Thing states.
const (
	StateEnabled  = "enabled"
	StateDisabled = "disabled"
)

// Thing is a device identity.
type Thing struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	ThingType  string            `json:"thingType,omitempty"`
	Attributes map[string]string `json:"attributes"`
	State      string            `json:"state"`
	Version    int64             `json:"version"`
	CreatedAt  time.Time         `json:"createdAt"`
	UpdatedAt  time.Time         `json:"updatedAt"`
}

// AttributeSpec describes one attribute a thing type knows.
type AttributeSpec struct {
	Name     string `json:"name"`
	Required bool   `json:"required,omitempty"`
	// Pattern, when set, is a regular expression the whole value must match.
	Pattern string `json:"pattern,omitempty"`
}

// ThingType groups things that share an attribute schema, default policies,
// allowed authentication methods and allowed OAuth scopes.
type ThingType struct {
	Name            string          `json:"name"`
	Description     string          `json:"description,omitempty"`
	AttributeSchema []AttributeSpec `json:"attributeSchema"`
	DefaultPolicies []string        `json:"defaultPolicies"`
	AuthMethods     []string        `json:"authMethods"`
	Scopes          []string        `json:"scopes"`
	// ScopeDescriptions says what each scope lets a thing do, in plain
	// language, for the person asked to approve (the device page).
	ScopeDescriptions map[string]string `json:"scopeDescriptions,omitempty"`
	// ApproverRelation, when set (owner, operator or viewer), is recorded
	// between a user and a thing of this type when the user approves the
	// thing's device authorization request.
	ApproverRelation string `json:"approverRelation,omitempty"`
	// KeyAlgorithm of the keys the registration gateway generates for
	// things of this type (e.g. rsa-2048, as AWS IoT's
	// CreateKeysAndCertificate); "" is the server's default (ecdsa-p256).
	KeyAlgorithm string    `json:"keyAlgorithm,omitempty"`
	Version      int64     `json:"version"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// User is a person who operates things or administers Gatehouse.
type User struct {
	ID           string    `json:"id"`
	Username     string    `json:"username"`
	DisplayName  string    `json:"displayName,omitempty"`
	Email        string    `json:"email,omitempty"`
	PasswordHash string    `json:"-"`
	Roles        []string  `json:"roles"`
	Disabled     bool      `json:"disabled"`
	Version      int64     `json:"version"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// Group is a named set of users and things.
type Group struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Version     int64     `json:"version"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// Kinds of principal that groups and relationships refer to.
const (
	KindUser  = "user"
	KindThing = "thing"
)

// GroupMember is one member of a group.
type GroupMember struct {
	Group     string    `json:"group"`
	Kind      string    `json:"kind"`
	Member    string    `json:"member"`
	CreatedAt time.Time `json:"createdAt"`
}

// Relationship is a directed edge: SubjectKind/Subject Relation
// ObjectKind/Object, e.g. user/alice owner thing/pump-1 or
// thing/gw-1 gateway thing/sensor-7.
type Relationship struct {
	SubjectKind string    `json:"subjectKind"`
	Subject     string    `json:"subject"`
	Relation    string    `json:"relation"`
	ObjectKind  string    `json:"objectKind"`
	Object      string    `json:"object"`
	CreatedAt   time.Time `json:"createdAt"`
	// ExpiresAt, when set, is when the edge stops counting; it is ignored
	// by every read from then on and purged later.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

// APIToken is a bearer credential for the admin API. Only its SHA-256 hash
// is stored.
type APIToken struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Hash      string    `json:"-"`
	Username  string    `json:"username,omitempty"`
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

// Event is one entry of the append-only audit log.
type Event struct {
	ID      int64           `json:"id"`
	Time    time.Time       `json:"time"`
	Type    string          `json:"type"`
	Subject string          `json:"subject"`
	Actor   string          `json:"actor"`
	Details json.RawMessage `json:"details,omitempty"`
	// Count, above 1, is how many occurrences one aggregated event
	// stands for (repeated broker denials); 0 and 1 mean one.
	Count int `json:"count,omitempty"`
}

// count is the value stored in the count column.
func (ev *Event) count() int { return max(ev.Count, 1) }

// jsonText encodes v for a TEXT column.
func jsonText(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("store: encode column: %w", err)
	}
	return string(b), nil
}

// fromJSONText decodes a TEXT column into v.
func fromJSONText(s string, v any) error {
	if s == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("store: decode column: %w", err)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Policy is a named AWS IoT policy with versioned documents; the default
// version is the one in force.
type Policy struct {
	Name           string    `json:"name"`
	Description    string    `json:"description,omitempty"`
	DefaultVersion int64     `json:"defaultVersionId"`
	NextVersion    int64     `json:"-"`
	Version        int64     `json:"version"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// PolicyVersion is one document of a policy.
type PolicyVersion struct {
	Policy    string          `json:"policyName"`
	VersionID int64           `json:"versionId"`
	Document  json.RawMessage `json:"document"`
	IsDefault bool            `json:"isDefault"`
	CreatedAt time.Time       `json:"createdAt"`
}

// Targets a policy can be attached to. Thing types name their policies in
// ThingType.DefaultPolicies instead.
const (
	TargetThing       = "thing"
	TargetGroup       = "group"
	TargetCertificate = "certificate" // by SHA-256 fingerprint
	TargetScope       = "scope"       // an OAuth scope
	TargetUser        = "user"        // a user, by username
	TargetAllUsers    = "all-users"   // every user; the target is "*"
)

// PolicyAttachment ties a policy to a target.
type PolicyAttachment struct {
	Policy     string    `json:"policyName"`
	TargetKind string    `json:"targetKind"`
	Target     string    `json:"target"`
	CreatedAt  time.Time `json:"createdAt"`
}

// Authorizer statuses.
const (
	AuthorizerActive   = "ACTIVE"
	AuthorizerInactive = "INACTIVE"
)

// Authorizer is an AWS IoT style custom authorizer. A device sends a token
// (a Gatehouse or configured issuer's access token) and a base64 signature
// of it made with a private key whose public half is in PublicKeys.
type Authorizer struct {
	Name string `json:"authorizerName"`
	// TokenKeyName is the query parameter or header carrying the token.
	TokenKeyName string `json:"tokenKeyName"`
	// PublicKeys maps a key name to a PEM public key (RSA or ECDSA).
	PublicKeys      map[string]string `json:"tokenSigningPublicKeys"`
	SigningDisabled bool              `json:"signingDisabled"`
	Status          string            `json:"status"`
	Default         bool              `json:"default"`
	Version         int64             `json:"version"`
	CreatedAt       time.Time         `json:"createdAt"`
	UpdatedAt       time.Time         `json:"updatedAt"`
}
