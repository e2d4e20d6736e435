package policy

import (
	"errors"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Context describes the principal and connection a policy is evaluated for: the values
// of the policy variables and condition keys. It is read once, by [Set.Bind].
//
// A value that is the empty string, or that is not valid UTF-8, counts as absent.
type Context struct {
	// ClientID is the MQTT client identifier (iot:ClientId). Leave it empty for HTTPS
	// publishes, which have none.
	ClientID string
	// SourceIP is the client's address (aws:SourceIp). The zero Addr means unknown.
	SourceIP netip.Addr
	// Thing is the registry thing the principal is attached to, or nil. Set it only when
	// the principal (certificate or token) is attached to the thing and, like AWS IoT
	// with non-exclusive association, the client id equals the thing name; that check is
	// the caller's.
	Thing *Thing
	// Certificate is the client certificate of an mTLS connection, or nil.
	Certificate *Certificate
	// Token holds the claims of the access token the client authenticated with, or nil.
	Token *Token
	// User is the person the principal is, or nil (gatehouse:User.*).
	User *User
}

// User is the person a connection acts for (gatehouse:User.*): a user who
// authenticated with their own access token.
type User struct {
	Name   string   // gatehouse:User.Name
	Groups []string // gatehouse:User.Groups, multi-valued
	// Things maps a relation (owner, operator, viewer, ...) to the things the
	// user has it with: gatehouse:User.Things.<relation>, multi-valued.
	Things map[string][]string
}

// Thing is the thing a connection acts for (iot:Connection.Thing.*).
type Thing struct {
	Name       string            // iot:Connection.Thing.ThingName
	TypeName   string            // iot:Connection.Thing.ThingTypeName
	Attributes map[string]string // iot:Connection.Thing.Attributes[name]
	// Children are the things this (gateway) thing acts for, by gateway
	// relationships: gatehouse:Thing.Children, multi-valued.
	Children []string
}

// Certificate holds the X.509 fields AWS IoT exposes as iot:Certificate.* variables.
type Certificate struct {
	SerialNumber   string  // iot:Certificate.SerialNumber
	Subject        Name    // iot:Certificate.Subject.*
	Issuer         Name    // iot:Certificate.Issuer.*
	SubjectAltName AltName // iot:Certificate.Subject.AlternativeName.*
	IssuerAltName  AltName // iot:Certificate.Issuer.AlternativeName.*
}

// Name is a distinguished name. Every attribute may occur several times in a certificate,
// so each is a list; see the package documentation for how lists resolve.
type Name struct {
	CommonName                 []string
	Country                    []string
	Organization               []string
	OrganizationalUnit         []string
	State                      []string
	SerialNumber               []string
	DistinguishedNameQualifier []string
	Title                      []string
	Surname                    []string
	GivenName                  []string
	Initials                   []string
	Pseudonym                  []string
	GenerationQualifier        []string
}

// AltName holds the entries of a subject or issuer alternative name extension.
type AltName struct {
	DNSName                   []string
	IPAddress                 []string
	RFC822Name                []string
	UniformResourceIdentifier []string
	DirectoryName             []string
}

// Token holds what Gatehouse exposes of an access token (gatehouse:Token.*).
type Token struct {
	Subject  string            // gatehouse:Token.Subject (the "sub" claim)
	ClientID string            // gatehouse:Token.ClientId (the "client_id" claim)
	Scope    []string          // gatehouse:Token.Scope, one entry per scope value
	Claims   map[string]string // gatehouse:Token.Claims[name]; the caller renders non-string claims
}

// keyID identifies a condition key / policy variable family.
type keyID uint8

const (
	keySourceIP keyID = iota + 1
	keyClientID
	keyThingName
	keyThingType
	keyThingAttr
	keyThingAttached
	keyCertSerial
	keyCertName
	keyCertAltName
	keyTokenSubject
	keyTokenClientID
	keyTokenScope
	keyTokenClaim
	keyUserName
	keyUserGroups
	keyUserThings
	keyThingChildren
)

// keyRef is a parsed condition key or variable name.
type keyRef struct {
	id     keyID
	issuer bool   // keyCertName, keyCertAltName: Issuer instead of Subject
	list   bool   // the ".List" form (multi-valued)
	field  uint8  // keyCertName, keyCertAltName: which attribute
	arg    string // keyThingAttr, keyTokenClaim: the name in brackets; keyUserThings: the relation
}

const (
	nameCommonName uint8 = iota
	nameCountry
	nameOrganization
	nameOrganizationalUnit
	nameState
	nameSerialNumber
	nameDistinguishedNameQualifier
	nameTitle
	nameSurname
	nameGivenName
	nameInitials
	namePseudonym
	nameGenerationQualifier
	numNameFields
)

const (
	altDNSName uint8 = iota
	altIPAddress
	altRFC822Name
	altUniformResourceIdentifier
	altDirectoryName
	numAltFields
)

func nameFieldName(f uint8) string {
	switch f {
	case nameCommonName:
		return "CommonName"
	case nameCountry:
		return "Country"
	case nameOrganization:
		return "Organization"
	case nameOrganizationalUnit:
		return "OrganizationalUnit"
	case nameState:
		return "State"
	case nameSerialNumber:
		return "SerialNumber"
	case nameDistinguishedNameQualifier:
		return "DistinguishedNameQualifier"
	case nameTitle:
		return "Title"
	case nameSurname:
		return "Surname"
	case nameGivenName:
		return "GivenName"
	case nameInitials:
		return "Initials"
	case namePseudonym:
		return "Pseudonym"
	case nameGenerationQualifier:
		return "GenerationQualifier"
	}
	return "?"
}

func altFieldName(f uint8) string {
	switch f {
	case altDNSName:
		return "DNSName"
	case altIPAddress:
		return "IPAddress"
	case altRFC822Name:
		return "RFC822Name"
	case altUniformResourceIdentifier:
		return "UniformResourceIdentifier"
	case altDirectoryName:
		return "DirectoryName"
	}
	return "?"
}

func (n *Name) field(f uint8) []string {
	switch f {
	case nameCommonName:
		return n.CommonName
	case nameCountry:
		return n.Country
	case nameOrganization:
		return n.Organization
	case nameOrganizationalUnit:
		return n.OrganizationalUnit
	case nameState:
		return n.State
	case nameSerialNumber:
		return n.SerialNumber
	case nameDistinguishedNameQualifier:
		return n.DistinguishedNameQualifier
	case nameTitle:
		return n.Title
	case nameSurname:
		return n.Surname
	case nameGivenName:
		return n.GivenName
	case nameInitials:
		return n.Initials
	case namePseudonym:
		return n.Pseudonym
	case nameGenerationQualifier:
		return n.GenerationQualifier
	}
	return nil
}

func (a *AltName) field(f uint8) []string {
	switch f {
	case altDNSName:
		return a.DNSName
	case altIPAddress:
		return a.IPAddress
	case altRFC822Name:
		return a.RFC822Name
	case altUniformResourceIdentifier:
		return a.UniformResourceIdentifier
	case altDirectoryName:
		return a.DirectoryName
	}
	return nil
}

// String returns the key's canonical spelling.
func (k keyRef) String() string {
	var s string
	switch k.id {
	case keySourceIP:
		return "aws:SourceIp"
	case keyClientID:
		return "iot:ClientId"
	case keyThingName:
		return "iot:Connection.Thing.ThingName"
	case keyThingType:
		return "iot:Connection.Thing.ThingTypeName"
	case keyThingAttr:
		return "iot:Connection.Thing.Attributes[" + k.arg + "]"
	case keyThingAttached:
		return "iot:Connection.Thing.IsAttached"
	case keyCertSerial:
		return "iot:Certificate.SerialNumber"
	case keyCertName:
		s = "iot:Certificate." + k.side() + "." + nameFieldName(k.field)
	case keyCertAltName:
		s = "iot:Certificate." + k.side() + ".AlternativeName." + altFieldName(k.field)
	case keyTokenSubject:
		return "gatehouse:Token.Subject"
	case keyTokenClientID:
		return "gatehouse:Token.ClientId"
	case keyTokenScope:
		return "gatehouse:Token.Scope"
	case keyTokenClaim:
		return "gatehouse:Token.Claims[" + k.arg + "]"
	case keyUserName:
		return "gatehouse:User.Name"
	case keyUserGroups:
		return "gatehouse:User.Groups"
	case keyUserThings:
		return "gatehouse:User.Things." + k.arg
	case keyThingChildren:
		return "gatehouse:Thing.Children"
	default:
		return "?"
	}
	if k.list {
		s += ".List"
	}
	return s
}

func (k keyRef) side() string {
	if k.issuer {
		return "Issuer"
	}
	return "Subject"
}

// multi reports whether the key can have several values at once.
func (k keyRef) multi() bool {
	return k.list || k.id == keyTokenScope || k.id == keyUserGroups || k.id == keyUserThings || k.id == keyThingChildren
}

// relational reports whether the key's values are names of other principals
// that come from the registry's relationships and groups. Such a value is
// only ever substituted as one whole topic level: see unsafeValue.
func (k keyRef) relational() bool {
	return k.id == keyUserName || k.id == keyUserGroups || k.id == keyUserThings || k.id == keyThingChildren
}

// unsafeValue reports whether a relational variable's value could reach
// beyond the one name it stands for: MQTT wildcards (+ #), policy wildcards
// (* ?), a topic level separator (/), $ and NUL. The registry never stores such
// names, but a value is never trusted to be one: it is not expanded at all.
func unsafeValue(v string) bool { return strings.ContainsAny(v, "+#*?/$\x00") }

// isIP reports whether the key's values are IP addresses (IpAddress/NotIpAddress).
func (k keyRef) isIP() bool {
	return k.id == keySourceIP || (k.id == keyCertAltName && k.field == altIPAddress)
}

// parseKey parses a condition key or variable name. Like IAM condition keys, the names
// are case-insensitive; the attribute or claim name in brackets is not.
func parseKey(name string) (keyRef, error) {
	if i := strings.IndexByte(name, '['); i >= 0 {
		if !strings.HasSuffix(name, "]") {
			return keyRef{}, errors.New("missing ] after the bracketed name")
		}
		arg := name[i+1 : len(name)-1]
		if arg == "" {
			return keyRef{}, errors.New("empty name in brackets")
		}
		if strings.ContainsAny(arg, "[]${}") {
			return keyRef{}, errors.New("brackets, $, { and } are not allowed in the bracketed name")
		}
		switch strings.ToLower(name[:i]) {
		case "iot:connection.thing.attributes":
			return keyRef{id: keyThingAttr, arg: arg}, nil
		case "gatehouse:token.claims":
			return keyRef{id: keyTokenClaim, arg: arg}, nil
		}
		return keyRef{}, errors.New("unknown key (only iot:Connection.Thing.Attributes[...] and gatehouse:Token.Claims[...] take a name in brackets)")
	}
	lower := strings.ToLower(name)
	switch lower {
	case "aws:sourceip":
		return keyRef{id: keySourceIP}, nil
	case "iot:clientid":
		return keyRef{id: keyClientID}, nil
	case "iot:connection.thing.thingname":
		return keyRef{id: keyThingName}, nil
	case "iot:connection.thing.thingtypename":
		return keyRef{id: keyThingType}, nil
	case "iot:connection.thing.isattached":
		return keyRef{id: keyThingAttached}, nil
	case "iot:certificate.serialnumber":
		return keyRef{id: keyCertSerial}, nil
	case "gatehouse:token.subject":
		return keyRef{id: keyTokenSubject}, nil
	case "gatehouse:token.clientid":
		return keyRef{id: keyTokenClientID}, nil
	case "gatehouse:token.scope":
		return keyRef{id: keyTokenScope}, nil
	case "gatehouse:user.name":
		return keyRef{id: keyUserName}, nil
	case "gatehouse:user.groups":
		return keyRef{id: keyUserGroups}, nil
	case "gatehouse:thing.children":
		return keyRef{id: keyThingChildren}, nil
	}
	if rel, ok := strings.CutPrefix(lower, "gatehouse:user.things."); ok {
		if rel == "" || strings.IndexFunc(rel, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' && r != '-' }) >= 0 {
			return keyRef{}, errors.New("gatehouse:User.Things.<relation> needs a relation such as owner, operator or viewer")
		}
		return keyRef{id: keyUserThings, arg: rel}, nil
	}
	if rest, ok := strings.CutPrefix(lower, "iot:certificate."); ok {
		var k keyRef
		switch {
		case strings.HasPrefix(rest, "subject."):
			rest = rest[len("subject."):]
		case strings.HasPrefix(rest, "issuer."):
			k.issuer = true
			rest = rest[len("issuer."):]
		default:
			return keyRef{}, errors.New("unknown certificate key (expected iot:Certificate.SerialNumber, iot:Certificate.Subject.* or iot:Certificate.Issuer.*)")
		}
		if r, ok := strings.CutSuffix(rest, ".list"); ok {
			k.list, rest = true, r
		}
		if r, ok := strings.CutPrefix(rest, "alternativename."); ok {
			k.id = keyCertAltName
			for f := range numAltFields {
				if strings.EqualFold(r, altFieldName(f)) {
					k.field = f
					return k, nil
				}
			}
			return keyRef{}, errors.New("unknown alternative name field (expected DNSName, IPAddress, RFC822Name, UniformResourceIdentifier or DirectoryName)")
		}
		k.id = keyCertName
		for f := range numNameFields {
			if strings.EqualFold(rest, nameFieldName(f)) {
				k.field = f
				return k, nil
			}
		}
		return keyRef{}, errors.New("unknown certificate name attribute")
	}
	return keyRef{}, errors.New("unknown key")
}

// lookup appends the usable values of key k to buf: empty and non-UTF-8 values are
// dropped, IP-valued keys keep only parseable addresses (canonical form), and a
// single-valued certificate key resolves only if the attribute occurs exactly once.
func (c *Context) lookup(k keyRef, buf []string) []string {
	add := func(v string) {
		if v != "" && utf8.ValidString(v) {
			buf = append(buf, v)
		}
	}
	switch k.id {
	case keySourceIP:
		if c.SourceIP.IsValid() {
			buf = append(buf, c.SourceIP.Unmap().String())
		}
	case keyClientID:
		add(c.ClientID)
	case keyThingName:
		if c.Thing != nil {
			add(c.Thing.Name)
		}
	case keyThingType:
		if c.Thing != nil {
			add(c.Thing.TypeName)
		}
	case keyThingAttr:
		if c.Thing != nil {
			add(c.Thing.Attributes[k.arg])
		}
	case keyThingAttached:
		if c.Thing != nil {
			buf = append(buf, "true")
		} else {
			buf = append(buf, "false")
		}
	case keyCertSerial:
		if c.Certificate != nil {
			add(c.Certificate.SerialNumber)
		}
	case keyCertName, keyCertAltName:
		if c.Certificate == nil {
			break
		}
		var vals []string
		switch {
		case k.id == keyCertName && k.issuer:
			vals = c.Certificate.Issuer.field(k.field)
		case k.id == keyCertName:
			vals = c.Certificate.Subject.field(k.field)
		case k.issuer:
			vals = c.Certificate.IssuerAltName.field(k.field)
		default:
			vals = c.Certificate.SubjectAltName.field(k.field)
		}
		if !k.list && len(vals) != 1 {
			break // ambiguous or absent: unresolved
		}
		for _, v := range vals {
			if k.isIP() {
				if a, err := netip.ParseAddr(v); err == nil {
					buf = append(buf, a.Unmap().String())
				}
				continue
			}
			add(v)
		}
	case keyTokenSubject:
		if c.Token != nil {
			add(c.Token.Subject)
		}
	case keyTokenClientID:
		if c.Token != nil {
			add(c.Token.ClientID)
		}
	case keyTokenScope:
		if c.Token != nil {
			for _, v := range c.Token.Scope {
				add(v)
			}
		}
	case keyTokenClaim:
		if c.Token != nil {
			add(c.Token.Claims[k.arg])
		}
	case keyUserName:
		if c.User != nil {
			add(c.User.Name)
		}
	case keyUserGroups:
		if c.User != nil {
			for _, v := range c.User.Groups {
				add(v)
			}
		}
	case keyUserThings:
		if c.User != nil {
			for _, v := range c.User.Things[k.arg] {
				add(v)
			}
		}
	case keyThingChildren:
		if c.Thing != nil {
			for _, v := range c.Thing.Children {
				add(v)
			}
		}
	}
	return buf
}
