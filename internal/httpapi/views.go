package httpapi

import (
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// The API answers with types of its own where a store record holds a
// secret (a password or token hash, a sealed value): a view shows only
// the fields it lists, so a secret column added to a record cannot leak
// through the API by a forgotten json:"-". TestViewsShowWhatRecordsShow
// checks that each view writes what the record's public fields are.

// userView is a user without its password hash.
type userView struct {
	ID          string    `json:"id"`
	Username    string    `json:"username"`
	DisplayName string    `json:"displayName,omitempty"`
	Email       string    `json:"email,omitempty"`
	Roles       []string  `json:"roles"`
	Disabled    bool      `json:"disabled"`
	Version     int64     `json:"version"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

func viewUser(u *store.User) userView {
	return userView{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Email: u.Email, Roles: u.Roles,
		Disabled: u.Disabled, Version: u.Version, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// apiTokenView is an API token without its hash.
type apiTokenView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Username  string    `json:"username,omitempty"`
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

func viewAPIToken(t *store.APIToken) apiTokenView {
	return apiTokenView{ID: t.ID, Name: t.Name, Username: t.Username, Roles: t.Roles, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}
}

// appFields are a registered app's fields without its secret's hash.
type appFields struct {
	ClientID     string    `json:"clientId"`
	Description  string    `json:"description,omitempty"`
	RedirectURIs []string  `json:"redirectUris"`
	Scopes       []string  `json:"scopes"`
	GrantTypes   []string  `json:"grantTypes"`
	CreatedAt    time.Time `json:"createdAt"`
}

func viewApp(a *store.App) appFields {
	return appFields{ClientID: a.ClientID, Description: a.Description, RedirectURIs: a.RedirectURIs, Scopes: a.Scopes,
		GrantTypes: a.GrantTypes, CreatedAt: a.CreatedAt}
}

// awsKeyView is an AWS access key without its sealed secret.
type awsKeyView struct {
	ID        string    `json:"accessKeyId"`
	Name      string    `json:"name"`
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"createdAt"`
}

func viewAWSKey(k *store.AWSAccessKey) awsKeyView {
	return awsKeyView{ID: k.ID, Name: k.Name, Roles: k.Roles, CreatedAt: k.CreatedAt}
}

// lobbyTargetView is a lobby target without the gatehouse target's API
// token (accepted on input, never stored in clear nor shown).
type lobbyTargetView struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Description string    `json:"description,omitempty"`
	Endpoint    string    `json:"endpoint,omitempty"`
	CAPEM       string    `json:"caPem,omitempty"`
	ThingType   string    `json:"thingType,omitempty"`
	Config      string    `json:"config,omitempty"`
	APIURL      string    `json:"apiUrl,omitempty"`
	Version     int64     `json:"version"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

func viewLobbyTarget(t *store.LobbyTarget) lobbyTargetView {
	return lobbyTargetView{Name: t.Name, Kind: t.Kind, Description: t.Description, Endpoint: t.Endpoint, CAPEM: t.CAPEM,
		ThingType: t.ThingType, Config: t.Config, APIURL: t.APIURL, Version: t.Version, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

// lobbyDeviceView is a lobby device without the sealed secret part of its
// assignment.
type lobbyDeviceView struct {
	Fingerprint       string    `json:"certificateId"`
	State             string    `json:"state"`
	ThingName         string    `json:"thingName,omitempty"`
	CommonName        string    `json:"commonName,omitempty"`
	CA                string    `json:"ca,omitempty"`
	CertificatePEM    string    `json:"certificatePem,omitempty"`
	DeviceState       string    `json:"deviceState,omitempty"`
	DeviceConfig      string    `json:"deviceConfig,omitempty"`
	Target            string    `json:"target,omitempty"`
	ClaimConfig       string    `json:"claimConfig,omitempty"`
	Assignment        string    `json:"assignment,omitempty"`
	Claims            int64     `json:"claims"`
	CommissionedClaim int64     `json:"commissionedClaim"`
	FirstSeenAt       time.Time `json:"firstSeenAt,omitzero"`
	LastSeenAt        time.Time `json:"lastSeenAt,omitzero"`
	Version           int64     `json:"version"`
	CreatedAt         time.Time `json:"createdAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
}

func viewLobbyDevice(d *store.LobbyDevice) lobbyDeviceView {
	return lobbyDeviceView{Fingerprint: d.Fingerprint, State: d.State, ThingName: d.ThingName, CommonName: d.CommonName, CA: d.CA,
		CertificatePEM: d.CertificatePEM, DeviceState: d.DeviceState, DeviceConfig: d.DeviceConfig, Target: d.Target,
		ClaimConfig: d.ClaimConfig, Assignment: d.Assignment, Claims: d.Claims, CommissionedClaim: d.CommissionedClaim,
		FirstSeenAt: d.FirstSeenAt, LastSeenAt: d.LastSeenAt, Version: d.Version, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}

// viewAll views every record of rs.
func viewAll[R, V any](rs []R, view func(*R) V) []V {
	out := make([]V, len(rs))
	for i := range rs {
		out[i] = view(&rs[i])
	}
	return out
}
